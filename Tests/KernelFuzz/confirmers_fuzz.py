#!/usr/bin/env python3
"""Differential fuzz of the software confirmers (confirmers.c) against Hyperscan.

For every pattern the confirmers know, random windows are confirmed twice:
  * mk_confirm with only that pattern enabled (slot_of[id] = 0, all others 0xFF, slots = 1);
  * a Hyperscan block scan of that single pattern compiled with
    HS_FLAG_SOM_LEFTMOST | HS_FLAG_MULTILINE (| HS_FLAG_CASELESS for the caseless detectors),
    reduced to the leftmost start per end.
Both must give the same (start, end) list. A combined run also enables several patterns in
different slots at once (the path that runs the secret scan next to the other families).

Usage (in a venv with `pip install hyperscan pyyaml`):
    python confirmers_fuzz.py [--windows N] [--seed S] [--only secret|existing|combined] [--bench]
"""
import argparse
import ctypes
import os
import random
import re
import subprocess
import sys
import tempfile
import time

import hyperscan
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
KERNEL = os.path.join(ROOT, "Sources", "CMaskKernel")
INCLUDE = os.path.join(KERNEL, "include")
SWIFT = os.path.join(ROOT, "Sources", "MaskEngine", "Masking", "NativeConfirmers.swift")
SECRETS = os.path.join(ROOT, "corpora", "secrets.yaml")
MAX_WINDOW = 1024


# MARK: - Build and bind

def build(workdir):
    lib = os.path.join(workdir, "libconfirmers.so")
    subprocess.check_call(["cc", "-O2", "-shared", "-fPIC", "-o", lib, os.path.join(KERNEL, "confirmers.c"), os.path.join(KERNEL, "runs.c"), "-I", INCLUDE])
    return lib


def enum_ids():
    """MK_PAT_* name -> value, from the enum in mask_kernel.h."""
    text = open(os.path.join(INCLUDE, "mask_kernel.h")).read()
    body = text[text.index("MK_PAT_CARD_IIN = 0"):text.index("MK_PAT_COUNT") + len("MK_PAT_COUNT")]
    names = re.findall(r"\b(MK_PAT_\w+)", body)
    return {name: i for i, name in enumerate(names)}


FOUND = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32)


class Confirmer:
    def __init__(self, lib, count):
        self.lib = ctypes.CDLL(lib)
        self.lib.mk_confirm.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_uint32, FOUND,
                                        ctypes.c_void_p]
        self.lib.mk_confirm.restype = ctypes.c_int
        self.count = count
        self.out = []
        out = self.out
        self.callback = FOUND(lambda _ctx, slot, start, end: out.append((slot, start, end)))

    def confirm(self, data, slot_of):
        """[(slot, start, end)] in report order, or None when mk_confirm declines."""
        del self.out[:]
        slots = max(s for s in slot_of if s != 0xFF) + 1
        rc = self.lib.mk_confirm(data, len(data), bytes(slot_of), slots, self.callback, None)
        return list(self.out) if rc == 1 else None


# MARK: - Patterns

def secret_patterns(ids):
    doc = yaml.safe_load(open(SECRETS))
    by_id = {d["id"]: d for d in doc["detectors"]}
    short = by_id["secret_assignment"]
    long_ = by_id["secret_assignment_long"]
    assert short["caseless"] and long_["caseless"]
    names = ["MK_PAT_SECRET_ASSIGN", "MK_PAT_SECRET_ASSIGN_DQUOTED", "MK_PAT_SECRET_ASSIGN_SQUOTED"]
    out = [(n, p, True) for n, p in zip(names, short["patterns"])]
    out.append(("MK_PAT_SECRET_ASSIGN_LONG", long_["pattern"], True))
    return [(name, ids[name], expr, caseless) for name, expr, caseless in out]


def existing_patterns(ids):
    text = open(SWIFT).read()
    pairs = re.findall(r'#"(.*?)"#: Int\((MK_PAT_\w+)\)', text)
    # The Swift file may already know ids that this copy of confirmers.c does not (work in progress
    # in the main tree): those are left out, and said so.
    skipped = [name for _, name in pairs if name not in ids]
    if skipped:
        print(f"existing patterns not in this mask_kernel.h (skipped): {skipped}")
    # The secret assignments come from the corpus (caseless): see secret_patterns.
    pairs = [(expr, name) for expr, name in pairs if name in ids and not name.startswith("MK_PAT_SECRET_")]
    assert pairs, "no existing pattern found"
    caseless = {"MK_PAT_CONN_PASSWORD", "MK_PAT_DOB_MONTH_FIRST", "MK_PAT_DOB_DAY_FIRST", "MK_PAT_XML_PASSWORD", "MK_PAT_HTML_INPUT",
                "MK_PAT_HTML_INPUT_VALUE_FIRST", "MK_PAT_KEYED_VALUE", "MK_PAT_KEYED_ELEMENT"}
    return [(name, ids[name], expr, name in caseless) for expr, name in pairs]


