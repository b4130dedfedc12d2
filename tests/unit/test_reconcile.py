"""udfs.reconcile: every §7 class on hand-built stream/batch pairs."""

import pytest

from udfs import reconcile as r
from udfs.semantics import aggregate

W = 60_000
T0 = 1_767_225_600_000
KEY = ("acct-1", "EUR", T0)


def txn(txn_id, amount, kind="purchase", t=T0 + 1000):
    return {"txn_id": txn_id, "account_id": "acct-1", "merchant_id": "m-1",
            "amount_cents": amount, "currency": "EUR", "kind": kind, "event_time_ms": t,
            "channel": "web", "country": "DE"}


def agg(*txns):
    (only,) = aggregate(txns, W).values()
    return only.as_dict()


ON_TIME = [txn("a", 100), txn("b", 50, "refund")]
LATE = txn("c", 700)


def test_equal_aggregates_match():
    assert r.classify_aggregate(agg(*ON_TIME), agg(*ON_TIME), [], False, KEY, W) == r.MATCH


def test_stream_plus_its_late_transactions_equal_to_batch_is_explained_late():
    stream, batch = agg(*ON_TIME), agg(*ON_TIME, LATE)
    assert r.classify_aggregate(stream, batch, [LATE], False, KEY, W) == r.EXPLAINED_LATE


def test_a_window_with_only_late_transactions_is_explained_late_not_missing():
    assert r.classify_aggregate(None, agg(LATE), [LATE], False, KEY, W) == r.EXPLAINED_LATE


def test_late_transactions_that_do_not_add_up_leave_a_value_mismatch():
    stream, batch = agg(*ON_TIME), agg(*ON_TIME, LATE, txn("d", 1))
    assert r.classify_aggregate(stream, batch, [LATE], False, KEY, W) == r.VALUE_MISMATCH


def test_a_cross_partition_duplicate_makes_a_difference_order_dependent():
    stream, batch = agg(*ON_TIME), agg(ON_TIME[0])
    assert r.classify_aggregate(stream, batch, [], True, KEY, W) == r.ORDER_DEPENDENT


@pytest.mark.parametrize("stream, batch, expected", [
    (None, agg(*ON_TIME), r.MISSING_IN_STREAM),
    (agg(*ON_TIME), None, r.EXTRA_IN_STREAM),
    ({**agg(*ON_TIME), "net_cents": 1}, agg(*ON_TIME), r.VALUE_MISMATCH),
])
def test_unexplained_classes(stream, batch, expected):
    assert r.classify_aggregate(stream, batch, [], False, KEY, W) == expected
    assert expected in r.UNEXPLAINED


def test_an_aggregate_missing_on_both_sides_is_a_caller_error():
    with pytest.raises(ValueError, match="neither side"):
        r.classify_aggregate(None, None, [], False, KEY, W)


@pytest.mark.parametrize("in_stream, in_batch, order_dependent, late_dependent, expected", [
    (True, True, False, False, r.MATCH),
    (True, True, True, True, r.MATCH),
    (False, True, False, False, r.MISSING_IN_STREAM),
    (True, False, False, False, r.EXTRA_IN_STREAM),
    (False, True, True, False, r.ORDER_DEPENDENT),
    (True, False, False, True, r.EXPLAINED_LATE),
    (False, True, False, True, r.EXPLAINED_LATE),
])
def test_alerts_reconcile_by_id(in_stream, in_batch, order_dependent, late_dependent,
                                expected):
    assert r.classify_alert(in_stream, in_batch, order_dependent, late_dependent) == expected


def test_dlq_counts_match_or_mismatch():
    assert r.classify_count(3, 3) == r.MATCH
    assert r.classify_count(2, 3) == r.VALUE_MISMATCH
