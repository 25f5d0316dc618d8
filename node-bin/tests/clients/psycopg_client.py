"""Drives a running node with psycopg 3: server-side parameter binding, typed results,
errors with SQLSTATEs, COPY, and a session that stays usable after an error.

Usage: python3 psycopg_client.py PORT
"""
import datetime
from decimal import Decimal
import sys

import psycopg

port = int(sys.argv[1])
with psycopg.connect(host="127.0.0.1", port=port, user="root", dbname="dev", autocommit=True) as conn:
    cur = conn.cursor()
    cur.execute("CREATE TABLE py (id bigint PRIMARY KEY, name varchar, score double precision, day date)")
    day = datetime.date(2024, 2, 29)
    cur.executemany(
        "INSERT INTO py VALUES (%s, %s, %s, %s)",
        [(1, "ann", 1.5, day), (2, "bob", None, day), (3, "o'hara", -2.25, day)],
    )
    cur.execute("SELECT id, name, score, day FROM py WHERE id >= %s ORDER BY id", (2,))
    rows = cur.fetchall()
    assert rows == [(2, "bob", None, day), (3, "o'hara", -2.25, day)], rows

    cur.execute("SELECT count(*), sum(score) FROM py WHERE name = %s OR name = %s", ("ann", "o'hara"))
    assert cur.fetchone() == (2, -0.75)

    try:
        cur.execute("SELECT 1 / 0")
        raise AssertionError("division by zero must fail")
    except psycopg.errors.DivisionByZero:
        pass
    try:
        cur.execute("SELECT * FROM missing_table")
        raise AssertionError("an unknown table must fail")
    except psycopg.errors.UndefinedTable:
        pass

    with cur.copy("COPY py (id, name) FROM STDIN") as copy:
        copy.write_row((4, "dee"))
        copy.write_row((5, None))
    cur.execute("SELECT id, name FROM py WHERE id > 3 ORDER BY id")
    assert cur.fetchall() == [(4, "dee"), (5, None)]

    # Binary results.
    with conn.cursor(binary=True) as bcur:
        bcur.execute("SELECT id, score FROM py WHERE id = %s", (1,))
        assert bcur.fetchone() == (1, 1.5)

    # numeric: Decimal parameters and results keep their scale, in text and binary.
    cur.execute("CREATE TABLE money (id int PRIMARY KEY, amount numeric)")
    cur.executemany("INSERT INTO money VALUES (%s, %s)", [(1, Decimal("12.50")), (2, Decimal("-0.001"))])
    cur.execute("SELECT amount FROM money WHERE amount < %s ORDER BY id", (Decimal("100"),))
    assert cur.fetchall() == [(Decimal("12.50"),), (Decimal("-0.001"),)]
    with conn.cursor(binary=True) as bcur:
        bcur.execute("SELECT sum(amount), 'NaN'::numeric FROM money WHERE amount > %s", (Decimal("-1"),))
        total, nan = bcur.fetchone()
        assert total == Decimal("12.499") and str(total) == "12.499" and nan.is_nan(), (total, nan)
    # intervals and arrays, in text and binary.
    for binary in (False, True):
        with conn.cursor(binary=binary) as c:
            c.execute("SELECT interval '1 month 1 day 2 hours 0.5 seconds', ARRAY[1, NULL], "
                      "ARRAY[interval '-1 hour'], ARRAY[ARRAY['a'], ARRAY['b c']]")
            got = c.fetchone()
            hour = datetime.timedelta(hours=1)
            want = (datetime.timedelta(days=31, hours=2, milliseconds=500), [1, None], [-hour],
                    [["a"], ["b c"]])
            assert got == want, (binary, got)
print("psycopg: ok")