class Reference:
    """One Hyperscan database per pattern."""

    def __init__(self, expr, caseless):
        flags = hyperscan.HS_FLAG_SOM_LEFTMOST | hyperscan.HS_FLAG_MULTILINE
        if caseless:
            flags |= hyperscan.HS_FLAG_CASELESS
        self.db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self.db.compile(expressions=[expr.encode()], ids=[0], flags=[flags])
        self.best = {}
        best = self.best

        def on_match(_id, start, end, _flags, _ctx):
            old = best.get(end)
            if old is None or start < old:
                best[end] = start
            return 0

        self.on_match = on_match

    def spans(self, data):
        self.best.clear()
        self.db.scan(data, match_event_handler=self.on_match)
        return sorted((s, e) for e, s in self.best.items())


# MARK: - Windows

KEYWORDS = ["password", "PASSWD", "Secret", "secret_key", "client_secret", "apiKey", "API_KEY", "private_key", "pwd",
            "pass", "access_token", "AuthToken", "refresh_token", "token", "passphrase", "passwd", "secretkey",
            "clientSecret", "privatekey", "ACCESSTOKEN", "auth_token", "refreshToken", "api_key", "secret", "bypass",
            "pwdx", "passw"]
PREFIXES = ["DB_", "postgres", "x", "_", "", "", "", " ", ".", "spring.datasource.", "\"", "'", "{\\\"", "-", "__"]
BEFORE_SEP = ["", "", "", "\"", "'", "\\\"", "\\\\\"", "\\", " ", "  ", "\t", " \t ", "\" ", "\v", "\n", "\f ", "\r"]
SEPS = ["=", ":", ":=", "==", "=:", "::", "= =", ": :"]
AFTER_SEP = ["", "", "", " ", "  ", "\t", " \t", "\"", "'", " \"", "\\\"", "\\\\\"", "\\", "\\'", " '", "\n", "\v",
             "   ", "    ", "\f\f", "\r "]
VALUE_COMMON = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/+=-_.!#$%:@\\"
VALUE_RARE = " ,;\"'\t\xe9\x80\xff{}"
TERMINATORS = [" ", "\t", "\"", "'", ",", ";", "\r\n", "\n", "\r", "", "", "\v", "\f", "\r\r\n", "}", "\\\""]
FILLER = "abcdefghij KLMNOP_:=\"',;\t\n\r\\0123"


def mixed_case(rng, word):
    r = rng.random()
    if r < 0.4:
        return word
    if r < 0.55:
        return word.upper()
    if r < 0.7:
        return word.lower()
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in word)


def secret_value(rng):
    r = rng.random()
    if r < 0.3:
        length = rng.randint(60, 70)
    elif r < 0.5:
        length = rng.randint(1, 10)
    else:
        length = rng.randint(1, 80)
    rare = rng.random() < 0.5
    chars = []
    for _ in range(length):
        if rare and rng.random() < 0.1:
            chars.append(rng.choice(VALUE_RARE))
        else:
            chars.append(rng.choice(VALUE_COMMON))
    return "".join(chars)


def quoted_value(rng):
    """A quoted value with words apart by spaces, commas or semicolons (sometimes a stray quote or
    line break inside, or no closing quote)."""
    quote = rng.choice("\"'")
    words = [secret_value(rng)[:rng.randint(1, 12)] for _ in range(rng.randint(1, 4))]
    body = "".join(w + rng.choice([" ", ",", ";", ", ", "", "\t"]) for w in words)
    r = rng.random()
    if r < 0.05:
        body += "\n" + secret_value(rng)[:5]
    elif r < 0.1:
        body += "\r"
    elif r < 0.15:
        body += rng.choice("\"'")
    close = quote if rng.random() < 0.9 else rng.choice(["", "\"", "'"])
    return quote + body + close


