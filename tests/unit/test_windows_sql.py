"""udfs.windows: window alignment, lateness and the aggregate as SQL text, held to the Python
reference (udfs.semantics) and to hand-written expectations by running the very texts in
SQLite (no JVM), at the boundaries: a window's first and last millisecond and the next
window's first; watermarks at end - 2, end - 1 and end, with and without allowed lateness;
aggregates whose largest amount is a refund, with only refunds, only purchases, equal amounts.

The Flink texts themselves (character for character, the plan a savepoint maps onto) are
pinned in tests/unit/test_flink_sql_plan.py; Spark and Flink run the same forms in
tests/integration/test_windows_engines.py."""

from __future__ import annotations

import sqlite3

import pytest

from jobs.streaming.txn_sql import flink_instant_sql
from udfs import semantics, windows

W = 60_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a window start for W


def engine() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    # SQLite's built-in mod() (its math functions) computes in floating point; Flink's and
    # Spark's MOD of two BIGINTs is integer. For the positive event times of the contract
    # Python's % is that integer remainder, so it replaces the built-in here.
    db.create_function("MOD", 2, lambda a, b: a % b, deterministic=True)
    # Flink's TO_TIMESTAMP_LTZ(epoch_ms, 3): an instant with millisecond precision. Here the
    # watermark is epoch ms too, so the instant is the number itself.
    db.create_function("TO_TIMESTAMP_LTZ", 2, lambda ms, precision: ms, deterministic=True)
    return db


def one(db, expression: str, **columns):
    names = list(columns)
    select = ", ".join(f"? AS {n}" for n in names) or "1 AS unused"
    (value,) = db.execute(f"SELECT {expression} FROM (SELECT {select})",
                          [columns[n] for n in names]).fetchone()
    return value


# --- window start -----------------------------------------------------------------------------


def test_window_start_text_is_the_flink_jobs():
    assert windows.window_start_sql("event_time_ms", 60000) == \
        "(event_time_ms - MOD(event_time_ms, 60000))"
    assert windows.window_end_sql("window_start_ms", 60000) == "window_start_ms + 60000"


@pytest.mark.parametrize("window_ms, event_time_ms, start", [
    (60_000, T0, T0),                      # a window's first ms
    (60_000, T0 + 59_999, T0),             # its last ms (end - 1)
    (60_000, T0 + 60_000, T0 + 60_000),    # the next window's first ms
    (60_000, T0 - 1, T0 - 60_000),         # the previous window's last ms
    (60_000, 59_999, 0),
    (60_000, 60_000, 60_000),
    (7, 20, 14),
    (3_600_000, T0 + 3_599_999, T0),
    (3_600_000, T0 + 3_600_000, T0 + 3_600_000),
])
def test_window_start_sql_is_window_start(window_ms, event_time_ms, start):
    db = engine()
    got = one(db, windows.window_start_sql("event_time_ms", window_ms),
              event_time_ms=event_time_ms)
    assert got == start
    assert semantics.window_start(event_time_ms, window_ms) == start


# --- lateness ---------------------------------------------------------------------------------

FLINK_LATE = ("arrival_watermark IS NOT NULL\n"
              "                       AND TO_TIMESTAMP_LTZ((event_time_ms - MOD(event_time_ms, "
              "60000)) + 59999,\n"
              "                                            3) <= arrival_watermark")


def flink_late(window_ms: int, allowed_lateness_ms: int) -> str:
    """The lateness condition exactly as jobs/streaming/txn_sql.py's ``routed`` view has it."""
    return windows.is_late_sql("event_time_ms", "arrival_watermark", window_ms,
                               allowed_lateness_ms, to_time=flink_instant_sql,
                               and_="\n" + " " * 23 + "AND ")


def test_lateness_text_is_the_flink_jobs():
    assert flink_late(60_000, 0) == FLINK_LATE
    assert windows.late_from_sql("event_time_ms", 120_000, 5_000) == \
        "(event_time_ms - MOD(event_time_ms, 120000)) + 124999"
    assert windows.is_late_sql("t", "wm", 60_000) == \
        "wm IS NOT NULL AND (t - MOD(t, 60000)) + 59999 <= wm"


