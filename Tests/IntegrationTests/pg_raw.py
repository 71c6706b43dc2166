#!/usr/bin/env python3
"""Hand-made PostgreSQL protocol messages through the gateway: every path by which data could
leave unmasked (ParameterStatus, RowDescription names, error fields, notifications, FunctionCall)
and message types the gateway must refuse. Prints ok/FAIL lines; exits 1 on any failure.
usage: pg_raw.py PORT CONNECTION TOKEN [paths|scs]"""
import socket
import ssl
import struct
import sys

PORT, CONNECTION, TOKEN = int(sys.argv[1]), sys.argv[2], sys.argv[3]
MODE = sys.argv[4] if len(sys.argv) > 4 else "paths"
RAW = [b"jane.doe@example.com", b"268-45-8731", b"4111 1111 1111 1111", b"4111111111111111"]
failures = 0


def check(name, condition):
    global failures
    print(("ok   " if condition else "FAIL ") + name)
    if not condition:
        failures += 1


class Conn:
    def __init__(self):
        sock = socket.create_connection(("127.0.0.1", PORT), timeout=20)
        # The gateway takes logins over TLS only (the token is a password): SSLRequest first.
        sock.sendall(struct.pack("!ii", 8, 80877103))
        assert sock.recv(1) == b"S"
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.sock = context.wrap_socket(sock)
        self.buffer = b""
        params = b"user\x00alice\x00database\x00" + CONNECTION.encode() + b"\x00\x00"
        body = struct.pack("!i", 196608) + params
        self.sock.sendall(struct.pack("!i", len(body) + 4) + body)
        kind, _ = self.read()
        assert kind == b"R"
        self.send(b"p", TOKEN.encode() + b"\x00")
        self.until_ready()

    def send(self, kind, body):
        self.sock.sendall(kind + struct.pack("!i", len(body) + 4) + body)

    def read(self):
        while len(self.buffer) < 5:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None, b""
            self.buffer += chunk
        length = struct.unpack("!i", self.buffer[1:5])[0]
        while len(self.buffer) < length + 1:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None, b""
            self.buffer += chunk
        kind, body = self.buffer[:1], self.buffer[5:length + 1]
        self.buffer = self.buffer[length + 1:]
        return kind, body

    def until_ready(self):
        messages = []
        while True:
            kind, body = self.read()
            if kind is None:
                messages.append((None, b""))
                return messages
            messages.append((kind, body))
            if kind == b"Z":
                return messages

    def query(self, text):
        self.send(b"Q", text.encode() + b"\x00")
        return self.until_ready()


def raw_in(messages):
    blob = b"".join(body for _, body in messages)
    return [value for value in RAW if value in blob]


def error_text(messages):
    return b" ".join(body for kind, body in messages if kind == b"E").decode(errors="replace")


if MODE == "scs":
    # With standard_conforming_strings off the server reads 'a\' , $$' as one string and the
    # DROP as code; the gateway must decide the DROP although its default reading hides it.
    c = Conn()
    c.query("SET standard_conforming_strings = off")
    out = c.query("select 'a\\' , $$' ; drop table customers; -- $$")
    check("a DROP hidden by standard_conforming_strings = off in one Query is blocked",
          "DROP TABLE is not allowed here" in error_text(out))
    sys.exit(1 if failures else 0)

c = Conn()
out = c.query("select set_config('application_name', (select email from customers where id = 1), false)")
check("ParameterStatus after set_config carries no raw email", b"S" in [k for k, _ in out] and not raw_in(out))

c.query("DO $$ BEGIN EXECUTE format('create temp table leak(%I int)', "
        "(select email || ' ' || ssn from customers where id = 1)); END $$")
out = c.query("select * from leak")
check("RowDescription column name made of row values is masked", any(k == b"T" for k, _ in out) and not raw_in(out))

c.query("DO $$ BEGIN EXECUTE format('create temp table %I (a int not null)', "
        "(select email from customers where id = 1)); END $$")
out = c.query("DO $$ BEGIN EXECUTE format('insert into %I values (null)', (select email from customers where id = 1)); END $$")
check("error fields (message, table name, context) carry no raw email", "23502" in error_text(out) and not raw_in(out))

out = c.query("LISTEN \"jane.doe@example.com\"; NOTIFY \"jane.doe@example.com\", '4111 1111 1111 1111'")
check("NotificationResponse channel and payload are masked", any(k == b"A" for k, _ in out) and not raw_in(out))

c.query("create or replace function pg_temp.pe(int) returns text language sql as "
        "$$ select email || ' ' || ssn from customers where id = $1 $$")
out = c.query("select 'pg_temp.pe(int)'::regprocedure::oid")
oid = int([body for kind, body in out if kind == b"D"][0][6:])
c.send(b"F", struct.pack("!ihhhi", oid, 1, 1, 1, 4) + struct.pack("!i", 1) + struct.pack("!h", 0))
out = c.until_ready()
check("FunctionCall is refused with a message that points to SQL",
      "fast-path function calls are not allowed" in error_text(out) and not raw_in(out))
out = c.query("select pg_temp.pe(1)")
check("the session goes on after the refused FunctionCall, and SQL results are masked",
      any(k == b"D" for k, _ in out) and not raw_in(out))

c.send(b"y", b"garbage")
out = c.until_ready()
check("an unknown frontend message type gets an error and a closed connection",
      any(k == b"E" for k, _ in out) and out[-1][0] is None)

sys.exit(1 if failures else 0)