def secret_unit(rng):
    if rng.random() < 0.1:
        return "".join(rng.choice(FILLER) for _ in range(rng.randint(1, 12)))
    parts = []
    clean = rng.random() < 0.4
    if clean:
        # A well-formed assignment (any value): every pattern has a fair chance.
        parts.append(rng.choice(["", "", " ", "\n", "_", "DB_", "\"", "{\\\""]))
        parts.append(mixed_case(rng, rng.choice(KEYWORDS + ["password", "passwd", "passphrase", "secret"] * 2)))
        parts.append(rng.choice(["", "", "\"", "'", "\\\"", " ", "\t "]))
        parts.append(rng.choice(":="))
        parts.append(rng.choice(["", "", " ", "  ", "\t"]))
    else:
        if rng.random() < 0.5:
            parts.append(rng.choice(PREFIXES))
        parts.append(mixed_case(rng, rng.choice(KEYWORDS)))
        if rng.random() < 0.1:
            parts.append(mixed_case(rng, rng.choice(KEYWORDS)))  # overlapping / glued names
        parts.append(rng.choice(BEFORE_SEP))
        parts.append(rng.choice(SEPS) if rng.random() < 0.95 else "")
        parts.append(rng.choice(AFTER_SEP))
    quote = rng.random()
    value = secret_value(rng)
    if clean and rng.random() < 0.3:
        quote = 0.0  # a quoted value with spaces
    if quote < 0.25:
        parts.append(quoted_value(rng))
    elif quote < 0.35:
        parts.append("\"" + value + "\"")
    elif quote < 0.45:
        parts.append("'" + value + "'")
    else:
        parts.append(value)
    parts.append(rng.choice(TERMINATORS))
    return "".join(parts)


def secret_window(rng, length):
    out = []
    size = 0
    while size < length:
        unit = secret_unit(rng)
        out.append(unit)
        size += len(unit)
    return "".join(out)[:length].encode("latin-1")


TEMPLATES = ["ddd-dd-dddd", "ddd dd dddd", "ddddddddd", "0n dd dd dd dd", "0n.dd.dd.dd.dd", "d.d.d.d", "dd.ddd.d.dd",
             "ddd.ddd.ddd.ddd", "(ddd) ddd-dddd", "(ddd)ddd.dddd", "1-ddd-ddd-dddd", "1 ddd ddd dddd", "ddd.ddd.dddd",
             "0nddd/dddddd", "0nd dddddddd", "0n ddd ddd", "0nddd-dddd-ddd", "0nd-dddddd", "(0ndd) ddd ddd",
             "(0nddd)dddd-dddd", "+d ddd ddd dddd", "+dd (d) ddd dd dd", "+ddd.ddd.ddd", "4ddd dddd dddd dddd",
             "5nddd-dddd-dddd-dddd", "3ddd dddddd ddddd", "3ddd-dddddd-ddddd", "6011dddddddddddd", "4dddddddddddd"]


def template(rng):
    out = []
    for ch in rng.choice(TEMPLATES):
        if ch == "d":
            out.append(rng.choice("0123456789"))
        elif ch == "n":
            out.append(rng.choice("0123456789" if rng.random() < 0.2 else "123456789"))
        elif rng.random() < 0.03:
            out.append(rng.choice(" .-/()"))
        else:
            out.append(ch)
    if rng.random() < 0.1:
        del out[rng.randrange(len(out))]
    return "".join(out)


