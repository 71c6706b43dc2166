"""A small upstream HTTP service for the HTTP adapter tests (stdlib only).

Serves JSON with personal data framed with Content-Length, chunked NDJSON, gzip and deflate
bodies (sent whatever Accept-Encoding says), a body in an encoding the gateway cannot scan
(`br`), a binary body, a large streamed body, and an endpoint that echoes the request headers it
received, so tests can see what the gateway sent upstream; and the bodies an attacker would use to get
personal data past a scanner: PII in headers (also on 302/304), under content types off any text
list, in UTF-16, behind JSON escapes, fullwidth digits and zero-width characters, and a Range
endpoint that answers 206 pieces. Every request is logged as one JSON
line (method, path, client port, and the Authorization header's scheme plus a SHA-256 prefix of
its value, never the value).

    python3 http_upstream.py --port P --log FILE
"""
import argparse
import gzip
import hashlib
import json
import sys
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CUSTOMERS = [
    {"id": 1, "name": "Jane Doe", "email": "jane.doe@example.com", "card": "4111 1111 1111 1111", "ssn": "268-45-8731"},
    {"id": 2, "name": "John Roe", "email": "john.roe@example.org", "card": "5500 0000 0000 0004", "ssn": "219-09-9999"},
    {"id": 3, "name": "Decoy", "email": "not-an-email", "card": "order 4111111111111112", "ssn": "000-00-0000"},
]
PII_TEXT = b'{"email":"jane.doe@example.com","ssn":"268-45-8731"}'
# Paths that answer PII_TEXT under a content type no text list names.
TEXT_AS = {
    "/octet": "application/octet-stream",
    "/xjson": "application/x-json",
    "/jsonp": "application/jsonp",
    "/toml": "application/toml",
    "/sql": "application/sql",
    "/xtext": "text/x-custom",
    "/typelist": "application/json, application/octet-stream",
    "/notype": None,
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log_path = None

    def log_message(self, *args):
        pass

    def record(self):
        auth = self.headers.get("Authorization")
        entry = {
            "method": self.command,
            "path": self.path,
            "client_port": self.client_address[1],
            "auth_scheme": auth.split(" ", 1)[0] if auth else None,
            "auth_sha256": hashlib.sha256(auth.encode()).hexdigest()[:16] if auth else None,
            "x_api_key_sha256": hashlib.sha256(self.headers["X-Api-Key"].encode()).hexdigest()[:16] if self.headers.get("X-Api-Key") else None,
            "x_forwarded_for": self.headers.get("X-Forwarded-For"),
            "x_forwarded_proto": self.headers.get("X-Forwarded-Proto"),
            "host": self.headers.get("Host"),
            "connection": self.headers.get("Connection"),
            "accept_encoding": self.headers.get("Accept-Encoding"),
            "range": self.headers.get("Range"),
            "if_range": self.headers.get("If-Range"),
        }
        with open(self.log_path, "a") as log:
            log.write(json.dumps(entry) + "\n")

    def send_body(self, body, content_type="application/json", encoding=None, status=200):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"v1"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_raw(self, body, headers, status=200):
        self.send_response(status)
        for name, value in headers:
            if value is not None:
                self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def send_chunked(self, chunks, content_type="application/x-ndjson"):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in chunks:
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def do_GET(self):
        self.record()
        path = self.path.split("?")[0]
        customers = json.dumps({"customers": CUSTOMERS}, indent=1).encode()
        if path == "/customers":
            self.send_body(customers)
        elif path == "/stream":
            # Split inside the values, so masking must be exact across chunks.
            lines = b"".join(json.dumps(c).encode() + b"\n" for c in CUSTOMERS)
            self.send_chunked([lines[i:i + 7] for i in range(0, len(lines), 7)])
        elif path == "/gzip":
            self.send_body(gzip.compress(customers), encoding="gzip")
        elif path == "/deflate":
            self.send_body(zlib.compress(customers), encoding="deflate")
        elif path == "/brotli":
            self.send_body(b"\x8b\x02\x80not really brotli", encoding="br")
        elif path == "/binary":
            blob = bytes(range(256)) * 64 + b"jane.doe@example.com"
            self.send_body(blob, content_type="image/png")
        elif path == "/close":
            # The upstream ends its side of keep-alive after this answer.
            body = b'{"bye":"jane.doe@example.com"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
        elif path == "/pii-headers":
            # Personal data outside the body: a custom header and a cookie.
            self.send_raw(b'{"ok":true}', [("Content-Type", "application/json"), ("X-Customer-Email", "jane.doe@example.com"),
                                           ("Set-Cookie", "who=jane.doe@example.com; Path=/")])
        elif path == "/redirect":
            self.send_raw(b"", [("Location", "/users/jane.doe%40example.com"), ("X-Customer-Email", "jane.doe@example.com")], status=302)
        elif path == "/not-modified":
            self.send_raw(b"", [("ETag", '"v1"'), ("X-Customer-Email", "jane.doe@example.com")], status=304)
        elif path in TEXT_AS:
            # PII in bodies whose type is off any list of text types.
            self.send_raw(PII_TEXT, [("Content-Type", TEXT_AS[path])])
        elif path == "/multipart":
            body = (b"--b\r\nContent-Type: application/json\r\n\r\n" + PII_TEXT + b"\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
                    b"ssn 268-45-8731\r\n--b--\r\n")
            self.send_raw(body, [("Content-Type", "multipart/mixed; boundary=b")])
        elif path == "/utf16":
            self.send_raw(PII_TEXT.decode().encode("utf-16"), [("Content-Type", "text/plain; charset=utf-16")])
        elif path == "/utf16-bom":
            self.send_raw(PII_TEXT.decode().encode("utf-16"), [("Content-Type", None)])
        elif path == "/utf16-json":
            self.send_raw(PII_TEXT.decode().encode("utf-16"), [("Content-Type", "application/json")])
        elif path == "/escaped":
            self.send_raw(b'{"email":"jane.doe\\u0040example.com","url":"https:\\/\\/x\\/jane.doe\\u0040example.com"}',
                          [("Content-Type", "application/json")])
        elif path == "/fullwidth":
            text = '{"ssn":"\uff12\uff16\uff18-\uff14\uff15-\uff18\uff17\uff13\uff11","email":"jane\u200b.doe@exam\u2060ple.com"}'
            self.send_raw(text.encode(), [("Content-Type", "application/json; charset=utf-8")])
        elif path == "/octet-binary":
            self.send_raw(bytes(range(256)) * 4 + b"jane.doe@example.com", [("Content-Type", "application/octet-stream")])
        elif path == "/range":
            # Honours a byte range (206), so pieces of a value could be fetched one by one.
            body = PII_TEXT
            wanted = self.headers.get("Range", "")
            if wanted.startswith("bytes="):
                first, _, last = wanted[6:].partition("-")
                piece = body[int(first):int(last) + 1]
                self.send_raw(piece, [("Content-Type", "application/json"), ("Content-Range", f"bytes {first}-{last}/{len(body)}")], status=206)
            else:
                self.send_raw(body, [("Content-Type", "application/json"), ("Accept-Ranges", "bytes")])
        elif path == "/trickle":
            # A long response: one line every half second for ?seconds=N.
            seconds = float(self.path.split("seconds=")[1]) if "seconds=" in self.path else 6
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            started = time.time()
            try:
                while time.time() - started < seconds:
                    line = b'{"t":%.1f,"pad":"%s"}\n' % (time.time() - started, b"x" * 300)   # past the masker's hold-back
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                    self.wfile.flush()
                    time.sleep(0.5)
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass
        elif path == "/always-partial":
            # An upstream that answers 206 even when no range was asked for.
            self.send_raw(PII_TEXT[:20], [("Content-Type", "application/json"), ("Content-Range", f"bytes 0-19/{len(PII_TEXT)}")], status=206)
        elif path == "/whoami":
            self.send_body(json.dumps({"saw_authorization": self.headers.get("Authorization") is not None}).encode())
        elif path == "/big":
            megabytes = int(self.path.split("mb=")[1]) if "mb=" in self.path else 100
            line = b'{"user":"jane.doe@example.com","card":"4111 1111 1111 1111","pad":"' + b"x" * 40 + b'"}\n'
            count = megabytes * 1024 * 1024 // len(line)
            block = line * 512
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(count * len(line)))
            self.end_headers()
            sent = 0
            while sent + 512 <= count:
                self.wfile.write(block)
                sent += 512
            self.wfile.write(line * (count - sent))
        else:
            self.send_body(b'{"error":"not found"}', status=404)

    do_HEAD = do_GET

    def do_POST(self):
        body = self.read_body()
        self.record()
        self.send_body(json.dumps({"received": len(body), "echo": body.decode(errors="replace")[:200]}).encode())

    def do_DELETE(self):
        self.record()
        self.send_body(b'{"deleted":true}')

    do_PUT = do_POST


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    Handler.log_path = args.log
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
