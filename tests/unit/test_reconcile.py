"""udfs.reconcile: every class of docs/contract.md#reconciliation-classes on hand-built
stream/batch pairs.

The aggregates of each side are written out by hand (not computed with udfs.semantics, whose
``Aggregate`` the classification itself uses to add the late transactions back)."""

import pytest

from udfs import fraud
from udfs import reconcile as r

W = 60_000
T0 = 1_767_225_600_000
KEY = ("acct-1", "EUR", T0)


def txn(txn_id, amount, kind="purchase", t=T0 + 1000):
    return {"txn_id": txn_id, "account_id": "acct-1", "merchant_id": "m-1",
            "amount_cents": amount, "currency": "EUR", "kind": kind, "event_time_ms": t,
            "channel": "web", "country": "DE"}


def agg(txn_count=0, purchase_count=0, refund_count=0, purchase_cents=0, refund_cents=0,
        max_amount_cents=0):
    """An aggregate record of KEY's window, its values as given (net_cents derived)."""
    return {"account_id": "acct-1", "currency": "EUR", "window_start_ms": T0,
            "window_end_ms": T0 + W, "txn_count": txn_count, "purchase_count": purchase_count,
            "refund_count": refund_count, "purchase_cents": purchase_cents,
            "refund_cents": refund_cents, "net_cents": purchase_cents - refund_cents,
            "max_amount_cents": max_amount_cents}


ON_TIME = [txn("a", 100), txn("b", 50, "refund")]
LATE = txn("c", 700)
# the aggregates of those transactions, by hand
AGG_ON_TIME = agg(txn_count=2, purchase_count=1, refund_count=1, purchase_cents=100,
                  refund_cents=50, max_amount_cents=100)
AGG_ON_TIME_AND_LATE = agg(txn_count=3, purchase_count=2, refund_count=1, purchase_cents=800,
                           refund_cents=50, max_amount_cents=700)
AGG_LATE = agg(txn_count=1, purchase_count=1, purchase_cents=700, max_amount_cents=700)
AGG_FIRST = agg(txn_count=1, purchase_count=1, purchase_cents=100, max_amount_cents=100)


def test_equal_aggregates_match():
    assert r.classify_aggregate(AGG_ON_TIME, dict(AGG_ON_TIME), [], False, KEY, W) == r.MATCH


def test_stream_plus_its_late_transactions_equal_to_batch_is_explained_late():
    assert r.classify_aggregate(AGG_ON_TIME, AGG_ON_TIME_AND_LATE, [LATE], False, KEY,
                                W) == r.EXPLAINED_LATE


def test_a_late_refund_larger_than_every_on_time_amount_is_the_windows_max():
    # the batch counts a refund of 900 as the window's largest amount: adding the late refund
    # back to the stream's aggregate must give that maximum too
    late_refund = txn("r", 900, "refund")
    batch = agg(txn_count=3, purchase_count=1, refund_count=2, purchase_cents=100,
                refund_cents=950, max_amount_cents=900)
    assert r.classify_aggregate(AGG_ON_TIME, batch, [late_refund], False, KEY,
                                W) == r.EXPLAINED_LATE
    assert r.with_late(AGG_ON_TIME, [late_refund], KEY, W) == batch


def test_a_window_with_only_late_transactions_is_explained_late_not_missing():
    assert r.classify_aggregate(None, AGG_LATE, [LATE], False, KEY, W) == r.EXPLAINED_LATE


def test_a_window_with_only_a_late_refund_is_explained_late():
    only = agg(txn_count=1, refund_count=1, refund_cents=30, max_amount_cents=30)
    assert r.classify_aggregate(None, only, [txn("r", 30, "refund")], False, KEY,
                                W) == r.EXPLAINED_LATE