def existing_unit(rng):
    r = rng.random()
    digits = lambda n: "".join(rng.choice("0123456789") for _ in range(n))
    if r < 0.3:
        return template(rng) + rng.choice(["", " ", "x", "0", ".", "-", "\n", ", "])
    r = rng.random()
    if r < 0.30:  # digit groups with separators: cards, SSNs, phones, IPv4
        groups = [digits(rng.randint(1, 6)) for _ in range(rng.randint(1, 6))]
        seps = [rng.choice([" ", "-", ".", "", "/", ") ", "(", " (", ""]) for _ in groups]
        head = rng.choice(["", "", "+", "(0", "0", "1 ", "4", "5", "3", "6", "2", "(", "+4", "0"])
        return head + "".join(g + s for g, s in zip(groups, seps))
    if r < 0.40:
        return rng.choice(["4", "5", "3", "6", "2", ""]) + digits(rng.choice([3, 9, 11, 12, 13, 15, 16, 19]))
    if r < 0.55:  # e-mail
        local = "".join(rng.choice("abcXY09._%+-") for _ in range(rng.randint(0, 8)))
        at = rng.choice(["@", "@", "%40", "%2540", "&#64;", "&#x40;", "%4", "&#6"])
        labels = [("".join(rng.choice("abcDE09-") for _ in range(rng.randint(0, 6)))) for _ in range(rng.randint(1, 4))]
        return local + at + ".".join(labels) + rng.choice(["", ".com", ".c", ".io1", "."])
    if r < 0.65:  # IBAN
        body = "".join(rng.choice("ABCXYZ0123456789") for _ in range(rng.randint(0, 34)))
        if rng.random() < 0.5:
            body = " ".join(body[i:i + 4] for i in range(0, len(body), 4))
        return rng.choice(["DE", "GB", "FR", "de", "D"]) + digits(2) + rng.choice(["", " "]) + body
    if r < 0.70:  # credentials in URLs and connection strings, PEM headers
        word = lambda alphabet, n: "".join(rng.choice(alphabet) for _ in range(n))
        kind = rng.random()
        if kind < 0.4:
            scheme = rng.choice(["", "x", "postgres", "mongodb+srv", "a.b-c", "1ab", "jdbc:mysql", word("aZ09+.-", rng.randint(0, 24))])
            special = lambda: rng.choice(":/@ \"'<>\t") if rng.random() < 0.2 else ""
            user = word("abU0._%-", rng.randint(0, 6)) + special()
            password = word("pW9:/#", rng.randint(0, 8)) + special()
            return scheme + rng.choice(["://", "://", ":/", "//"]) + user + rng.choice([":", ":", ""]) + password + rng.choice(["@", "@", ""])
        if kind < 0.7:
            name = rng.choice(["password", "PASSWORD", "Passwd", "pwd", "pWd", "passw", "xpwd", "_pwd"])
            return rng.choice(["", "?", "&", ";", "_", "a", " "]) + name + rng.choice(["=", "=", ":"]) + word("aB9=&; \"'<>\t", rng.randint(0, 10))
        words = " ".join(rng.choice(["RSA", "EC", "OPENSSH", "PRIVATE", "ENCRYPTED", "A", "ABCDEFGHIJKLM", "x", "DSA"])
                         for _ in range(rng.randint(0, 4)))
        return (rng.choice(["-----BEGIN ", "-----BEGIN ", "------BEGIN ", "----BEGIN ", "-----BEGIN  "]) + words
                + rng.choice([" ", ""]) + rng.choice(["PRIVATE KEY", "PRIVATE KEY BLOCK", "PRIVATE  KEY", "PUBLIC KEY"])
                + rng.choice(["-----", "-----", "----", " -----", ""]))
    if r < 0.75:  # dates
        month = rng.choice(["Jan", "feb", "MAR", "April", "May", "Mayday", "Sept", "October", "Novemberrr", "Dec", "Ja"])
        day = digits(rng.choice([1, 2, 2, 3]))
        year = rng.choice(["19", "20", "18", "2"]) + digits(rng.choice([2, 2, 1, 3]))
        sep = lambda: rng.choice(["-", "/", ".", "-", " ", ""])
        return rng.choice([
            year + sep() + digits(rng.choice([1, 2, 2])) + sep() + digits(rng.choice([1, 2, 2, 3])),
            day + sep() + digits(rng.choice([1, 2, 3])) + sep() + year,
            month + rng.choice(["", ".", ".."]) + rng.choice([" ", " ", ""]) + day + rng.choice([", ", ",", " "]) + year,
            day + rng.choice([" ", " ", "-"]) + month + rng.choice(["", "."]) + rng.choice([" ", ""]) + year,
        ]) + rng.choice(["", " ", "0", "a", "\n", "-"])
    if r < 0.80:  # Kubernetes Secret data lines
        b64 = "".join(rng.choice("QUJDZGVm+/09aZ") for _ in range(rng.choice([3, 4, 6, 7, 8, 12, 14, 15, 16, 128, 129, 130])))
        return (rng.choice(["\n", "\n", "", "\r\n"]) + " " * rng.choice([0, 1, 2, 2, 4, 12, 13])
                + rng.choice(["password", "tls.key", "a_b-c.d", "", "k y"]) + rng.choice([": ", ": ", ":", ":  "]) + b64
                + rng.choice(["", "=", "==", "===", " ", "  ", "\r", " \r"]) + rng.choice(["\n", "\n", "", "x", "\r\n"]))
    if r < 0.86:  # passwords in files and on command lines
        word = lambda alphabet, n: "".join(rng.choice(alphabet) for _ in range(n))
        value = lambda: word("aB9!:/#-=", rng.randint(0, 9)) + rng.choice(["", "", " ", "'", "<", "\n"])
        return rng.choice([
            rng.choice(["\n", "", "\r\n"]) + word("ab.*-_:", rng.randint(0, 5)) + ":" + rng.choice(["5432", "*", "123456", "", "1"]) + ":"
            + word("db: ", rng.randint(0, 3)) + ":" + word("us: ", rng.randint(0, 3)) + ":" + value(),
            rng.choice(["login", "account", "machine", "logins", "xlogin"]) + rng.choice([" ", "\t", "\n", "", "\x0b"]) + word("uh.", rng.randint(0, 4))
            + rng.choice([" ", "\n", "\r\n", ""]) + rng.choice(["password", "passwd", "login"]) + rng.choice([" ", "\t", ""]) + value(),
            word("ab ,", rng.randint(0, 5)) + "," + word("xy", rng.randint(0, 3)) + "," + rng.choice(["AKIA", "ASIA", "AKIB"])
            + word("ABZ019", rng.choice([15, 16, 16, 17])) + rng.choice(["", ",", "a", "\n"]),
            "," + word("pw", rng.randint(0, 3)) + ",https://" + word("0123456789", rng.choice([11, 12, 12])) + ".signin.aws.amazon.com",
            rng.choice(["mysql", "mysqldump", "mysqlsh", "mysqlx", "xmysql"]) + word(" -uhab\t", rng.randint(0, 6))
            + rng.choice([" -p", "\t-p", "-p", " -P"]) + rng.choice(["", "'", '"']) + value(),
            rng.choice(["", " ", "\n", "'", "x", "\t"]) + rng.choice(["-", "--", "---"])
            + rng.choice(["password", "passwd", "pass", "requirepass", "masterauth", "db-password", "admin-password", "pas"])
            + rng.choice(["=", " ", "  ", "\t", ""]) + rng.choice(["", "'", '"']) + value(),
        ])
    if r < 0.90:  # passwords in markup
        word = lambda alphabet, n: "".join(rng.choice(alphabet) for _ in range(n))
        text = lambda: word("aB9 =\"'<>/", rng.choice([0, 1, 3, 8, 20, 130, 260]))
        attributes = lambda: word("a =\"'x", rng.choice([0, 2, 6, 40, 210, 310]))
        name = rng.choice(["password", "Passwd", "pass", "api_key", "secretKey", "db_pwd", "xpasswordy", "authtoken", "passphrase"])
        return rng.choice([
            "<" + rng.choice(["", "wsse:", "a.b-c:", "1x:", "ns:"]) + word("ab_", rng.choice([0, 2, 33])) + name
            + rng.choice([">", " " + attributes() + ">", "\t>", "x>"]) + text() + rng.choice(["</", "</", "<", "\n</", ""]),
            "<" + rng.choice(["input", "INPUT", "inputx"]) + rng.choice([" ", "  ", ""]) + attributes()
            + rng.choice(["type=", "TYPE='", 'type="', "xtype="]) + rng.choice(["password", "passwordx", "Password"]) + rng.choice(["'", '"', " "])
            + attributes() + rng.choice(["value=", "VALUE=", "xvalue="]) + rng.choice(['"', "'", ""]) + text() + rng.choice([">", "", '"']),
            "<input " + attributes() + 'value="' + text() + '"' + attributes() + rng.choice(["type=", "type='"])
            + rng.choice(["password", "passwordx"]) + rng.choice([">", "'>", ""]),
            rng.choice(["key=", "name=", "monkey=", "Key="]) + rng.choice(['"', "'", ""]) + word("ab_-", rng.randint(0, 3)) + name
            + word("x-", rng.randint(0, 2)) + rng.choice(['"', "'", ""]) + rng.choice([" ", "\t", "", "  "])
            + rng.choice(["value=", "", " a=1>"]) + rng.choice(['"', "'", ""]) + text() + rng.choice(["</", "", '"']),
        ])
    if r < 0.93:  # JWT
        seg = lambda n: "".join(rng.choice("abcXYZ019_-") for _ in range(n))
        return rng.choice(["eyJ", "eyJ", "eyj", "xeyJ"]) + seg(rng.randint(0, 9)) + rng.choice([".", ".", ""]) + seg(
            rng.randint(0, 4))
    return "".join(rng.choice(" \t\n.,;:-_()+@aZ0123456789") for _ in range(rng.randint(1, 8)))


