#!/usr/bin/env python3
"""Generates labelled text with planted PII and secrets (positives) and look-alikes that must be
kept (decoys), in ten shapes: JSON API responses, psql table output, application logs, shell
sessions with env dumps and `kubectl get secret -o yaml` (the first four), and CSV exports, HTML
pages, XML/SOAP payloads, config files (.pgpass, .netrc, HCL, YAML, properties, compose,
Secret manifests), raw e-mail with headers, tracebacks and JSON logs.

    scripts/gen-corpus.py --out corpora/samples --bytes 30000 --seed 7       # the checked-in samples
    scripts/gen-corpus.py --out /tmp/bench --bytes 67108864 --seed 1 --no-labels   # benchmark text

Each shape goes to SHAPE.txt; labels go to labels.jsonl as {file, kind, value, positive}.
Shapes keep their seed (seed * 1000 + index in the default list), so adding shapes leaves the
earlier ones byte-identical.

Placeholders are decoys: a template or reference where a password would be (`${env.X}`,
`{{ .Values.x }}`, `var.db_password`) is not a secret and must be kept. Passwords are planted
as people choose and tools generate them (`Summer2026#`, random 12-24 characters, passphrases,
hex); literal defaults such as `changeme` are planted neither way.
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


    # --- positives of the other layouts (csv, html, xml, config, email, traceback) ------------
    def national_phone(self):
        """National layouts without a country code: UK, German, French, US."""
        return self.r.choice([
            f"020 {self.digits(4)} {self.digits(4)}",
            f"0{self.r.randint(113, 191)} {self.digits(3)} {self.digits(4)}",
            f"07{self.digits(3)} {self.digits(6)}",
            f"01{self.r.choice(['51', '52', '57', '60', '70', '76'])} {self.digits(4)} {self.digits(4)}",
            f"01{self.r.choice(['51', '52', '57', '60', '70', '76'])}{self.r.randint(0, 9)} {self.digits(7)}",
            f"0{self.r.choice(['30', '40', '69', '89'])} {self.digits(4)} {self.digits(4)}",
            f"0{self.r.choice(['30', '89'])}/{self.digits(7)}",
            f"0{self.r.randint(1, 9)} {self.digits(2)} {self.digits(2)} {self.digits(2)} {self.digits(2)}",
            f"({self.r.randint(201, 989)}) {self.r.randint(200, 999)}-{self.digits(4)}",
        ])

    def ssn_plain(self):
        return self.ssn().replace("-", "")

    def email_pct(self):
        return self.email().replace("@", "%40")

    def ipv6_full(self):
        """Addresses as mail servers and proxies print them (often compressed in the middle)."""
        groups = [format(self.r.randint(0, 0xFFFF), "x") for _ in range(8)]
        groups[0] = self.r.choice(["2001", "2a00", "2a01", "2600", "2607", "2c0f"])
        return self.r.choice([
            ":".join(groups[:4]) + "::" + groups[7],
            ":".join(groups),
            ":".join(groups[:2]) + "::" + ":".join(groups[6:]),
        ])

    def cfg_password(self):
        """A password as people choose and tools generate them (no quote, comma, space, <, >, &)."""
        return self.r.choice([
            lambda: self.alnum(self.r.randint(12, 24), string.ascii_letters + string.digits + "!#$%^*_.-~+=?@"),
            lambda: f"{self.r.choice(['Summer', 'Winter', 'Spring', 'Autumn', 'Welcome', 'Dragon'])}{self.r.randint(2015, 2026)}{self.r.choice('!#$*?')}",
            lambda: "-".join(self.alnum(self.r.randint(4, 6), string.ascii_lowercase) for _ in range(4)) + str(self.r.randint(1, 99)),
            lambda: self.alnum(32, "0123456789abcdef") if self.r.random() < 0.5 else self.alnum(20),
        ])()

    def aws_secret_cfg(self):
        # Real secret keys always mix cases and digits.
        while True:
            value = self.aws_secret()
            if any(c.islower() for c in value) and any(c.isupper() for c in value) and any(c.isdigit() for c in value):
                return value

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

    def placeholder(self):
        """Passwords that are not secrets: template references and well-known defaults (kept)."""
        return self.r.choice(["changeme", "${DB_PASSWORD}", "{{ .Values.db.password }}", "<password>", "********", "REDACTED", "%(db_password)s", "var.db_password"])

    def gecko_version(self):
        return f"rv:{self.r.randint(1, 9)}.{self.r.randint(0, 9)}.{self.r.randint(0, 9)}.{self.r.randint(1, 30)}"

    def nine_digits(self):
        return str(self.r.randint(100000000, 999999999))

    def epoch_ms(self):
        return str(1700000000000 + self.r.randint(0, 99999999999))

    def mac(self):
        return ":".join(self.alnum(2, "0123456789abcdef") for _ in range(6))

    def clock(self):
        return f"{self.r.randint(10, 23)}:{self.r.randint(10, 59)}:{self.r.randint(10, 59)}"

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
    if shape in ("shell", "config"):
        return f"-rw-r--r-- 1 deploy deploy {r.randint(100, 999999):>7} Mar {r.randint(1, 28):>2} 12:{r.randint(10, 59)} {word}-{g.alnum(5)}.log\n"
    if shape == "csv":
        return f"{r.randint(1, 99999)},{word},{r.randint(1, 999)}.{g.digits(2)},{g.timestamp()},{r.choice(['ok', 'retry'])}\n"
    if shape in ("html", "xml"):
        return f"<div class=\"{word}\" data-count=\"{r.randint(0, 500)}\">{word} status ok</div>\n"
    if shape == "email":
        return f"X-{word.title()}: {g.version()} ({r.randint(1, 64)})\n"
    if shape == "traceback":
        return f"  File \"/srv/app/{word}.py\", line {r.randint(1, 900)}, in {word}_loop\n"
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
        elif shape == "shell":
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
        else:
            line = LAYOUTS[shape](g, pos, dec)
        out.append(line)
        size += len(line)
        if density:
            # Dilute to about one positive per `density` bytes with lines that carry none.
            while size < planted * density:
                line = filler(shape, g)
                out.append(line)
                size += len(line)
    return "".join(out)


# --- the layouts added for held-out shapes --------------------------------------------------------
UA = "Mozilla/5.0 (Windows NT 6.1; WOW64; {rv}) Gecko/20100101 Firefox/3.5.{n}"


def csv_block(g, pos, dec):
    r = g.r
    kind = r.randrange(4)
    if kind == 0:  # AWS console credentials.csv
        rows = "".join(f"{r.choice(FIRST)}.{r.choice(LAST)},{pos('password', g.cfg_password())},{pos('aws_access_key_id', g.aws_key_id())},{pos('aws_secret_access_key', g.aws_secret_cfg())},https://{dec('aws_account', g.digits(12))}.signin.aws.amazon.com/console\n" for _ in range(r.randint(1, 3)))
        return "User name,Password,Access key ID,Secret access key,Console login link\n" + rows + "\n"
    if kind == 1:  # accessKeys.csv
        return f"Access key ID,Secret access key\n{pos('aws_access_key_id', g.aws_key_id())},{pos('aws_secret_access_key', g.aws_secret_cfg())}\n\n"
    if kind == 2:  # a users export
        head = "id,email,phone,ssn,signup_ip,user_agent,created_at,external_ref\n"
        rows = ""
        for _ in range(r.randint(2, 5)):
            phone = pos("phone", r.choice([g.national_phone(), g.phone()]))
            ua = UA.format(rv=dec("version", g.gecko_version()), n=r.randint(1, 19))
            rows += (f"{r.randint(1000, 99999)},{pos('email', g.email())},\"{phone}\",{pos('ssn', g.ssn())},{pos('ipv4', g.ipv4())},"
                     f"\"{ua}\",{dec('timestamp', g.timestamp())},{dec('order_id', g.nine_digits())}\n")
        return head + rows + "\n"
    head = "txn_id,paid_at,card,card_expiry,amount,currency,iban,status,retry_card\n"
    rows = ""
    for _ in range(r.randint(2, 5)):
        rows += (f"{dec('uuid', g.uuid())},{dec('timestamp', g.timestamp())},{pos('credit_card', g.card())},{r.randint(1, 12):02d}/{r.randint(25, 31)},"
                 f"{r.randint(1, 999)}.{g.digits(2)},EUR,{pos('iban', g.iban(spaced=False))},{r.choice(['paid', 'failed'])},{dec('luhn_fail', g.card(valid=False))}\n")
    return head + rows + "\n"


def html_block(g, pos, dec):
    r = g.r
    kind = r.randrange(3)
    if kind == 0:
        return (f"<form method=\"post\" action=\"/login\">\n  <input type=\"email\" name=\"email\" value=\"{pos('email', g.email())}\">\n"
                f"  <input type=\"password\" name=\"password\" id=\"pw\" value=\"{pos('password', g.cfg_password())}\" autocomplete=\"off\">\n"
                f"  <input type=\"hidden\" name=\"csrf_token\" value=\"{dec('uuid', g.uuid())}\">\n  <button>Sign in</button>\n</form>\n")
    if kind == 1:
        return (f"<tr class=\"customer\">\n  <td>{r.choice(FIRST).title()} {r.choice(LAST).title()}</td>\n  <td><a href=\"mailto:{pos('email', g.email())}\">mail</a></td>\n"
                f"  <td>{pos('phone', g.national_phone())}</td>\n  <td>{pos('ipv6', g.ipv6_full())}</td>\n  <td>{dec('timestamp', g.timestamp())}</td>\n"
                f"  <td><a href=\"/unsubscribe?email={pos('email', g.email_pct())}&amp;sig={dec('git_sha', g.sha())}\">unsubscribe</a></td>\n</tr>\n")
    return (f"<!-- generator: {dec('version', g.version())} build {dec('git_sha', g.sha())} -->\n"
            f"<p class=\"ua\">{UA.format(rv=dec('version', g.gecko_version()), n=r.randint(1, 19))}</p>\n"
            f"<p>Questions? Call {pos('phone', g.national_phone())} or write to <a href=\"/contact?from={pos('email', g.email_pct())}\">us</a>.</p>\n")


def xml_block(g, pos, dec):
    r = g.r
    kind = r.randrange(4)
    if kind == 0:  # Maven settings.xml
        return (f"<servers>\n  <server>\n    <id>nexus-releases</id>\n    <username>deploy</username>\n    <password>{pos('password', g.cfg_password())}</password>\n  </server>\n"
                f"  <server>\n    <id>nexus-snapshots</id>\n    <username>ci</username>\n    <password>{dec('placeholder', '${env.NEXUS_PASSWORD}')}</password>\n  </server>\n</servers>\n")
    if kind == 1:  # WS-Security
        return (f"<soapenv:Header>\n  <wsse:Security soapenv:mustUnderstand=\"1\">\n    <wsse:UsernameToken wsu:Id=\"UsernameToken-{r.randint(1, 999)}\">\n"
                f"      <wsse:Username>svc_{r.choice(FIRST)}</wsse:Username>\n"
                f"      <wsse:Password Type=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText\">{pos('password', g.cfg_password())}</wsse:Password>\n"
                f"      <wsse:Nonce EncodingType=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary\">{dec('blob', g.blob())}</wsse:Nonce>\n"
                f"      <wsu:Created>{dec('timestamp', g.timestamp())}</wsu:Created>\n    </wsse:UsernameToken>\n  </wsse:Security>\n</soapenv:Header>\n")
    if kind == 2:  # a SOAP body with a customer
        return (f"<soapenv:Body>\n  <ns2:UpdateCustomer>\n    <CustomerId>{dec('order_id', g.nine_digits())}</CustomerId>\n    <Email>{pos('email', g.email())}</Email>\n"
                f"    <SSN>{pos('ssn', g.ssn_plain())}</SSN>\n    <Phone>{pos('phone', g.r.choice([g.phone(), g.national_phone()]))}</Phone>\n"
                f"    <CardNumber>{pos('credit_card', g.card())}</CardNumber>\n    <PreviousCard>{dec('luhn_fail', g.card(valid=False))}</PreviousCard>\n"
                f"    <Iban>{pos('iban', g.iban())}</Iban>\n    <ClientIp>{pos('ipv4', g.ipv4())}</ClientIp>\n    <Updated>{dec('timestamp', g.timestamp())}</Updated>\n  </ns2:UpdateCustomer>\n</soapenv:Body>\n")
    # AWS STS response
    return (f"<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <AssumeRoleResult>\n    <Credentials>\n"
            f"      <AccessKeyId>{pos('aws_access_key_id', g.aws_key_id())}</AccessKeyId>\n      <SecretAccessKey>{pos('aws_secret_access_key', g.aws_secret_cfg())}</SecretAccessKey>\n"
            f"      <Expiration>{dec('timestamp', g.timestamp())}</Expiration>\n    </Credentials>\n  </AssumeRoleResult>\n"
            f"  <ResponseMetadata><RequestId>{dec('uuid', g.uuid())}</RequestId></ResponseMetadata>\n</AssumeRoleResponse>\n")


def config_block(g, pos, dec):
    r = g.r
    kind = r.randrange(7)
    host = f"db-{r.randint(1, 9)}.{r.choice(['prod', 'staging'])}.internal"
    if kind == 0:  # ~/.pgpass
        lines = "".join(f"{host}:{r.choice(['5432', '6432', '*'])}:{r.choice(['app', 'billing', '*'])}:{r.choice(['app', 'postgres', 'report_ro'])}:{pos('password', g.cfg_password())}\n" for _ in range(r.randint(1, 3)))
        return "$ cat ~/.pgpass\n# hostname:port:database:username:password\n" + lines
    if kind == 1:  # ~/.netrc
        if r.random() < 0.5:
            return f"$ cat ~/.netrc\nmachine api.heroku.com\n  login {pos('email', g.email())}\n  password {pos('password', g.cfg_password())}\nmachine git.heroku.com\n  login {pos('email', g.email())}\n  password {pos('password', g.cfg_password())}\n"
        return f"$ cat ~/.netrc\nmachine github.com login {r.choice(FIRST)} password {pos('password', g.cfg_password())}\n"
    if kind == 2:  # Terraform
        return (f"resource \"aws_db_instance\" \"{r.choice(FILLER_WORDS)}\" {{\n  engine         = \"postgres\"\n  engine_version = \"{dec('version', g.version())}\"\n"
                f"  username       = \"app\"\n  password       = \"{pos('password', g.cfg_password())}\"\n  port           = 5432\n}}\n\n"
                f"provider \"aws\" {{\n  region     = \"eu-west-1\"\n  access_key = \"{pos('aws_access_key_id', g.aws_key_id())}\"\n  secret_key = \"{pos('aws_secret_access_key', g.aws_secret_cfg())}\"\n}}\n\n"
                f"variable \"db_password\" {{\n  default = {dec('placeholder', 'var.db_password')}\n}}\n\n")
    if kind == 3:  # Helm values
        return (f"postgresql:\n  auth:\n    postgresPassword: \"{pos('password', g.cfg_password())}\"\n    username: app\n    password: '{pos('password', g.cfg_password())}'\n"
                f"  primary:\n    service:\n      ports:\n        postgresql: 5432\nredis:\n  auth:\n    password: \"{dec('placeholder', '{{ .Values.global.redisPassword }}')}\"\n  master:\n    {dec('port', 'port: 6379')}\n")
    if kind == 4:  # Java / Spring properties
        return (f"spring.datasource.url=jdbc:postgresql://{host}:5432/app\nspring.datasource.username=app\nspring.datasource.password={pos('password', g.cfg_password())}\n"
                f"aws.accessKeyId={pos('aws_access_key_id', g.aws_key_id())}\naws.secretKey={pos('aws_secret_access_key', g.aws_secret_cfg())}\n"
                f"minio.secret-key={pos('aws_secret_access_key', g.aws_secret_cfg())}\n{dec('port', 'server.port=8443')}\napp.build={dec('git_sha', g.sha())}\n\n")
    if kind == 5:  # docker compose
        return (f"services:\n  db:\n    image: postgres:16.2\n    environment:\n      {dec('env_user', 'POSTGRES_USER: postgres')}\n      POSTGRES_PASSWORD: {pos('password', g.cfg_password())}\n"
                f"    ports:\n      - \"5432:5432\"\n    volumes:\n      - data:/var/lib/postgresql/data\n  cache:\n    image: redis:7.2\n    command: redis-server --requirepass {pos('password', g.cfg_password())}\n"
                f"    ports:\n      - \"6379:6379\"\nvolumes:\n  data:\n")
    # a Secret manifest written by hand (data last), then a Deployment
    secret_b64 = base64.b64encode(g.cfg_password().encode()).decode()
    user_b64 = base64.b64encode(r.choice(FIRST).encode()).decode()
    return (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-creds\n  namespace: prod\ntype: Opaque\ndata:\n  DB_PASSWORD: {pos('k8s_secret_b64', secret_b64)}\n"
            f"  DB_USER: {pos('k8s_secret_b64', user_b64)}\n---\napiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n"
            f"        - name: app\n          {dec('port', 'containerPort: 8080')}\n          env:\n            - name: LOG_LEVEL\n              value: info\n")


def email_block(g, pos, dec):
    r = g.r
    sender, rcpt = g.email(), g.email()
    return (f"Return-Path: <{pos('email', sender)}>\n"
            f"Received: from mail-ej1-x62f.google.com (mail-ej1-x62f.google.com [IPv6:{pos('ipv6', g.ipv6_full())}])\n"
            f"\tby mx.example.com (Postfix) with ESMTPS id {g.alnum(12)}\n\tfor <{pos('email', rcpt)}>; Tue, 5 Mar 2024 {dec('clock', g.clock())} +0100 (CET)\n"
            f"Received: from [{pos('ipv4', g.ipv4())}] (port={r.randint(1024, 65535)} helo=localhost)\n"
            f"Authentication-Results: mx.example.com; spf=pass (sender IP is {pos('ipv6', g.ipv6_full())}) smtp.mailfrom=example.com\n"
            f"User-Agent: {UA.format(rv=dec('version', g.gecko_version()), n=r.randint(1, 19))}\n"
            f"X-Request-Id: {dec('uuid', g.uuid())}\nFrom: \"{r.choice(FIRST).title()}\" <{pos('email', sender)}>\nTo: {pos('email', rcpt)}\n"
            f"Subject: order {dec('order_id', g.order_id())}\nContent-Type: text/plain; charset=UTF-8\n\n"
            f"Hello,\nplease call me on {pos('phone', g.national_phone())} (mobile {pos('phone', g.national_phone())}) about invoice {dec('order_id', g.order_id())}.\n"
            f"Unsubscribe: https://news.example.com/u?e={pos('email', g.email_pct())}&id={dec('git_sha', g.sha())}\n\n")


def traceback_block(g, pos, dec):
    r = g.r
    ts = g.timestamp()
    kind = r.randrange(5)
    if kind == 0:
        ip = g.ipv4()
        return (f"Error: connect ECONNREFUSED {pos('ipv4', ip)}:6379\n    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16) {{\n"
                f"  errno: -111,\n  code: 'ECONNREFUSED',\n  syscall: 'connect',\n  address: '{ip}',\n  {dec('port', 'port: 6379')}\n}}\n")
    if kind == 1:
        return (f"Traceback (most recent call last):\n  File \"/srv/app/billing/charge.py\", line {r.randint(10, 400)}, in charge\n"
                f"    client.charge(card=\"{pos('credit_card', g.card())}\", amount={r.randint(1, 999)})\n"
                f"  File \"/usr/lib/python3.11/site-packages/requests/adapters.py\", line 519, in send\n    raise ConnectionError(e, request=request)\n"
                f"requests.exceptions.ConnectionError: HTTPSConnectionPool(host='{pos('ipv4', g.ipv4())}', port=443): Max retries exceeded (user {pos('email', g.email())})\n")
    if kind == 2:
        return (f"{ts} ERROR [main] o.h.engine.jdbc.spi.SqlExceptionHelper - FATAL: password authentication failed for user \"app\"\n"
                f"org.postgresql.util.PSQLException: connection to jdbc:postgresql://{pos('ipv4', g.ipv4())}:5432/app?user=app&password={pos('password', g.cfg_password())} refused\n"
                f"\tat org.postgresql.core.v3.ConnectionFactoryImpl.openConnectionImpl(ConnectionFactoryImpl.java:{r.randint(100, 999)})\n"
                f"\tat com.zaxxer.hikari.pool.HikariPool.createPoolEntry(HikariPool.java:{r.randint(100, 999)})\n")
    if kind == 3:
        record = {"ts": ts, "level": "error", "msg": "login failed", "trace_id": dec("uuid", g.uuid()),
                  "client": {"ip": f"[{pos('ipv6', g.ipv6_full())}]:{r.randint(1024, 65535)}", "ua": UA.format(rv=dec("version", g.gecko_version()), n=r.randint(1, 19))},
                  "body": {"username": pos("email", g.email()), "password": pos("password", g.cfg_password())},
                  "ssn": pos("ssn", g.ssn_plain()), "duration_ms": dec("epoch_ms", g.epoch_ms())}
        return json.dumps(record) + "\n"
    card = g.card()
    while " " in card or "-" in card:
        card = g.card()
    return r.choice([
        lambda: f"{ts} WARN  payment declined {dec('date', ts[:10])} {pos('credit_card', card)} code=05\n",
        lambda: f"{ts} DEBUG card on file: {pos('credit_card', g.card())} {r.randint(1, 12):02d}/{r.randint(25, 31)} cvv {g.digits(3)}\n",
        lambda: f"{ts} INFO  reference {pos('ssn', g.ssn())} {pos('credit_card', card)}\n",
        lambda: f"{ts} INFO  ssn={pos('ssn', g.ssn_plain())} verified; account {dec('order_id', g.nine_digits())} mac {dec('mac', g.mac())}\n",
    ])()


LAYOUTS = {"csv": csv_block, "html": html_block, "xml": xml_block, "config": config_block, "email": email_block, "traceback": traceback_block}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--bytes", type=int, default=40000, help="bytes per shape")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-labels", action="store_true")
    parser.add_argument("--density", type=int, default=0, help="about one positive per this many bytes (0: as dense as generated)")
    parser.add_argument("--shapes", default="api_json,psql,app_log,shell,csv,html,xml,config,email,traceback")
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
