"""udfs.semantics: dedup decisions, epoch-aligned windows, the lateness rule, aggregates and
the output records, at their boundaries."""

import base64
import json

import pytest

from udfs import semantics as s

TXN = {"txn_id": "t-1", "account_id": "a-1", "merchant_id": "m-1", "amount_cents": 100,
       "currency": "EUR", "kind": "purchase", "event_time_ms": 1767225600000,
       "channel": "web", "country": "DE"}


H = 86_400_000


def test_first_copy_is_accepted_same_fields_duplicate_other_fields_conflict():
    assert s.dedup_decision(None, TXN, H) == s.ACCEPTED
    first = (s.fingerprint(TXN), TXN["event_time_ms"])
    assert s.dedup_decision(first, dict(TXN), H) == s.DUPLICATE
    for field, value in (("amount_cents", 101), ("country", "FR"),
                         ("event_time_ms", TXN["event_time_ms"] + 1)):
        assert s.dedup_decision(first, {**TXN, field: value}, H) == "CONFLICTING_DUPLICATE"


def test_fingerprint_ignores_key_order_and_extra_fields():
    reordered = dict(reversed(list(TXN.items())))
    assert s.fingerprint(reordered) == s.fingerprint({**TXN, "extra": 1})


def test_fingerprint_is_the_fields_joined_in_contract_order_as_the_sql_builds_it():
    assert s.fingerprint(TXN) == "t-1|a-1|m-1|100|EUR|purchase|1767225600000|web|DE"


@pytest.mark.parametrize("delta, decision", [(H - 1, "CONFLICTING_DUPLICATE"),
                                             (-(H - 1), "CONFLICTING_DUPLICATE"),
                                             (H, "ACCEPTED"), (-H, "ACCEPTED")])
def test_a_copy_a_whole_horizon_away_from_the_first_is_a_transaction_of_its_own(delta, decision):
    first = (s.fingerprint(TXN), TXN["event_time_ms"])
    later = {**TXN, "event_time_ms": TXN["event_time_ms"] + delta}
    assert s.dedup_decision(first, later, H) == decision


@pytest.mark.parametrize("form", ["fingerprint", "fields"])
def test_the_dedup_decision_as_sql_decides_as_the_function(form):
    """dedup_decision_sql (the Flink job's with fingerprints, the Spark recompute's with
    same_fields_sql) against dedup_decision, evaluated by SQLite over every case: first copy,
    duplicate, a conflict in each field, horizon edges."""
    import sqlite3

    first = (s.fingerprint(TXN), TXN["event_time_ms"])
    changes = [{}, {"event_time_ms": TXN["event_time_ms"] + H - 1},
               {"event_time_ms": TXN["event_time_ms"] + H},
               {"event_time_ms": TXN["event_time_ms"] - H},
               {"event_time_ms": TXN["event_time_ms"] - H + 1}]
    changes += [{n: (v + 1 if isinstance(v, int) else v + "x")} for n, v in TXN.items()
                if n != "txn_id"]
    cases = [(None, TXN)] + [(first, {**TXN, **change}) for change in changes]
    db = sqlite3.connect(":memory:")
    fields = ", ".join(f"? AS first_{n}" for n in TXN) + ", " + ", ".join(
        f"? AS {n}" for n in TXN if n != "event_time_ms")
    same = (s.same_fingerprint_sql("first_fp") if form == "fingerprint"
            else s.same_fields_sql("first_"))
    sql = s.dedup_decision_sql(H, "copies", "first_event_time_ms", same)
    for prior, txn in cases:
        first_txn = txn if prior is None else TXN
        (got,) = db.execute(
            f"SELECT {sql} FROM (SELECT ? AS copies, ? AS first_fp, ? AS fingerprint, "
            f"? AS event_time_ms, {fields})",
            (1 if prior is None else 2, s.fingerprint(first_txn), s.fingerprint(txn),
             txn["event_time_ms"], *(first_txn[n] for n in TXN),
             *(txn[n] for n in TXN if n != "event_time_ms"))).fetchone()
        assert got == s.dedup_decision(prior, txn, H), (form, txn)
    assert {s.dedup_decision(p, t, H) for p, t in cases} == {
        s.ACCEPTED, s.DUPLICATE, "CONFLICTING_DUPLICATE"}