def existing_window(rng, length):
    out = []
    size = 0
    while size < length:
        unit = existing_unit(rng)
        out.append(unit)
        size += len(unit)
    return "".join(out)[:length].encode("latin-1")


def mixed_window(rng, length):
    out = []
    size = 0
    while size < length:
        unit = secret_unit(rng) if rng.random() < 0.5 else existing_unit(rng)
        out.append(unit)
        size += len(unit)
    return "".join(out)[:length].encode("latin-1")


def window_length(rng):
    return rng.randint(1, MAX_WINDOW) if rng.random() < 0.05 else rng.randint(1, 300)


# MARK: - Runs

def run_single(confirmer, patterns, make_window, windows, rng, label):
    refs = [(name, pid, expr, Reference(expr, caseless)) for name, pid, expr, caseless in patterns]
    stats = {name: [0, 0] for name, _, _, _ in patterns}  # windows, matching windows
    failures = 0
    for w in range(windows):
        data = make_window(rng, window_length(rng))
        for name, pid, expr, ref in refs:
            slot_of = [0xFF] * confirmer.count
            slot_of[pid] = 0
            got = confirmer.confirm(data, slot_of)
            want = ref.spans(data)
            stats[name][0] += 1
            if want:
                stats[name][1] += 1
            ok = got is not None and [(s, e) for _, s, e in got] == want and all(sl == 0 for sl, _, _ in got)
            if not ok:
                failures += 1
                if failures <= 20:
                    print(f"MISMATCH {name} window={data!r}\n  hyperscan={want}\n  confirm  ={got}")
    print(f"[{label}] windows per pattern: {windows}")
    for name, (n, m) in stats.items():
        print(f"  {name:32s} windows={n} matching={m} ({100.0 * m / n:.1f}%)")
    print(f"[{label}] mismatches: {failures}")
    return failures


