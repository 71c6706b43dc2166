#!/usr/bin/env python3
"""A fake Kubernetes API server for integration tests, good enough for the real kubectl (v1.32).

usage: fake_kube_apiserver.py --port P --cert CERT --key KEY --token TOKEN --log LOGFILE
                              [--host 127.0.0.1] [--log-headers]

Standard library only. HTTPS with the given certificate, HTTP/1.1 keep-alive (ALPN offers only
http/1.1, so Go's client never tries HTTP/2), one thread per connection. Every request must carry
`Authorization: Bearer TOKEN`, else 401 Status. Prints "ready" once listening.

What it serves (JSON, legacy formats only):
  /version, /api, /apis (empty group list), /api/v1 (pods, pods/exec|attach|log, secrets,
  namespaces, configmaps); namespaces default and prod; pod web-1 (default) and db-0 (prod)
  carrying PII (env var and annotation jane.doe@example.com); secret default/db-creds;
  lists, gets, `?watch=1` on lists (chunked JSON lines: ADDED per item, one MODIFIED after
  0.5 s, then the stream stays open until `timeoutSeconds`/`timeout` or ends after 1 s);
  DELETE of a namespace (answers it Terminating, afterwards it and its objects are gone until
  restart); pods/log as text; anything else a 404 Status.
  pods/exec and pods/attach over WebSocket (RFC 6455) with the v5/v4.channel.k8s.io
  subprotocols; a SPDY upgrade gets 403. Commands are simulated, see `simulate`.

kubectl behaviours this relies on (observed with kubectl 1.32):
  - Discovery: kubectl asks for aggregated discovery (Accept: ...;g=apidiscovery.k8s.io;v=v2;
    as=APIGroupDiscoveryList,...,application/json); a plain `Content-Type: application/json`
    answer makes it fall back to the legacy /api, /api/v1, /apis documents.
  - `kubectl get` asks for `as=Table;v=v1;g=meta.k8s.io`; we answer a real meta.k8s.io/v1 Table
    (so the columns are NAME READY STATUS ...), also per watch event. Other outputs get JSON.
  - `kubectl delete` GETs the object, DELETEs it, then waits by listing with
    fieldSelector=metadata.name=NAME: an empty list ends the wait.
  - `kubectl exec` GETs the pod first, then opens a WebSocket offering only v5.channel.k8s.io.
    Messages are binary, byte 0 is the channel (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize,
    255 close-stream; [255, 0] = stdin EOF). The client pings every 5 s and needs pongs.
    The exit status is a v1 Status on channel 3, and kubectl only reads it once the connection
    ends with a close frame (1000); a bare TCP close is reported as a stream error.
  - Like the kubelet, we first send an empty message on the lowest requested output channel.

State: one log line per request (and per exec / resize / exit) is appended to LOGFILE as JSON.
The token is never logged; with --log-headers the request headers minus Authorization are.
The server has no path prefix: a gateway in front must strip its own prefix.
"""
import argparse
import base64
import hashlib
import hmac
import json
import re
import select
import shlex
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import uuid
from collections import deque
from datetime import datetime, timezone
from http import HTTPStatus

MAX_BODY = 10 * 1024 * 1024
MAX_FRAME = 16 * 1024 * 1024
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
START = time.time()
PII = "jane.doe@example.com"
FILES = {
    "/data/customers.txt": "name: Jane Doe\nemail: jane.doe@example.com\ncard: 4111 1111 1111 1111\nssn: 268-45-8731\n",
    "/etc/motd": "Welcome to the fake cluster.\n",
}


# ---------------------------------------------------------------- objects