@pytest.mark.parametrize("t, start", [(0, 0), (59_999, 0), (60_000, 60_000),
                                      (1767225659999, 1767225600000)])
def test_windows_are_epoch_aligned(t, start):
    assert s.window_start(t, 60_000) == start


@pytest.mark.parametrize("watermark, late", [(None, False), (59_997, False), (59_998, False),
                                             (59_999, True), (10**12, True)])
def test_late_once_the_watermark_reaches_the_windows_last_millisecond(watermark, late):
    # window [0, 60000): complete when the watermark reaches 59 999
    assert s.is_late(30_000, watermark, 60_000) is late


def test_allowed_lateness_extends_the_window():
    assert not s.is_late(30_000, 60_000, 60_000, allowed_lateness_ms=5_000)
    assert s.is_late(30_000, 64_999, 60_000, allowed_lateness_ms=5_000)


def test_aggregate_sums_by_account_currency_and_window():
    txns = [TXN, {**TXN, "txn_id": "t-2", "kind": "refund", "amount_cents": 30},
            {**TXN, "txn_id": "t-3", "amount_cents": 500, "event_time_ms": 1767225659999},
            {**TXN, "txn_id": "t-4", "event_time_ms": 1767225660000},
            {**TXN, "txn_id": "t-5", "currency": "USD"}]
    aggs = s.aggregate(txns, 60_000)
    first = aggs["a-1|EUR|1767225600000"].as_dict()
    assert first == {"account_id": "a-1", "currency": "EUR", "window_start_ms": 1767225600000,
                     "window_end_ms": 1767225660000, "txn_count": 3, "purchase_count": 2,
                     "refund_count": 1, "purchase_cents": 600, "refund_cents": 30,
                     "net_cents": 570, "max_amount_cents": 500}
    assert aggs["a-1|EUR|1767225660000"].txn_count == 1
    assert aggs["a-1|USD|1767225600000"].txn_count == 1
    assert len(aggs) == 3


def test_a_refund_can_be_the_windows_largest_amount():
    txns = [TXN, {**TXN, "txn_id": "t-2", "kind": "refund", "amount_cents": 900},
            {**TXN, "txn_id": "t-3", "amount_cents": 250}]
    (only,) = s.aggregate(txns, 60_000).values()
    assert only.as_dict() == {"account_id": "a-1", "currency": "EUR",
                              "window_start_ms": 1767225600000,
                              "window_end_ms": 1767225660000, "txn_count": 3,
                              "purchase_count": 2, "refund_count": 1, "purchase_cents": 350,
                              "refund_cents": 900, "net_cents": -550, "max_amount_cents": 900}


def test_dlq_record_keeps_utf8_as_text_and_other_bytes_as_base64():
    text = json.loads(s.dlq_record("MALFORMED", "value: x", b"[1]", "tp", 2, 7, 123))
    assert text == {"error_class": "MALFORMED", "error": "value: x", "raw": "[1]",
                    "raw_encoding": "utf8", "source_topic": "tp", "source_partition": 2,
                    "source_offset": 7, "source_timestamp_ms": 123}
    binary = json.loads(s.dlq_record("MALFORMED", "value: x", b"\xff\x00", "tp", 0, 1, 2))
    assert binary["raw_encoding"] == "base64"
    assert base64.b64decode(binary["raw"]) == b"\xff\x00"


def test_late_record_is_the_transaction_plus_watermark_and_missed_window():
    rec = json.loads(s.late_record({**TXN, "extra": 1}, 1767225700000, 60_000))
    assert rec == {**TXN, "watermark_ms": 1767225700000, "window_start_ms": 1767225600000}