def fixed_windows():
    """The YAML examples and hand-written edge cases (long blank runs, chained separators,
    windows of separators and names only, the longest window)."""
    doc = yaml.safe_load(open(SECRETS))
    out = []
    for det in doc["detectors"]:
        if not det["id"].startswith("secret_assignment"):
            continue
        for kind in ("match", "no_match"):
            out += [e.encode("utf-8") for e in det.get("examples", {}).get(kind, [])]
    out += [
        b"token=" * 170, (b"token=" * 200)[:1024], b"password:" + b" " * 1000 + b"abcdefgh",
        b"password" + b" " * 500 + b"=" + b" " * 500 + b"abcdef", b":" * 1024, b"=" * 1024, b"=:" * 512,
        b"secret_key=" + b"A" * 1013, b"_token: " + b"x" * 64, b"_token: " + b"x" * 63, b"a_token:\t\v\f" + b"y" * 70,
        b"Password: 'a b'", b'PASSWORD=\\"abcdefg"', b'password\\"=\\"abcdefg\\"', b"pass:\\abcdef",
        b"pass:\\'abcdef'", b"client_secret=abcdef\r", b"client_secret=abcdef\r\n", b"client_secret=abcdef\r\r",
        b"client_secret=abcdef\n", b"pwd==abcdef", b"pwd:=abcdef;", b"xpwd=abcdefg ", b"x_pwd=abcdefg ",
        b"passphrase : \"a, b\"", b"passphrase:'a;b'", b"passphrase:'ab'", b"secret:\"a\nb \"",
        b"\"secret\"\t:\t\"x y\"", b"token\"   :   \"" + b"Z" * 64, b"token\"    :\"" + b"Z" * 64,
        b"ACCESS_TOKEN=" + b"q" * 64 + b" " + b"private_key=" + b"k" * 80,
    ]
    return out


def run_fixed(confirmer, patterns):
    refs = [(name, pid, Reference(expr, caseless)) for name, pid, expr, caseless in patterns]
    failures = 0
    windows = fixed_windows()
    matched = 0
    for data in windows:
        for name, pid, ref in refs:
            slot_of = [0xFF] * confirmer.count
            slot_of[pid] = 0
            got = confirmer.confirm(data, slot_of)
            want = ref.spans(data)
            matched += bool(want)
            if got is None or [(s, e) for _, s, e in got] != want:
                failures += 1
                print(f"MISMATCH fixed {name} window={data!r}\n  hyperscan={want}\n  confirm  ={got}")
    print(f"[fixed] {len(windows)} windows x {len(refs)} patterns, {matched} with matches, mismatches: {failures}")
    return failures