def ts(age_seconds):
    return datetime.fromtimestamp(int(START - age_seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name, namespace=None, age=7200, **extra):
    m = {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{namespace}/{name}")),
         "resourceVersion": "1000", "creationTimestamp": ts(age)}
    if namespace:
        m["namespace"] = namespace
    m.update(extra)
    return m


def make_pod(name, ns, app, image, ip):
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": meta(name, ns, labels={"app": app}, annotations={"owner-email": PII}),
        "spec": {"containers": [{"name": app, "image": image,
                                 "env": [{"name": "OWNER_EMAIL", "value": PII}],
                                 "resources": {}, "imagePullPolicy": "IfNotPresent"}],
                 "nodeName": "node-1", "restartPolicy": "Always", "serviceAccountName": "default"},
        "status": {"phase": "Running", "podIP": ip, "hostIP": "10.0.0.1", "startTime": ts(7200),
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": app, "image": image, "imageID": image, "ready": True,
                                          "started": True, "restartCount": 0,
                                          "containerID": f"containerd://{uuid.uuid5(uuid.NAMESPACE_DNS, name).hex}",
                                          "state": {"running": {"startedAt": ts(7100)}}}]},
    }


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Store:
    """The cluster's objects; namespaces deleted by a DELETE stay gone until restart."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rv = 1000
        self.namespaces = {n: {"kind": "Namespace", "apiVersion": "v1",
                               "metadata": meta(n, age=86400, labels={"kubernetes.io/metadata.name": n}),
                               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
                           for n in ("default", "prod")}
        self.objects = {  # resource -> list of objects
            "pods": [make_pod("web-1", "default", "web", "nginx:1.27", "10.244.0.11"),
                     make_pod("db-0", "prod", "db", "postgres:16", "10.244.0.12")],
            "secrets": [{"kind": "Secret", "apiVersion": "v1", "metadata": meta("db-creds", "default"),
                         "type": "Opaque",
                         "data": {"username": b64("app"), "password": b64("hunter2-very-secret"),
                                  "contact": b64(PII), "card": b64("4111 1111 1111 1111")}}],
            "configmaps": [],
        }

    def next_rv(self):
        with self.lock:
            self.rv += 1
            return str(self.rv)

    def items(self, resource, ns=None):
        with self.lock:
            if resource == "namespaces":
                return list(self.namespaces.values())
            return [o for o in self.objects[resource] if o["metadata"]["namespace"] in self.namespaces
                    and (ns is None or o["metadata"]["namespace"] == ns)]

    def delete_namespace(self, name):
        with self.lock:
            ns = self.namespaces.pop(name, None)
        if ns is None:
            return None
        ns = json.loads(json.dumps(ns))
        ns["metadata"]["deletionTimestamp"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        ns["status"]["phase"] = "Terminating"
        return ns


KINDS = {"pods": "Pod", "secrets": "Secret", "configmaps": "ConfigMap", "namespaces": "Namespace"}


def resource_list():
    def res(name, kind, namespaced, verbs, short=None):
        r = {"name": name, "singularName": "" if "/" in name else kind.lower(), "namespaced": namespaced,
             "kind": kind, "verbs": verbs}
        if short:
            r["shortNames"] = short
        return r
    rw = ["create", "delete", "get", "list", "watch"]
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        res("configmaps", "ConfigMap", True, rw, ["cm"]),
        res("namespaces", "Namespace", False, rw, ["ns"]),
        res("pods", "Pod", True, rw, ["po"]),
        res("pods/attach", "PodAttachOptions", True, ["create", "get"]),
        res("pods/exec", "PodExecOptions", True, ["create", "get"]),
        res("pods/log", "Pod", True, ["get"]),
        res("secrets", "Secret", True, rw),
    ]}


def status(code, reason, message, **extra):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code, **extra}


NOT_FOUND = status(404, "NotFound", "the server could not find the requested resource", details={})


def not_found(resource, name):
    return status(404, "NotFound", f'{resource} "{name}" not found',
                  details={"name": name, "kind": resource})


def age(obj):
    created = datetime.strptime(obj["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    s = int(time.time() - created.replace(tzinfo=timezone.utc).timestamp())
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 10800 else f"{s // 3600}h" if s < 172800 else f"{s // 86400}d"


def table(resource, items, include, rv):
    """A meta.k8s.io/v1 Table, what `kubectl get` asks for with as=Table."""
    col = lambda n, t="string", p=0: {"name": n, "type": t, "format": "name" if n == "Name" else "",
                                      "description": n, "priority": p}
    if resource == "pods":
        cols = [col("Name"), col("Ready"), col("Status"), col("Restarts", "string"), col("Age"),
                col("IP", p=1), col("Node", p=1)]
        cells = lambda o: [o["metadata"]["name"], "1/1", o["status"]["phase"], "0", age(o),
                           o["status"]["podIP"], o["spec"]["nodeName"]]
    elif resource == "namespaces":
        cols = [col("Name"), col("Status"), col("Age")]
        cells = lambda o: [o["metadata"]["name"], o["status"]["phase"], age(o)]
    elif resource == "secrets":
        cols = [col("Name"), col("Type"), col("Data", "integer"), col("Age")]
        cells = lambda o: [o["metadata"]["name"], o["type"], len(o.get("data", {})), age(o)]
    else:
        cols = [col("Name"), col("Data", "integer"), col("Age")]
        cells = lambda o: [o["metadata"]["name"], len(o.get("data", {})), age(o)]
    rows = []
    for o in items:
        row = {"cells": cells(o)}
        if include == "Object":
            row["object"] = o
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv},
            "columnDefinitions": cols, "rows": rows}


# ---------------------------------------------------------------- connection I/O

class Conn:
    """A buffered reader/writer over the TLS socket (no hidden buffers, so select() stays honest)."""

    def __init__(self, sock):
        self.sock, self.buf = sock, bytearray()

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def readline(self, limit=65536):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self._fill()

    def read(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def readable(self, timeout):
        if self.buf or self.sock.pending():
            return True
        return bool(select.select([self.sock], [], [], max(timeout, 0))[0])

    def send(self, data):
        self.sock.sendall(data)


class Request:
    def __init__(self, method, target, headers, body):
        self.method, self.headers, self.body = method, headers, body
        split = urllib.parse.urlsplit(target)
        self.path, self.query = split.path, split.query
        self.params = urllib.parse.parse_qs(split.query)

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def param(self, name, default=None):
        return self.params.get(name, [default])[0]


class BadRequest(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def read_request(conn):
    line = conn.readline()
    while line in (b"\r\n", b"\n"):
        line = conn.readline()
    try:
        method, target, version = line.decode("latin-1").split()
    except ValueError:
        raise BadRequest(400, "malformed request line")
    headers = []
    while True:
        h = conn.readline().decode("latin-1").rstrip("\r\n")
        if not h:
            break
        if len(headers) > 200 or ":" not in h:
            raise BadRequest(400, "malformed headers")
        k, v = h.split(":", 1)
        headers.append((k.strip(), v.strip()))
    req = Request(method, target, headers, b"")
    req.keep_alive = version == "HTTP/1.1" and (req.header("Connection") or "").lower() != "close"
    if "chunked" in (req.header("Transfer-Encoding") or "").lower():
        body = bytearray()
        while True:
            size = int(conn.readline().split(b";")[0].strip(), 16)
            if len(body) + size > MAX_BODY:
                raise BadRequest(413, "request body too large")
            if size == 0:
                while conn.readline() not in (b"\r\n", b"\n"):
                    pass
                break
            body += conn.read(size)
            conn.readline()
        req.body = bytes(body)
    else:
        length = int(req.header("Content-Length") or 0)
        if length > MAX_BODY:
            raise BadRequest(413, "request body too large")
        req.body = conn.read(length)
    return req


# ---------------------------------------------------------------- WebSocket channels

class PeerClosed(Exception):
    pass


class ChannelSession:
    """Server side of a k8s channel WebSocket: frames, pings, stdin queue, resize."""

    def __init__(self, conn, server, tty):
        self.conn, self.server, self.tty = conn, server, tty
        self.stdin, self.stdin_eof, self.closed = deque(), False, False
        self.partial, self.partial_op = None, None

    def send_frame(self, opcode, payload):
        n = len(payload)
        head = bytes([0x80 | opcode]) + (bytes([n]) if n < 126 else
                                          struct.pack("!BH", 126, n) if n < 65536 else struct.pack("!BQ", 127, n))
        self.conn.send(head + payload)

    def send(self, channel, data=b""):
        for i in range(0, max(len(data), 1), 32768):
            self.send_frame(0x2, bytes([channel]) + data[i:i + 32768])

    def close(self, code=1000, reason=b""):
        if not self.closed:
            self.closed = True
            self.send_frame(0x8, struct.pack("!H", code) + reason)

    def read_frame(self):
        b0, b1 = self.conn.read(2)
        fin, opcode, masked, n = b0 & 0x80, b0 & 0x0F, b1 & 0x80, b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.conn.read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.conn.read(8))[0]
        if n > MAX_FRAME:
            self.close(1009, b"frame too large")
            raise PeerClosed
        if not masked:
            self.close(1002, b"client frames must be masked")
            raise PeerClosed
        key = self.conn.read(4)
        data = self.conn.read(n)
        if n:
            k = (key * (n // 4 + 1))[:n]
            data = (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")
        return fin, opcode, data

    def poll(self, timeout):
        """Handles at most one incoming frame if one arrives within timeout."""
        if not self.conn.readable(timeout):
            return
        fin, opcode, data = self.read_frame()
        if opcode == 0x9:
            self.send_frame(0xA, data)
            self.server.log({"ws_ping": len(data)})
        elif opcode == 0xA:
            pass
        elif opcode == 0x8:
            self.stdin_eof = True
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1000
            self.server.log({"ws_close_received": code})
            self.close(code if code in (1000, 1001) else 1000)
            raise PeerClosed
        elif opcode in (0x1, 0x2, 0x0):
            if opcode != 0x0:
                self.partial, self.partial_op = bytearray(), opcode
            elif self.partial is None:
                self.close(1002, b"unexpected continuation")
                raise PeerClosed
            self.partial += data
            if len(self.partial) > MAX_FRAME:
                self.close(1009, b"message too large")
                raise PeerClosed
            if fin:
                message, self.partial = bytes(self.partial), None
                self.on_message(message)
        else:
            self.close(1002, b"bad opcode")
            raise PeerClosed

    def on_message(self, message):
        if not message:
            return
        channel, payload = message[0], message[1:]
        if channel == 0 and payload:
            self.stdin.append(payload)
        elif channel == 4:
            try:
                size = json.loads(payload)
                self.server.log({"resize": [size.get("Width"), size.get("Height")]})
            except ValueError:
                self.server.log({"resize_invalid": payload.decode("latin-1")})
        elif channel == 255:
            self.server.log({"stream_close": list(payload)})
            if payload[:1] == b"\x00":
                self.stdin_eof = True

    def read_stdin(self):
        """Next stdin chunk, or None at EOF (v5 [255,0], or the peer going away)."""
        while not self.stdin and not self.stdin_eof:
            self.poll(30)
        return self.stdin.popleft() if self.stdin else None


def big_block():
    line = b"the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ\n"
    return (line * (65536 // len(line) + 1))[:65536]


BIG = big_block()


def simulate(argv, pod, stdin, tty):
    """A generator playing the container: yields ("out", channel, bytes), ("stdin",) -> chunk or
    None, ("sleep", seconds); returns the exit code."""
    if not argv:
        yield ("out", 2, b"no command given\n")
        return 126
    cmd, args = argv[0].rsplit("/", 1)[-1], argv[1:]
    if cmd == "cat" and args:
        code = 0
        for path in args:
            if path in FILES:
                yield ("out", 1, FILES[path].encode())
            elif path == "/etc/hostname":
                yield ("out", 1, f"{pod}\n".encode())
            else:
                yield ("out", 2, f"cat: {path}: No such file or directory\n".encode())
                code = 1
        return code
    if cmd == "cat":
        while stdin:
            chunk = yield ("stdin",)
            if chunk is None:
                break
            if tty:  # emulate the line discipline a little: ^D ends input, ^C interrupts, CR -> CRLF
                if b"\x03" in chunk:
                    return 130
                eof = b"\x04" in chunk
                chunk = chunk.split(b"\x04")[0].replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
                if chunk:
                    yield ("out", 1, chunk)
                if eof:
                    break
            else:
                yield ("out", 1, chunk)
        return 0
    if cmd in ("sh", "bash") and args[:1] == ["-c"] and len(args) >= 2:
        code = 0
        for part in args[1].split(";"):
            words = shlex.split(part)
            if words[:1] == ["exit"]:
                return int(words[1]) if len(words) > 1 else code
            if words:
                code = yield from simulate(words, pod, stdin, tty)
        return code
    if cmd in ("true", "false"):
        return 0 if cmd == "true" else 1
    if cmd == "echo":
        yield ("out", 1, (" ".join(args) + "\n").encode())
        return 0
    if cmd == "hostname":
        yield ("out", 1, f"{pod}\n".encode())
        return 0
    if cmd == "env":
        yield ("out", 1, f"HOSTNAME={pod}\nOWNER_EMAIL={PII}\nPATH=/usr/bin:/bin\n".encode())
        return 0
    if cmd == "sleep":
        yield ("sleep", min(float(args[0]) if args else 1.0, 120.0))
        return 0
    if cmd == "big":
        remaining = int(args[0]) if args else 1_000_000
        while remaining > 0:
            n = min(remaining, len(BIG))
            yield ("out", 1, BIG[:n])
            remaining -= n
        return 0
    yield ("out", 2, f'exec: "{argv[0]}": executable file not found in $PATH\n'.encode())
    return 127


def run_exec(session, argv, pod, opts):
    """Drives `simulate` over the session; returns the exit code (None if the peer went away)."""
    gen = simulate(argv, pod, opts["stdin"], opts["tty"])
    reply = None
    while True:
        try:
            action = gen.send(reply)
        except StopIteration as stop:
            return stop.value
        reply = None
        if action[0] == "out":
            channel = 1 if opts["tty"] else action[1]
            if opts["stdout" if channel == 1 else "stderr"]:
                session.send(channel, action[2])
            session.poll(0)
        elif action[0] == "stdin":
            reply = session.read_stdin()
        elif action[0] == "sleep":
            deadline = time.time() + action[1]
            while time.time() < deadline:
                session.poll(deadline - time.time())


# ---------------------------------------------------------------- HTTP handler

class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        srv = self.server
        raw = self.request
        raw.settimeout(30)
        try:
            sock = srv.tls.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        self.conn = Conn(sock)
        try:
            while True:
                sock.settimeout(300)
                try:
                    req = read_request(self.conn)
                except BadRequest as e:
                    self.respond(e.code, status(e.code, HTTPStatus(e.code).phrase.replace(" ", ""), str(e)),
                                 keep_alive=False)
                    return
                sock.settimeout(60)
                if not self.dispatch(req) or not req.keep_alive:
                    return
        except (EOFError, ConnectionError, ssl.SSLError, socket.timeout, OSError, PeerClosed, ValueError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass

    # -- responses

    def respond(self, code, obj, content_type="application/json", keep_alive=True):
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        lines = [f"HTTP/1.1 {code} {HTTPStatus(code).phrase}", f"Content-Type: {content_type}",
                 f"Content-Length: {len(body)}", "Cache-Control: no-cache, private",
                 f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S GMT', time.gmtime())}"]
        if not keep_alive:
            lines.append("Connection: close")
        self.conn.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return keep_alive

    def dispatch(self, req):
        srv = self.server
        auth = req.header("Authorization") or ""
        ok = hmac.compare_digest(auth.encode(), f"Bearer {srv.token}".encode())
        entry = {"method": req.method, "path": req.path, "query": req.query,
                 "impersonate_user": req.header("Impersonate-User"),
                 "impersonate_groups": req.header_all("Impersonate-Group"), "authorization_ok": ok}
        if srv.log_headers:
            entry["headers"] = [[k, v] for k, v in req.headers if k.lower() != "authorization"]
        srv.log(entry)
        if not ok:
            return self.respond(401, status(401, "Unauthorized", "Unauthorized"))
        parts = [urllib.parse.unquote(p) for p in req.path.split("/") if p]
        try:
            return self.route(req, parts)
        except (KeyError, IndexError, ValueError) as e:
            return self.respond(400, status(400, "BadRequest", f"bad request: {e}"))

    def route(self, req, parts):
        store, method = self.server.store, req.method
        if method == "GET" and parts == ["version"]:
            return self.respond(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.0",
                                      "gitCommit": "fake", "gitTreeState": "clean",
                                      "buildDate": "2024-12-11T00:00:00Z", "goVersion": "go1.23.4",
                                      "compiler": "gc", "platform": "linux/amd64"})
        if method == "GET" and parts == ["api"]:
            return self.respond(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]})
        if method == "GET" and parts == ["apis"]:
            return self.respond(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if method == "GET" and parts == ["api", "v1"]:
            return self.respond(200, resource_list())
        if parts[:2] != ["api", "v1"] or len(parts) < 3:
            return self.respond(404, NOT_FOUND)
        rest = parts[2:]
        if rest[0] in ("pods", "secrets", "configmaps", "namespaces") and len(rest) == 1 and method == "GET":
            return self.list(req, rest[0], None)
        if rest[0] != "namespaces":
            return self.respond(404, NOT_FOUND)
        ns = rest[1]
        if ns not in store.namespaces:
            if len(rest) == 3 and method == "GET":  # lists in a missing namespace are empty, as in k8s
                return self.list(req, rest[2], ns)
            return self.respond(404, not_found(*rest[2:4]) if len(rest) >= 4 else not_found("namespaces", ns))
        if len(rest) == 2:
            if method == "GET":
                return self.respond(200, store.namespaces[ns])
            if method == "DELETE":
                deleted = store.delete_namespace(ns)
                self.server.log({"event": "namespace_deleted", "name": ns})
                return self.respond(200, deleted)
        if len(rest) == 3 and method == "GET":
            return self.list(req, rest[2], ns)
        if len(rest) >= 4 and rest[2] in KINDS:
            matches = [o for o in store.items(rest[2], ns) if o["metadata"]["name"] == rest[3]]
            if not matches:
                return self.respond(404, not_found(rest[2], rest[3]))
            if len(rest) == 4 and method == "GET":
                return self.respond(200, matches[0])
            if rest[2] == "pods" and len(rest) == 5:
                if rest[4] in ("exec", "attach"):
                    return self.exec(req, matches[0], rest[4])
                if rest[4] == "log" and method == "GET":
                    return self.respond(200, f"started {rest[3]}\nlogin by {PII}\n".encode(), "text/plain")
        if len(rest) in (2, 4):
            return self.respond(405, status(405, "MethodNotAllowed", f"{method} is not supported here"))
        return self.respond(404, NOT_FOUND)

    def list(self, req, resource, ns):
        if resource not in KINDS or (resource == "namespaces" and ns):
            return self.respond(404, NOT_FOUND)
        items = self.server.store.items(resource, ns)
        selector = req.param("fieldSelector") or ""
        m = re.fullmatch(r"metadata\.name=+(.+)", selector)
        if m:
            items = [o for o in items if o["metadata"]["name"] == m.group(1)]
        as_table = "as=Table" in (req.header("Accept") or "")
        include = req.param("includeObject", "Metadata")
        if req.param("watch") in ("true", "1"):
            return self.watch(req, resource, items, as_table, include)
        rv = self.server.store.next_rv()
        if as_table:
            return self.respond(200, table(resource, items, include, rv))
        return self.respond(200, {"kind": KINDS[resource] + "List", "apiVersion": "v1",
                                  "metadata": {"resourceVersion": rv}, "items": items})

    def watch(self, req, resource, items, as_table, include):
        def event(kind, obj):
            if as_table:
                obj = table(resource, [obj], include, obj["metadata"]["resourceVersion"])
            return json.dumps({"type": kind, "object": obj}).encode() + b"\n"

        def chunk(data):
            self.conn.send(b"%x\r\n%s\r\n" % (len(data), data))

        self.conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                       b"Cache-Control: no-cache, private\r\n\r\n")
        for obj in items:
            chunk(event("ADDED", obj))
        if items and resource == "pods":
            time.sleep(0.5)
            changed = json.loads(json.dumps(items[0]))
            changed["metadata"]["resourceVersion"] = self.server.store.next_rv()
            changed["metadata"].setdefault("labels", {})["touched"] = "true"
            chunk(event("MODIFIED", changed))
        limits = [float(req.param("timeoutSeconds"))] if req.param("timeoutSeconds") else []
        m = re.fullmatch(r"(?:(\d+)m)?(\d+(?:\.\d+)?)s", req.param("timeout") or "")
        if m:
            limits.append(int(m.group(1) or 0) * 60 + float(m.group(2)))
        hold = min(limits + [300.0]) - 0.5 if limits else 1.0
        deadline = time.time() + hold
        while time.time() < deadline:  # notice a client hanging up early
            if self.conn.readable(min(0.5, max(deadline - time.time(), 0))):
                break
        chunk(b"")
        return True

    def exec(self, req, pod, kind):
        srv = self.server
        upgrade = (req.header("Upgrade") or "").lower()
        if upgrade.startswith("spdy"):
            srv.log({"event": "spdy_rejected", "path": req.path})
            return self.respond(403, status(403, "Forbidden", "this fake API server does not speak SPDY; "
                                            "use the WebSocket (v5.channel.k8s.io) protocol"))
        if upgrade != "websocket" or req.method != "GET":
            return self.respond(400, status(400, "BadRequest", "Upgrade request required"))
        offered = [p.strip() for h in req.header_all("Sec-WebSocket-Protocol") for p in h.split(",")]
        protocol = next((p for p in ("v5.channel.k8s.io", "v4.channel.k8s.io") if p in offered), None)
        key = req.header("Sec-WebSocket-Key")
        if (not protocol or not key or req.header("Sec-WebSocket-Version") != "13"
                or "upgrade" not in (req.header("Connection") or "").lower()):
            srv.log({"event": "ws_rejected", "offered": offered})
            return self.respond(400, status(400, "BadRequest", "need a WebSocket upgrade offering "
                                            "v5.channel.k8s.io or v4.channel.k8s.io"), keep_alive=False)
        flag = lambda name: req.param(name) in ("true", "1")
        opts = {"stdin": flag("stdin"), "stdout": flag("stdout"), "stderr": flag("stderr"),
                "tty": flag("tty")}
        argv = req.params.get("command", []) if kind == "exec" else ["cat"]
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.conn.send(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n").encode())
        srv.log({"exec": argv, "kind": kind, "namespace": pod["metadata"]["namespace"],
                 "pod": pod["metadata"]["name"], "container": req.param("container"), "protocol": protocol,
                 **opts})
        session = ChannelSession(self.conn, srv, opts["tty"])
        # Like the kubelet: an empty message on the lowest writable channel says "streams are open".
        session.send(1 if opts["stdout"] else 2 if opts["stderr"] and not opts["tty"] else 3)
        try:
            code = run_exec(session, argv, pod["metadata"]["name"], opts)
        except (PeerClosed, EOFError, OSError):
            srv.log({"exec_exit": None, "reason": "client went away"})
            return False
        srv.log({"exec_exit": code})
        if code == 0:
            result = {"metadata": {}, "status": "Success"}
        else:
            result = {"metadata": {}, "status": "Failure",
                      "message": "command terminated with non-zero exit code: error executing command "
                                 f"[{' '.join(argv)}], exit code {code}",
                      "reason": "NonZeroExitCode",
                      "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        session.send(3, json.dumps(result).encode())
        session.close(1000)
        deadline = time.time() + 2  # wait briefly for the client's close frame
        try:
            while time.time() < deadline:
                session.poll(deadline - time.time())
        except PeerClosed:
            pass
        return False


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, args):
        super().__init__((args.host, args.port), Handler)
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(args.cert, args.key)
        self.tls.set_alpn_protocols(["http/1.1"])
        self.token, self.store, self.log_headers = args.token, Store(), args.log_headers
        self.log_lock = threading.Lock()
        self.log_file = open(args.log, "a", encoding="utf-8")

    def log(self, entry):
        with self.log_lock:
            self.log_file.write(json.dumps(entry) + "\n")
            self.log_file.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--log-headers", action="store_true", help="also log request headers (not Authorization)")
    args = parser.parse_args()
    server = Server(args)
    print("ready", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