def test_late_transactions_that_do_not_add_up_leave_a_value_mismatch():
    batch = agg(txn_count=4, purchase_count=3, refund_count=1, purchase_cents=801,
                refund_cents=50, max_amount_cents=700)  # ON_TIME, LATE and a purchase of 1
    assert r.classify_aggregate(AGG_ON_TIME, batch, [LATE], False, KEY, W) == r.VALUE_MISMATCH


def test_a_cross_partition_duplicate_makes_a_difference_order_dependent():
    assert r.classify_aggregate(AGG_ON_TIME, AGG_FIRST, [], True, KEY, W) == r.ORDER_DEPENDENT


def test_order_dependent_is_judged_before_explained_late():
    # the late transaction would explain the difference too; a window with a cross-partition
    # duplicate is ORDER_DEPENDENT whatever else explains it (the class order of
    # docs/contract.md#reconciliation-classes)
    assert r.classify_aggregate(AGG_ON_TIME, AGG_ON_TIME_AND_LATE, [LATE], True, KEY,
                                W) == r.ORDER_DEPENDENT
    assert r.classify_aggregate(None, AGG_LATE, [LATE], True, KEY, W) == r.ORDER_DEPENDENT


@pytest.mark.parametrize("stream, batch, expected", [
    (None, AGG_ON_TIME, r.MISSING_IN_STREAM),
    (AGG_ON_TIME, None, r.EXTRA_IN_STREAM),
    ({**AGG_ON_TIME, "net_cents": 1}, AGG_ON_TIME, r.VALUE_MISMATCH),
    ({**AGG_ON_TIME, "max_amount_cents": 50}, AGG_ON_TIME, r.VALUE_MISMATCH),
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


# --- a VELOCITY difference carried on by the silence --------------------------------------------


def hot_account(minutes=12, every_ms=4_000):
    """A busy account: 15 transactions a minute, so VELOCITY fires once a minute, each firing
    as soon as the previous one's silence ends."""
    return [txn(f"t-{i:04d}", 100, t=T0 + i * every_ms)
            for i in range(minutes * 60_000 // every_ms)]


def stream_side(arrivals):
    """The ordered rules fed in arrival order, as the stream meets transactions that came
    behind its watermark."""
    state, out = fraud.RuleState(), []
    for t in arrivals:
        out += fraud.step(state, t, fraud.NO_PROFILE)
    return out


def reconcile_velocity(stream, batch, silenced, behind_ms):
    """classify_alert by alert_id (late_dependent: within the rules' reach of a transaction
    that came behind the watermark), then follow_velocity_silence."""
    s, b = {a.alert_id: a for a in stream}, {a.alert_id: a for a in batch}
    rows = []
    for aid in s.keys() | b.keys():
        a = s.get(aid) or b[aid]
        near = any(abs(a.event_time_ms - ms) <= fraud.DEFAULT_PARAMS.reach_ms
                   for ms in behind_ms)
        rows.append({"alert_id": aid, "event_time_ms": a.event_time_ms,
                     "in_stream": aid in s, "in_batch": aid in b, "silenced": aid in silenced,
                     "reconciliation_class": r.classify_alert(aid in s, aid in b, False,
                                                              near)})
    chained = r.follow_velocity_silence(rows, fraud.DEFAULT_PARAMS.velocity_silence_ms)
    return {row["alert_id"]: chained.get(row["alert_id"], row["reconciliation_class"])
            for row in rows}, rows


def batch_side(txns):
    silenced = []
    alerts = fraud.alerts_of(txns, silenced=silenced)
    return alerts, {a.alert_id for a in silenced}


def test_a_velocity_difference_the_silence_carries_past_the_reach_is_explained():
    txns = hot_account()
    behind = txns[2]  # met the rules after t-0010 (it came behind the watermark)
    arrivals = txns[:2] + txns[3:11] + [behind] + txns[11:]
    stream = stream_side(arrivals)
    batch, silenced = batch_side(txns)
    classes, rows = reconcile_velocity(stream, batch, silenced, [behind["event_time_ms"]])
    one_side = [row for row in rows if row["in_stream"] != row["in_batch"]]
    # the firings differ minute after minute, far beyond the reach of the behind transaction
    assert len(one_side) >= 16
    assert max(row["event_time_ms"] for row in one_side) - behind["event_time_ms"] > \
        3 * fraud.DEFAULT_PARAMS.reach_ms
    assert {classes[row["alert_id"]] for row in one_side} == {r.EXPLAINED_LATE}


def test_without_follow_the_chain_beyond_the_reach_would_be_unexplained():
    txns = hot_account()
    behind = txns[2]
    stream = stream_side(txns[:2] + txns[3:11] + [behind] + txns[11:])
    batch, silenced = batch_side(txns)
    _, rows = reconcile_velocity(stream, batch, silenced, [behind["event_time_ms"]])
    assert {row["reconciliation_class"] for row in rows} >= {r.MISSING_IN_STREAM,
                                                             r.EXTRA_IN_STREAM}


def test_a_transaction_lost_inside_the_chain_stays_unexplained():
    txns = hot_account()
    behind, lost = txns[2], txns[100]  # lost: the stream never saw t-0100 (6 min 40 s in)
    stream = stream_side([t for t in txns[:2] + txns[3:11] + [behind] + txns[11:]
                          if t is not lost])
    batch, silenced = batch_side(txns)
    classes, rows = reconcile_velocity(stream, batch, silenced, [behind["event_time_ms"]])
    unexplained = [row for row in rows if classes[row["alert_id"]] in r.UNEXPLAINED]
    assert unexplained
    # the first one is the stream's firing whose window missed the lost transaction
    first = min(unexplained, key=lambda row: row["event_time_ms"])
    assert first["in_stream"] and not first["in_batch"]
    assert 0 <= first["event_time_ms"] - lost["event_time_ms"] < 60_000


def test_a_chain_needs_an_explained_root():
    txns = hot_account()
    behind = txns[2]
    stream = stream_side(txns[:2] + txns[3:11] + [behind] + txns[11:])
    batch, silenced = batch_side(txns)
    # the stream did not name the transaction behind its watermark: nothing explains the root
    classes, rows = reconcile_velocity(stream, batch, silenced, [])
    assert all(classes[row["alert_id"]] in r.UNEXPLAINED
               for row in rows if row["in_stream"] != row["in_batch"])


def _row(aid, t, in_stream, in_batch, cls, silenced=False):
    return {"alert_id": aid, "event_time_ms": t, "in_stream": in_stream,
            "in_batch": in_batch, "reconciliation_class": cls, "silenced": silenced}


def test_a_firing_on_both_sides_breaks_the_chain():
    rows = [_row("root", 0, True, False, r.EXPLAINED_LATE),
            _row("both", 10_000, True, True, r.MATCH),
            _row("b", 50_000, False, True, r.MISSING_IN_STREAM)]
    assert r.follow_velocity_silence(rows, 60_000) == {}


def test_a_stream_firing_the_batch_did_not_compute_is_not_chained():
    rows = [_row("root", 0, False, True, r.ORDER_DEPENDENT),
            _row("s", 30_000, True, False, r.EXTRA_IN_STREAM, silenced=False),
            _row("s2", 31_000, True, False, r.EXTRA_IN_STREAM, silenced=True)]
    # s: other transactions than the batch's (not among its silenced alerts); s2: chained,
    # with its root's class
    assert r.follow_velocity_silence(rows, 60_000) == {"s2": r.ORDER_DEPENDENT}


def test_a_difference_after_the_silence_ended_is_not_chained():
    rows = [_row("root", 0, True, False, r.EXPLAINED_LATE),
            _row("b", 60_000, False, True, r.MISSING_IN_STREAM)]  # stream silent until 60 s
    assert r.follow_velocity_silence(rows, 60_000) == {}