END = T0 + W  # the end (exclusive) of the window [T0, T0 + W)

# (event time, watermark, allowed lateness, late?) written out by hand: a transaction of the
# window [T0, END) is late once the watermark reaches END - 1 + allowed lateness
LATENESS_CASES = [
    # the window's first ms, its last ms: the same window, the same verdicts
    *[(t, wm, 0, late) for t in (T0, END - 1)
      for wm, late in ((None, False), (END - 2, False), (END - 1, True), (END, True))],
    *[(t, wm, 5_000, late) for t in (T0, END - 1)
      for wm, late in ((END - 2, False), (END - 1, False), (END, False),
                       (END + 4_998, False), (END + 4_999, True), (END + 5_000, True))],
    # the next window's first ms: its own window ends a whole window later
    (END, END - 1, 0, False), (END, END, 0, False), (END + W - 2, END + W - 2, 0, False),
    (END, END + W - 2, 0, False), (END, END + W - 1, 0, True),
    (END, END + W + 4_998, 5_000, False), (END, END + W + 4_999, 5_000, True),
]


@pytest.mark.parametrize("event_time_ms, watermark_ms, allowed_lateness_ms, late",
                         LATENESS_CASES)
def test_is_late_sql_is_is_late(event_time_ms, watermark_ms, allowed_lateness_ms, late):
    db = engine()
    assert semantics.is_late(event_time_ms, watermark_ms, W, allowed_lateness_ms) is late
    plain = windows.is_late_sql("event_time_ms", "arrival_watermark", W, allowed_lateness_ms)
    for sql in (plain, flink_late(W, allowed_lateness_ms)):
        got = one(db, f"CASE WHEN {sql} THEN 1 ELSE 0 END", event_time_ms=event_time_ms,
                  arrival_watermark=watermark_ms)
        assert got == int(late), (sql, event_time_ms, watermark_ms)


# --- the aggregate ----------------------------------------------------------------------------

FLINK_MEASURES = """COUNT(*) AS txn_count,
               SUM(CASE WHEN kind = 'purchase' THEN 1 ELSE 0 END) AS purchase_count,
               SUM(CASE WHEN kind = 'refund' THEN 1 ELSE 0 END) AS refund_count,
               SUM(CASE WHEN kind = 'purchase' THEN amount_cents ELSE 0 END) AS purchase_cents,
               SUM(CASE WHEN kind = 'refund' THEN amount_cents ELSE 0 END) AS refund_cents,
               MAX(amount_cents) AS max_amount_cents"""


def test_aggregate_text_is_the_flink_jobs():
    assert windows.aggregate_select_sql(",\n" + " " * 15) == FLINK_MEASURES
    assert dict(windows.derived_sql("window_start_ms", 60_000)) == {
        "window_end_ms": "window_start_ms + 60000", "net_cents": "purchase_cents - refund_cents"}


def txn(txn_id, amount, kind="purchase", t=T0, account="a-1", currency="EUR"):
    return {"txn_id": txn_id, "account_id": account, "merchant_id": "m-1",
            "amount_cents": amount, "currency": currency, "kind": kind, "event_time_ms": t,
            "channel": "web", "country": "DE"}


def sql_aggregates(txns, window_ms=W) -> dict[tuple, dict]:
    """The aggregate as udfs.windows writes it, run by SQLite over ``txns``."""
    db = engine()
    db.execute("CREATE TABLE txns (account_id TEXT, currency TEXT, kind TEXT, "
               "amount_cents INTEGER, event_time_ms INTEGER)")
    db.executemany("INSERT INTO txns VALUES (?, ?, ?, ?, ?)",
                   [(t["account_id"], t["currency"], t["kind"], t["amount_cents"],
                     t["event_time_ms"]) for t in txns])
    start = windows.window_start_sql("event_time_ms", window_ms)
    derived = ", ".join(f"{sql} AS {name}"
                        for name, sql in windows.derived_sql("window_start_ms", window_ms))
    cursor = db.execute(
        f"SELECT *, {derived} FROM (SELECT account_id, currency, {start} AS window_start_ms, "
        f"{windows.aggregate_select_sql()} FROM txns GROUP BY account_id, currency, {start})")
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    return {(r["account_id"], r["currency"], r["window_start_ms"]): r for r in rows}


