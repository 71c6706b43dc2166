#!/usr/bin/env python3
"""Generates labelled text in four shapes (JSON API responses, psql table output, application
logs, shell sessions with env dumps and `kubectl get secret -o yaml`), with planted PII and
secrets (positives) and look-alikes that must be kept (decoys).

    scripts/gen-corpus.py --out corpora/samples --bytes 40000 --seed 7       # the checked-in samples
    scripts/gen-corpus.py --out /tmp/bench --bytes 67108864 --seed 1 --no-labels   # benchmark text

Each shape goes to SHAPE.txt; labels go to labels.jsonl as {file, kind, value, positive}.
Every value is generated here (valid checksums for positives, broken ones for decoys); the
planted density is about one positive per 300 bytes and as many decoys.
"""
import argparse
import base64
import json
import os
import random
import string
import zlib

B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
FIRST = ["ana", "ben", "chloe", "dmitri", "emma", "farid", "grace", "hiro", "ines", "jonas", "kofi", "lena", "marta", "nils", "olga", "pavel", "quinn", "rosa", "sven", "tariq"]
LAST = ["schmidt", "garcia", "nguyen", "okafor", "rossi", "kowalski", "tanaka", "dubois", "smith", "larsen", "haddad", "novak"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "uni-example.de", "example.co.uk"]
IBAN_LEN = {"DE": 22, "FR": 27, "GB": 22, "NL": 18, "ES": 24, "IT": 27, "BE": 16, "AT": 20, "CH": 21, "PL": 28}


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def digits(self, n):
        return "".join(self.r.choice(string.digits) for _ in range(n))

    def alnum(self, n, alphabet=string.ascii_letters + string.digits):
        return "".join(self.r.choice(alphabet) for _ in range(n))

    # --- positives -------------------------------------------------------------------------
    def email(self):
        return f"{self.r.choice(FIRST)}.{self.r.choice(LAST)}{self.r.randint(1, 99)}@{self.r.choice(DOMAINS)}"

    @staticmethod
    def luhn_digit(body):
        total = 0
        for i, ch in enumerate(reversed(body)):
            d = int(ch)
            if i % 2 == 0:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
        return str((10 - total % 10) % 10)

    def card(self, valid=True):
        prefix, length = self.r.choice([("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("6011", 16), ("65", 16), ("34", 15), ("37", 15)])
        body = prefix + self.digits(length - len(prefix) - 1)
        check = self.luhn_digit(body)
        if not valid:
            check = str((int(check) + self.r.randint(1, 9)) % 10)
        number = body + check
        style = self.r.choice(["plain", "space", "dash"])
        if length == 16 and style != "plain":
            sep = " " if style == "space" else "-"
            return sep.join(number[i:i + 4] for i in range(0, 16, 4))
        if length == 15 and style != "plain":
            sep = " " if style == "space" else "-"
            return f"{number[:4]}{sep}{number[4:10]}{sep}{number[10:]}"
        return number

    def iban(self, valid=True, spaced=None):
        country = self.r.choice(list(IBAN_LEN))
        bban = self.digits(IBAN_LEN[country] - 4)
        numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
        check = 98 - int(numeric) % 97
        if not valid:
            check = (check + self.r.randint(1, 50)) % 97 + 2
        value = f"{country}{check:02d}{bban}"
        if spaced if spaced is not None else self.r.random() < 0.5:
            value = " ".join(value[i:i + 4] for i in range(0, len(value), 4))
        return value

    def ssn(self, valid=True):
        if valid:
            area = self.r.choice([a for a in range(1, 900) if a != 666])
            return f"{area:03d}-{self.r.randint(1, 99):02d}-{self.r.randint(1, 9999):04d}"
        area = self.r.choice([0, 666, self.r.randint(900, 999)])
        return f"{area:03d}-{self.r.randint(1, 99):02d}-{self.r.randint(1, 9999):04d}"

    def phone(self):
        return self.r.choice([
            f"+1 {self.r.randint(201, 989)} {self.r.randint(200, 999)} {self.digits(4)}",
            f"+44 20 {self.digits(4)} {self.digits(4)}",
            f"+49 {self.r.randint(151, 179)} {self.digits(8)}",
            f"+33 {self.r.randint(1, 7)} {self.digits(2)} {self.digits(2)} {self.digits(2)} {self.digits(2)}",
            f"({self.r.randint(201, 989)}) {self.r.randint(200, 999)}-{self.digits(4)}",
            f"{self.r.randint(201, 989)}-{self.r.randint(200, 999)}-{self.digits(4)}",
        ])

    def ipv4(self):
        return ".".join(str(self.r.randint(1, 254)) for _ in range(4))

    def ipv6(self):
        groups = [format(self.r.randint(0, 0xFFFF), "x") for _ in range(8)]
        groups[0] = self.r.choice(["2001", "2a00", "2600", "fe80"])
        if self.r.random() < 0.5:
            return ":".join(groups[:3]) + "::" + groups[7]
        return ":".join(groups)

    def aws_key_id(self):
        return "AKIA" + self.alnum(16, string.ascii_uppercase + "234567")

    def aws_secret(self):
        return self.alnum(40, string.ascii_letters + string.digits + "+/")

    def github(self):
        if self.r.random() < 0.7:
            body = self.alnum(30)
            crc = zlib.crc32(body.encode())
            check = ""
            while crc:
                crc, rem = divmod(crc, 62)
                check = B62[rem] + check
            return f"gh{self.r.choice('pousr')}_{body}{check.rjust(6, '0')}"
        return f"github_pat_11{self.alnum(20, string.ascii_uppercase + string.digits)}_{self.alnum(59)}"

    def slack(self):
        return f"xoxb-{self.digits(12)}-{self.digits(13)}-{self.alnum(24)}"

    def stripe(self):
        return f"{self.r.choice(['sk', 'rk'])}_live_{self.alnum(self.r.choice([24, 99]))}"

    @staticmethod
    def b64url(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def jwt(self):
        header = self.b64url(json.dumps({"alg": self.r.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}).encode())
        payload = self.b64url(json.dumps({"sub": self.digits(9), "name": self.r.choice(FIRST), "iat": 1710000000 + self.r.randint(0, 99999)}).encode())
        signature = self.b64url(self.r.randbytes(32))
        return f"{header}.{payload}.{signature}"

    def pem(self, escaped):
        body = base64.b64encode(self.r.randbytes(self.r.choice([120, 300]))).decode()
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        kind = self.r.choice(["RSA ", "EC ", ""])
        nl = "\\n" if escaped else "\n"
        return f"-----BEGIN {kind}PRIVATE KEY-----{nl}" + nl.join(lines) + f"{nl}-----END {kind}PRIVATE KEY-----"

    def password(self):
        return self.alnum(self.r.randint(12, 20), string.ascii_letters + string.digits + "!~*_.-")

    # --- decoys ----------------------------------------------------------------------------
    def uuid(self):
        return "-".join(self.alnum(n, "0123456789abcdef") for n in (8, 4, 4, 4, 12))

    def sha(self):
        return self.alnum(40, "0123456789abcdef")

    def version(self):
        return f"{self.r.randint(0, 12)}.{self.r.randint(0, 40)}.{self.r.randint(0, 99)}"

    def timestamp(self):
        return f"2024-0{self.r.randint(1, 9)}-{self.r.randint(10, 28)}T{self.r.randint(10, 23)}:{self.r.randint(10, 59)}:{self.r.randint(10, 59)}.{self.digits(3)}Z"

    def order_id(self):
        return self.r.choice([f"ORD-2024-{self.digits(8)}", f"PO{self.digits(10)}", f"INV-{self.digits(6)}"])

    def blob(self):
        return base64.b64encode(self.r.randbytes(self.r.choice([16, 32, 48]))).decode()


FILLER_WORDS = ["cache", "warmup", "scheduler", "heartbeat", "shard", "replica", "compaction", "retry", "gateway", "index"]


def filler(shape, g):
    """A line of the shape that carries no personal data or secret (sometimes a decoy)."""
    r = g.r
    word = r.choice(FILLER_WORDS)
    if shape == "api_json":
        return json.dumps({"status": 200, "path": f"/v1/{word}s", "duration_ms": r.randint(1, 900),
                           "response": {"items": r.randint(0, 50), "next_cursor": g.alnum(12), "build": g.version()}}) + "\n"
    if shape == "psql":
        return f" {r.randint(1, 99999):>6} | {word + '-' + g.alnum(6):<24} | {r.randint(1, 999)}.{g.digits(2):<8} | {r.choice(['t', 'f'])}\n"
    if shape == "app_log":
        return f"{g.timestamp()} INFO  [{word}] GET /healthz -> 200 in {r.randint(1, 40)}ms (worker {r.randint(1, 64)})\n"
    return f"-rw-r--r-- 1 deploy deploy {r.randint(100, 999999):>7} Mar {r.randint(1, 28):>2} 12:{r.randint(10, 59)} {word}-{g.alnum(5)}.log\n"


def build(shape, g, target, labels, fname, density=0):
    out = []
    size = 0
    planted = 0

    def pos(kind, value):
        nonlocal planted
        planted += 1
        labels.append({"file": fname, "kind": kind, "value": value, "positive": True})
        return value

    def dec(kind, value):
        labels.append({"file": fname, "kind": kind, "value": value, "positive": False})
        return value

    r = g.r
    while size < target:
        if shape == "api_json":
            record = r.choice([
                lambda: {"id": dec("uuid", g.uuid()), "email": pos("email", g.email()), "phone": pos("phone", g.phone()), "created_at": dec("timestamp", g.timestamp())},
                lambda: {"order_id": dec("order_id", g.order_id()), "card": {"number": pos("credit_card", g.card())}, "attempt": {"number": dec("luhn_fail", g.card(valid=False))}},
                lambda: {"account_holder": r.choice(FIRST).title(), "iban": pos("iban", g.iban()), "rejected": dec("bad_iban", g.iban(valid=False))},
                lambda: {"aws_access_key_id": pos("aws_access_key_id", g.aws_key_id()), "aws_secret_access_key": pos("aws_secret_access_key", g.aws_secret()), "etag": dec("blob", g.blob())},
                lambda: {"access_token": pos("jwt", g.jwt()), "token_type": "Bearer", "session": dec("uuid", g.uuid())},
                lambda: {"github": {"token": pos("github_token", g.github()), "head_sha": dec("git_sha", g.sha())}, "slack": {"bot_token": pos("slack_token", g.slack())}},
                lambda: {"stripe": {"secret_key": pos("stripe_key", g.stripe())}, "api_version": dec("version", g.version())},
                lambda: (lambda key: (pos("pem_private_key", json.dumps(key)[1:-1]), {"private_key": key, "key_id": dec("git_sha", g.sha())})[1])(g.pem(escaped=False)),
                lambda: {"ip": pos("ipv4", g.ipv4()), "ip6": pos("ipv6", g.ipv6()), "app_version": dec("version", g.version())},
                lambda: {"ssn": pos("ssn", g.ssn()), "tax_check": {"input": dec("bad_ssn", g.ssn(valid=False)), "valid": False}},
            ])()
            line = json.dumps({"status": 200, "request_id": g.uuid(), "response": record}) + "\n"
        elif shape == "psql":
            rows = []
            for _ in range(r.randint(3, 8)):
                rows.append(f" {r.randint(1, 99999):>6} | {pos('email', g.email()):<40} | {pos('phone', g.phone()):<18} | {pos('credit_card', g.card()):<20} | {dec('order_id', g.order_id()):<18} | {dec('timestamp', g.timestamp())}")
            header = "   id   | email                                    | phone              | card                 | order              | created_at\n" + "-" * 8 + "+" + "-" * 42 + "+" + "-" * 20 + "+" + "-" * 22 + "+" + "-" * 20 + "+" + "-" * 26 + "\n"
            line = header + "\n".join(rows) + f"\n({len(rows)} rows)\n\n"
            if r.random() < 0.5:
                line += f" id |     ssn     |           iban            | ip\n----+-------------+---------------------------+----------------\n  {r.randint(1, 99)} | {pos('ssn', g.ssn())} | {pos('iban', g.iban(spaced=False)):<25} | {pos('ipv4', g.ipv4())}\n  {r.randint(1, 99)} | {dec('bad_ssn', g.ssn(valid=False))} | {dec('bad_iban', g.iban(valid=False, spaced=False)):<25} | {dec('version', g.version())}\n(2 rows)\n\n"
        elif shape == "app_log":
            ts = g.timestamp()
            line = r.choice([
                lambda: f"{ts} INFO  [auth] login ok user={pos('email', g.email())} ip={pos('ipv4', g.ipv4())} session={dec('uuid', g.uuid())}\n",
                lambda: f"{ts} WARN  [pay] card {pos('credit_card', g.card())} declined for order {dec('order_id', g.order_id())}; retry card {dec('luhn_fail', g.card(valid=False))} failed Luhn\n",
                lambda: f"{ts} ERROR [db] could not connect to postgresql://app:{pos('password', g.password())}@db-{r.randint(1, 9)}.internal:5432/app (build {dec('git_sha', g.sha())})\n",
                lambda: f"{ts} DEBUG [http] headers: Authorization: Bearer {pos('jwt', g.jwt())} X-Request-ID: {dec('uuid', g.uuid())}\n",
                lambda: f"{ts} INFO  [sshd] Accepted publickey for deploy from {pos('ipv6', g.ipv6())} port {r.randint(1024, 65535)}\n",
                lambda: f"{ts} INFO  [notify] posting with token {pos('slack_token', g.slack())} (client {dec('version', g.version())})\n",
                lambda: f"{ts} INFO  [sepa] transfer {dec('order_id', g.order_id())} to {pos('iban', g.iban())} amount {r.randint(10, 9999)}.{g.digits(2)} EUR\n",
                lambda: f"{ts} WARN  [payroll] rejected tax id {dec('bad_ssn', g.ssn(valid=False))}; verified ssn={pos('ssn', g.ssn())}\n",
                lambda: f"{ts} INFO  [cache] rotated blob {dec('blob', g.blob())} digest {dec('git_sha', g.sha())}\n",
            ])()
        else:  # shell
            secret_b64 = base64.b64encode(g.password().encode()).decode()
            user_b64 = base64.b64encode(r.choice(FIRST).encode()).decode()
            line = r.choice([
                lambda: f"$ env | grep -i -e key -e token -e pass\nAWS_ACCESS_KEY_ID={pos('aws_access_key_id', g.aws_key_id())}\nAWS_SECRET_ACCESS_KEY={pos('aws_secret_access_key', g.aws_secret())}\nGITHUB_TOKEN={pos('github_token', g.github())}\nDB_PASSWORD={pos('password', g.password())}\nBUILD_SHA={dec('git_sha', g.sha())}\n",
                lambda: f"$ kubectl get secret db-creds -o yaml\napiVersion: v1\ndata:\n  password: {pos('k8s_secret_b64', secret_b64)}\n  username: {pos('k8s_secret_b64', user_b64)}\nkind: Secret\nmetadata:\n  creationTimestamp: \"{dec('timestamp', g.timestamp())}\"\n  name: db-creds\n  namespace: prod\n  uid: {dec('uuid', g.uuid())}\ntype: Opaque\n",
                lambda: f"$ cat ~/.ssh/id_deploy\n{pos('pem_private_key', g.pem(escaped=False))}\n",
                lambda: f"$ curl -s https://api.internal/v1/me -H 'Authorization: Bearer {pos('jwt', g.jwt())}'\n{{\"email\": \"{pos('email', g.email())}\", \"phone\": \"{pos('phone', g.phone())}\", \"id\": \"{dec('uuid', g.uuid())}\"}}\n",
                lambda: f"$ git log -1 --format=%H\n{dec('git_sha', g.sha())}\n$ cat VERSION\n{dec('version', g.version())}\n",
                lambda: f"$ stripe config --list\nlive_mode_api_key = {pos('stripe_key', g.stripe())}\n",
            ])()
        out.append(line)
        size += len(line)
        if density:
            # Dilute to about one positive per `density` bytes with lines that carry none.
            while size < planted * density:
                line = filler(shape, g)
                out.append(line)
                size += len(line)
    return "".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--bytes", type=int, default=40000, help="bytes per shape")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-labels", action="store_true")
    parser.add_argument("--density", type=int, default=0, help="about one positive per this many bytes (0: as dense as generated)")
    parser.add_argument("--shapes", default="api_json,psql,app_log,shell")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    labels = []
    for index, shape in enumerate(args.shapes.split(",")):
        g = Gen(args.seed * 1000 + index)
        fname = f"{shape}.txt"
        text = build(shape, g, args.bytes, labels, fname, args.density)
        with open(os.path.join(args.out, fname), "w", encoding="utf-8") as f:
            f.write(text)
    if not args.no_labels:
        with open(os.path.join(args.out, "labels.jsonl"), "w", encoding="utf-8") as f:
            for label in labels:
                f.write(json.dumps(label) + "\n")


if __name__ == "__main__":
    main()
