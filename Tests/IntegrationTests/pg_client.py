#!/usr/bin/env python3
"""psycopg 3 through the gateway: prepared statements (extended protocol), server-side cursors,
COPY TO STDOUT and a prompt cancel. usage: pg_client.py DSN"""
import sys
import threading
import time

import psycopg

RAW = ["jane.doe@example.com", "268-45-8731", "DE89370400440532013000", "4111 1111 1111 1111"]
failures = 0


def check(name, condition):
    global failures
    print(("ok   " if condition else "FAIL ") + name)
    if not condition:
        failures += 1


dsn = sys.argv[1]
with psycopg.connect(dsn, autocommit=True) as conn:
    # Prepared statement, executed several times (psycopg prepares after repeated use; force it).
    rows = []
    for _ in range(3):
        rows += conn.execute("select id, email, ssn, iban from customers where id = %s", (1,), prepare=True).fetchall()
    check("prepared statement rows arrive", len(rows) == 3)
    check("prepared statement results masked", all(value not in str(rows) for value in RAW))
    check("prepared statement keeps ids", rows[0][0] == 1)

    # Binary results: text columns masked, integers intact.
    with conn.cursor(binary=True) as cur:
        cur.execute("select id, email from customers order by id")
        binary = cur.fetchall()
    check("binary-format text columns masked", all("example" not in str(row[1]) for row in binary))
    check("binary-format integers intact", [row[0] for row in binary] == [1, 2, 3])

    # Server-side cursor.
    with conn.transaction():
        with conn.cursor(name="c1") as cur:
            cur.itersize = 1
            cur.execute("select email, card from customers order by id")
            fetched = list(cur)
    check("server-side cursor fetches every row", len(fetched) == 3)
    check("server-side cursor rows masked", all(value not in str(fetched) for value in RAW))

    # COPY TO STDOUT.
    data = b""
    with conn.cursor() as cur:
        with cur.copy("COPY (select email, ssn, note from customers order by id) TO STDOUT") as copy:
            for block in copy:
                data += bytes(block)
    text = data.decode()
    check("COPY TO STDOUT arrives", text.count("\n") == 3)
    check("COPY TO STDOUT masked", all(value not in text for value in RAW))

    # A blocked statement raises, and the connection stays usable.
    try:
        conn.execute("drop table customers")
        check("blocked statement raises", False)
    except psycopg.errors.InsufficientPrivilege as error:
        check("blocked statement raises 42501", "not allowed" in str(error))
    check("connection usable after a block", conn.execute("select 7").fetchone()[0] == 7)

    # Cancel a long query.
    def cancel_soon():
        time.sleep(1.0)
        conn.cancel()

    threading.Thread(target=cancel_soon).start()
    start = time.monotonic()
    try:
        conn.execute("select pg_sleep(30)")
        check("pg_sleep was cancelled", False)
    except psycopg.errors.QueryCanceled:
        elapsed = time.monotonic() - start
        check(f"cancel returns promptly ({elapsed:.1f}s)", elapsed < 5)
    check("connection usable after a cancel", conn.execute("select 8").fetchone()[0] == 8)

sys.exit(1 if failures else 0)