def expected(start=T0, txn_count=0, purchase_count=0, refund_count=0, purchase_cents=0,
             refund_cents=0, max_amount_cents=0, account="a-1", currency="EUR"):
    return {"account_id": account, "currency": currency, "window_start_ms": start,
            "window_end_ms": start + W, "txn_count": txn_count,
            "purchase_count": purchase_count, "refund_count": refund_count,
            "purchase_cents": purchase_cents, "refund_cents": refund_cents,
            "net_cents": purchase_cents - refund_cents, "max_amount_cents": max_amount_cents}


# (transactions, the aggregates written out by hand)
AGGREGATE_CASES = {
    "a refund is the largest amount": (
        [txn("p1", 100), txn("r1", 900, "refund", T0 + 59_999), txn("p2", 250, t=T0 + 1)],
        [expected(txn_count=3, purchase_count=2, refund_count=1, purchase_cents=350,
                  refund_cents=900, max_amount_cents=900)]),
    "only refunds": (
        [txn("r1", 40, "refund"), txn("r2", 60, "refund", T0 + 59_999)],
        [expected(txn_count=2, refund_count=2, refund_cents=100, max_amount_cents=60)]),
    "only purchases": (
        [txn("p1", 70), txn("p2", 30, t=T0 + 59_999)],
        [expected(txn_count=2, purchase_count=2, purchase_cents=100, max_amount_cents=70)]),
    "equal amounts": (
        [txn("p1", 500), txn("r1", 500, "refund", T0 + 10), txn("p2", 500, t=T0 + 20)],
        [expected(txn_count=3, purchase_count=2, refund_count=1, purchase_cents=1000,
                  refund_cents=500, max_amount_cents=500)]),
    "a window's last ms and the next one's first": (
        [txn("p1", 5, t=T0 + 59_999), txn("r1", 8, "refund", T0 + 60_000)],
        [expected(txn_count=1, purchase_count=1, purchase_cents=5, max_amount_cents=5),
         expected(start=T0 + W, txn_count=1, refund_count=1, refund_cents=8,
                  max_amount_cents=8)]),
    "accounts and currencies apart": (
        [txn("p1", 5), txn("p2", 6, account="a-2"), txn("r1", 7, "refund", currency="USD")],
        [expected(txn_count=1, purchase_count=1, purchase_cents=5, max_amount_cents=5),
         expected(account="a-2", txn_count=1, purchase_count=1, purchase_cents=6,
                  max_amount_cents=6),
         expected(currency="USD", txn_count=1, refund_count=1, refund_cents=7,
                  max_amount_cents=7)]),
}


@pytest.mark.parametrize("case", list(AGGREGATE_CASES))
def test_the_aggregate_sql_and_the_reference_give_the_hand_written_aggregates(case):
    txns, want = AGGREGATE_CASES[case]
    want = {(a["account_id"], a["currency"], a["window_start_ms"]): a for a in want}
    assert sql_aggregates(txns) == want
    reference = {(a.account_id, a.currency, a.window_start_ms): a.as_dict()
                 for a in semantics.aggregate(txns, W).values()}
    assert reference == want


def test_the_measures_are_the_aggregate_fields_the_record_carries():
    names = [n for n, _ in windows.AGGREGATE_MEASURES]
    derived = [n for n, _ in windows.derived_sql("window_start_ms", W)]
    assert sorted(["account_id", "currency", "window_start_ms", *names, *derived]) == sorted(
        semantics.AGGREGATE_FIELDS)