def run_combined(confirmer, patterns, windows, rng):
    """Several detectors at once: the secret patterns next to other families, in distinct slots."""
    refs = {name: (pid, Reference(expr, caseless)) for name, pid, expr, caseless in patterns}
    layouts = [
        [["MK_PAT_SECRET_ASSIGN", "MK_PAT_SECRET_ASSIGN_DQUOTED", "MK_PAT_SECRET_ASSIGN_SQUOTED"],
         ["MK_PAT_SECRET_ASSIGN_LONG"], ["MK_PAT_EMAIL_AT", "MK_PAT_EMAIL_PERCENT", "MK_PAT_EMAIL_ENTITY"],
         ["MK_PAT_CARD_IIN", "MK_PAT_CARD_VISA", "MK_PAT_CARD_AMEX"], ["MK_PAT_JWT"], ["MK_PAT_IPV4"],
         ["MK_PAT_IBAN_COMPACT", "MK_PAT_IBAN_SPACED"], ["MK_PAT_PHONE_E164", "MK_PAT_PHONE_US"]],
        [["MK_PAT_SECRET_ASSIGN", "MK_PAT_SECRET_ASSIGN_DQUOTED", "MK_PAT_SECRET_ASSIGN_SQUOTED"],
         ["MK_PAT_SECRET_ASSIGN_LONG"]],
        [["MK_PAT_JWT"], ["MK_PAT_SECRET_ASSIGN_LONG"]],
        [["MK_PAT_EMAIL_AT", "MK_PAT_EMAIL_PERCENT", "MK_PAT_EMAIL_ENTITY"], ["MK_PAT_SECRET_ASSIGN_DQUOTED"]],
        [["MK_PAT_URL_CREDENTIALS"], ["MK_PAT_CONN_PASSWORD"], ["MK_PAT_PEM_PRIVATE_KEY"],
         ["MK_PAT_SECRET_ASSIGN", "MK_PAT_SECRET_ASSIGN_DQUOTED", "MK_PAT_SECRET_ASSIGN_SQUOTED"],
         ["MK_PAT_EMAIL_AT", "MK_PAT_EMAIL_PERCENT", "MK_PAT_EMAIL_ENTITY"]],
        [["MK_PAT_XML_PASSWORD"], ["MK_PAT_HTML_INPUT", "MK_PAT_HTML_INPUT_VALUE_FIRST"], ["MK_PAT_KEYED_VALUE"], ["MK_PAT_KEYED_ELEMENT"],
         ["MK_PAT_PASSWORD_FLAG"], ["MK_PAT_MYSQL_FLAG"], ["MK_PAT_NETRC_LOGIN", "MK_PAT_NETRC_MACHINE"], ["MK_PAT_PGPASS"]],
        [["MK_PAT_DOB_ISO", "MK_PAT_DOB_NUMERIC", "MK_PAT_DOB_MONTH_FIRST", "MK_PAT_DOB_DAY_FIRST"],
         ["MK_PAT_K8S_SECRET_VALUE", "MK_PAT_K8S_SECRET_LONG"], ["MK_PAT_AWS_CSV_KEY", "MK_PAT_AWS_CSV_CONSOLE"],
         ["MK_PAT_CARD_IIN", "MK_PAT_CARD_VISA", "MK_PAT_CARD_AMEX"]],
    ]
    failures = 0
    matching = 0
    for w in range(windows):
        data = mixed_window(rng, window_length(rng))
        layout = layouts[w % len(layouts)]
        slot_of = [0xFF] * confirmer.count
        want = []
        for slot, names in enumerate(layout):
            best = {}
            for name in names:
                pid, ref = refs[name]
                slot_of[pid] = slot
                for s, e in ref.spans(data):
                    if e not in best or s < best[e]:
                        best[e] = s
            want += [(slot, s, e) for e, s in sorted(best.items())]
        got = confirmer.confirm(data, slot_of)
        if want:
            matching += 1
        if got != want:
            failures += 1
            if failures <= 20:
                print(f"MISMATCH combined layout={layout} window={data!r}\n  hyperscan={want}\n  confirm  ={got}")
    print(f"[combined] windows={windows} matching={matching} mismatches={failures}")
    return failures


BENCH_C = r"""
#include "mask_kernel.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static size_t hits;
static void on_found(void *c, uint32_t s, uint32_t a, uint32_t b) { (void)c; (void)s; (void)a; (void)b; hits++; }
int main(int argc, char **argv) {
    FILE *f = fopen(argv[1], "rb");
    int pattern = atoi(argv[2]);
    static uint8_t buf[1 << 24];
    size_t total = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    uint8_t slot_of[MK_PAT_COUNT];
    for (int i = 0; i < MK_PAT_COUNT; i++) slot_of[i] = 0xFF;
    slot_of[pattern] = 0;
    size_t windows = 0, bytes = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    for (int rep = 0; rep < 20; rep++) {
        for (size_t p = 0; p + 2 <= total;) {
            size_t n = buf[p] | (buf[p + 1] << 8);
            p += 2;
            mk_confirm(buf + p, n, slot_of, 1, on_found, NULL);
            p += n; windows++; bytes += n;
        }
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    printf("pattern %d: %zu windows, %.0f ns/window, %.2f ns/byte (mean window %.0f bytes)\n", pattern, windows,
           ns / windows, ns / bytes, (double)bytes / windows);
    return 0;
}
"""


LOG_FIELDS = ["ts=2026-12-06T14:43:41.123Z", "level=info", "msg=\"request done\"", "path=/api/v1/users?id=123&page=2",
              "status=200", "duration_ms=12", "user=alice", "remote=10.1.2.3:5432", "\"trace\": \"4bf92f3577b34da6\",",
              "{\"event\": \"login\",", "host: web-1", "retry=3", "Content-Type: application/json"]


def log_window(rng, length):
    """A log-like window (key=value fields, JSON) with one secret assignment somewhere."""
    fields = [rng.choice(LOG_FIELDS) for _ in range(length // 12 + 2)]
    fields.insert(rng.randrange(len(fields)), secret_unit(rng))
    text = " ".join(fields)
    start = rng.randint(0, max(0, len(text) - length))
    return text[start:start + length].encode("latin-1")


def bench(workdir, patterns, rng):
    exe = os.path.join(workdir, "bench")
    src = os.path.join(workdir, "bench.c")
    open(src, "w").write(BENCH_C)
    subprocess.check_call(["cc", "-O2", "-I", INCLUDE, "-o", exe, src, os.path.join(KERNEL, "confirmers.c"), os.path.join(KERNEL, "runs.c")])
    runs = [("1-300, fuzz generator (dense: a separator every ~20 bytes)", secret_window, lambda: rng.randint(1, 300)),
            ("520, fuzz generator", secret_window, lambda: 520),
            ("520, log lines with one assignment", log_window, lambda: 520)]
    for i, (label, generator, make) in enumerate(runs):
        path = os.path.join(workdir, f"windows-{i}.bin")
        with open(path, "wb") as f:
            for _ in range(20000):
                data = generator(rng, make())
                f.write(len(data).to_bytes(2, "little") + data)
        print(f"timing, windows of length {label}:")
        for name, pid, _, _ in patterns:
            sys.stdout.write(f"  {name}: ")
            sys.stdout.flush()
            subprocess.check_call([exe, path, str(pid)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--windows", type=int, default=200000)
    ap.add_argument("--combined-windows", type=int, default=50000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", choices=["secret", "existing", "combined"])
    ap.add_argument("--bench", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    workdir = tempfile.mkdtemp(prefix="confirmers-fuzz-")
    ids = enum_ids()
    confirmer = Confirmer(build(workdir), ids["MK_PAT_COUNT"])
    secrets = secret_patterns(ids)
    existing = existing_patterns(ids)
    if args.bench:
        bench(workdir, secrets, rng)
        return 0
    failures = 0
    t0 = time.time()
    if args.only in (None, "secret"):
        failures += run_fixed(confirmer, secrets)
        failures += run_single(confirmer, secrets, secret_window, args.windows, rng, "secret")
    if args.only in (None, "existing"):
        failures += run_single(confirmer, existing, existing_window, args.windows, rng, "existing")
    if args.only in (None, "combined"):
        failures += run_combined(confirmer, secrets + existing, args.combined_windows, rng)
    print(f"total mismatches: {failures} ({time.time() - t0:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
