"""udfs.fraud: each rule at and just past its thresholds, ordering and ties, profile versions,
the streaming evaluation (buffer + watermark) against the batch replay, and idle state."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udfs import fraud as f

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
P = f.DEFAULT_PARAMS
WINDOW = 60_000
_seq = iter(range(10**9))


def txn(t_ms=0, amount=1_000, kind="purchase", account="a-1", country="DE", txn_id=None):
    return {"txn_id": txn_id or f"t-{next(_seq):06d}", "account_id": account,
            "merchant_id": "m-1", "amount_cents": amount, "currency": "EUR", "kind": kind,
            "event_time_ms": T0 + t_ms, "channel": "web", "country": country}


def rules(alerts):
    return [(a.rule, a.txn_ids) for a in alerts]


# --- LARGE_AMOUNT ------------------------------------------------------------------------------


@pytest.mark.parametrize("amount, fires", [(999_999, False), (1_000_000, True),
                                           (1_000_001, True)])
def test_large_amount_fires_from_one_million_cents(amount, fires):
    t = txn(amount=amount)
    assert (f.large_amount(t) is not None) == fires


def test_large_amount_fires_for_a_refund_too_and_carries_its_details():
    t = txn(amount=2_000_000, kind="refund")
    alert = f.large_amount(t)
    assert alert.severity == "high"
    assert alert.as_dict(5) == {
        "alert_id": f.alert_id("LARGE_AMOUNT", [t["txn_id"]]), "rule": "LARGE_AMOUNT",
        "severity": "high", "account_id": "a-1", "txn_ids": [t["txn_id"]],
        "event_time_ms": t["event_time_ms"], "detected_at_ms": 5,
        "details": {"amount_cents": 2_000_000, "currency": "EUR",
                    "threshold_cents": 1_000_000}}


def test_alert_id_depends_on_rule_and_txn_ids_only():
    assert f.alert_id("VELOCITY", ["a", "b"]) == f.alert_id("VELOCITY", ("a", "b"))
    assert f.alert_id("VELOCITY", ["a", "b"]) != f.alert_id("VELOCITY", ["b", "a"])
    assert f.alert_id("VELOCITY", ["a"]) != f.alert_id("LARGE_AMOUNT", ["a"])
    assert len(f.alert_id("VELOCITY", ["a"])) == 32


# --- VELOCITY ----------------------------------------------------------------------------------


def test_velocity_fires_on_the_tenth_transaction_within_the_window():
    txns = [txn(i * 1000) for i in range(10)]
    alerts = f.alerts_of(txns[:9])
    assert alerts == []
    alerts = f.alerts_of(txns)
    assert rules(alerts) == [("VELOCITY", tuple(t["txn_id"] for t in txns))]
    assert alerts[0].severity == "medium"
    assert alerts[0].event_time_ms == T0 + 9000


def test_velocity_window_excludes_a_transaction_exactly_sixty_seconds_before():
    first = [txn(0)] + [txn(50_000 + i) for i in range(8)]
    assert f.alerts_of(first + [txn(60_000)]) == []          # (t - 60 s, t] excludes t - 60 s
    assert len(f.alerts_of(first + [txn(59_999)])) == 1       # one ms inside: 10 in window


def test_velocity_is_silent_until_sixty_seconds_after_it_fired():
    burst = [txn(i) for i in range(10)]                   # fires at t = 9 ms
    again = [txn(9 + 59_999 - j) for j in range(10)]      # all within 60 s of each other
    alerts = f.alerts_of(burst + again)
    assert rules(alerts) == [("VELOCITY", tuple(t["txn_id"] for t in burst))]
    late_enough = txn(9 + 60_000)                         # t + 60 s: may fire again
    alerts = f.alerts_of(burst + again + [late_enough])
    assert [a.rule for a in alerts] == ["VELOCITY", "VELOCITY"]
    assert alerts[1].txn_ids[-1] == late_enough["txn_id"]


def test_step_reports_the_velocity_alert_that_only_the_silence_held_back():
    burst = [txn(i * 1000) for i in range(12)]            # fires at the 10th, silent after
    silenced = []
    alerts = f.alerts_of(burst, silenced=silenced)
    assert rules(alerts) == [("VELOCITY", tuple(t["txn_id"] for t in burst[:10]))]
    # what an unsilenced account would have raised at the 11th and 12th transactions
    assert rules(silenced) == [("VELOCITY", tuple(t["txn_id"] for t in burst[:k]))
                               for k in (11, 12)]
    assert f.alerts_of(burst) == alerts                   # asking changes nothing


# --- SMALL_THEN_LARGE --------------------------------------------------------------------------


@pytest.mark.parametrize("small, large, gap, fires", [
    (99, 50_000, 60_000, True),
    (100, 50_000, 1, False),       # not small
    (99, 49_999, 1, False),        # not large
    (99, 50_000, 60_001, False),   # too far apart
    (1, 1_000_000, 0, True),       # same event time, small first by txn_id
])
def test_small_then_large_at_its_thresholds(small, large, gap, fires):
    s = txn(0, small, txn_id="a-small")
    big = txn(gap, large, txn_id="b-large")
    got = [a for a in f.alerts_of([s, big]) if a.rule == "SMALL_THEN_LARGE"]
    assert rules(got) == ([("SMALL_THEN_LARGE", ("a-small", "b-large"))] if fires else [])


def test_small_then_large_needs_two_purchases_and_pairs_the_most_recent_small_one():
    assert f.alerts_of([txn(0, 50, kind="refund"), txn(1, 60_000)]) == []
    assert f.alerts_of([txn(0, 50), txn(1, 60_000, kind="refund")]) == []
    s1, s2, big = txn(0, 10), txn(5, 20), txn(10, 70_000)
    assert rules(f.alerts_of([big, s2, s1])) == [("SMALL_THEN_LARGE",
                                                   (s2["txn_id"], big["txn_id"]))]


def test_ties_in_event_time_are_ordered_by_txn_id():
    large_first = [txn(0, 99, txn_id="t-2"), txn(0, 60_000, txn_id="t-1")]
    assert f.alerts_of(large_first) == []  # t-1 (large) comes before t-2 (small)
    small_first = [txn(0, 60_000, txn_id="t-2"), txn(0, 99, txn_id="t-1")]
    assert rules(f.alerts_of(small_first)) == [("SMALL_THEN_LARGE", ("t-1", "t-2"))]


# --- FOREIGN_HIGH_RISK and profile versions ----------------------------------------------------


def test_foreign_high_risk_needs_a_high_tier_and_another_country():
    high = {"a-1": {T0 - 1: f.Profile(T0 - 1, "DE", "high")}}
    medium = {"a-1": {T0 - 1: f.Profile(T0 - 1, "DE", "medium")}}
    abroad, home = txn(0, country="FR"), txn(1, country="DE")
    assert rules(f.alerts_of([abroad, home], high)) == [("FOREIGN_HIGH_RISK",
                                                          (abroad["txn_id"],))]
    assert f.alerts_of([abroad], medium) == []
    assert f.alerts_of([abroad]) == []  # no profile: risk tier low


def test_profile_versions_switch_exactly_at_valid_from():
    switch = T0 + 10_000
    versions = {"a-1": {T0 - 5: f.Profile(T0 - 5, "DE", "low"),
                        switch: f.Profile(switch, "DE", "high")}}
    before, at = txn(9_999, country="FR"), txn(10_000, country="FR")
    assert rules(f.alerts_of([before, at], versions)) == [("FOREIGN_HIGH_RISK",
                                                            (at["txn_id"],))]
    assert f.applicable_profile(versions["a-1"], T0 - 6) is f.NO_PROFILE


def test_superseded_versions_are_those_before_the_one_applying_at_the_oldest_on_time_instant():
    versions = {1000: f.Profile(1000, "DE", "low"), 2000: f.Profile(2000, "DE", "high"),
                9000: f.Profile(9000, "FR", "high")}
    assert f.superseded_versions(versions, watermark_ms=2500 + WINDOW, window_ms=WINDOW) == [1000]
    assert f.superseded_versions(versions, watermark_ms=1500 + WINDOW, window_ms=WINDOW) == []


# --- the streaming evaluation ------------------------------------------------------------------


def stream_alerts(arrivals, profiles=None, bound_ms=5000, window_ms=WINDOW):
    """The fraud job's per-account logic without Flink: LARGE_AMOUNT on arrival, the rest when
    a bounded-out-of-orderness watermark passes, timers simulated at every arrival."""
    states, pending, out = {}, {}, []
    watermark = None
    for t in arrivals:
        found = f.large_amount(t)
        if found:
            out.append(found)
        pending.setdefault(t["account_id"], []).append(t)
        seen = t["event_time_ms"] - bound_ms - 1
        watermark = seen if watermark is None else max(watermark, seen)
        for account in list(pending):
            state = states.setdefault(account, f.RuleState())
            alerts, pending[account] = f.advance(state, pending[account],
                                                 (profiles or {}).get(account), watermark,
                                                 window_ms)
            out += alerts
    end = 2**62
    for account in pending:
        alerts, _ = f.advance(states.setdefault(account, f.RuleState()), pending[account],
                              (profiles or {}).get(account), end, window_ms)
        out += alerts
    return out, states


traffic = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 90_000),
                             st.sampled_from([50, 99, 1_000, 50_000, 1_000_000]),
                             st.sampled_from(["purchase", "refund"]),
                             st.sampled_from(["DE", "FR"])), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(traffic, st.randoms(use_true_random=False))
def test_out_of_order_arrival_within_the_bound_gives_the_in_order_alerts(rows, rnd):
    txns = sorted((txn(t, amount, kind, f"a-{a}", country)
                   for a, t, amount, kind, country in rows), key=f.order_key)
    # arrival order: each transaction may move up to 4 s (below the 5 s bound) earlier
    arrivals = sorted(txns, key=lambda x: x["event_time_ms"] + rnd.randint(0, 4000))
    profiles = {"a-1": {T0: f.Profile(T0, "DE", "high")}}
    in_order = f.alerts_of(txns, profiles)
    got, _ = stream_alerts(arrivals, profiles)
    assert sorted(a.alert_id for a in got) == sorted(a.alert_id for a in in_order)


def test_state_of_an_idle_account_goes_to_empty():
    burst = [txn(i * 10, 50) for i in range(12)] + [txn(200, 60_000)]
    state = f.RuleState()
    alerts, waiting = f.advance(state, burst, None, T0 + 200, WINDOW)
    assert {a.rule for a in alerts} == {"VELOCITY", "SMALL_THEN_LARGE"}
    assert waiting == [] and not state.is_empty()
    assert f.last_event_ms(state) == T0 + 200  # the idle timer is armed from it
    idle = T0 + 200 + P.idle_after_ms(WINDOW)
    f.advance(state, [], None, idle - 1, WINDOW)
    assert not state.is_empty()
    f.advance(state, [], None, idle, WINDOW)
    assert state.is_empty() and f.last_event_ms(state) is None


def test_forgetting_an_idle_account_changes_no_later_decision():
    rng = random.Random(7)
    txns = sorted((txn(rng.randrange(0, 900_000), rng.choice([50, 60_000, 1000]))
                   for _ in range(300)), key=f.order_key)
    kept = f.RuleState()
    forgetful = f.RuleState()
    for t in txns:
        a = f.step(kept, t, f.NO_PROFILE)
        # expire at the latest watermark under which t is still on time
        f.expire(forgetful, t["event_time_ms"] + WINDOW - 1 - (t["event_time_ms"] % WINDOW),
                 WINDOW)
        assert rules(f.step(forgetful, t, f.NO_PROFILE)) == rules(a)


# --- interval by interval (the batch's carried rule state) ---------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400_000), st.sampled_from([50, 1_000, 60_000])),
                min_size=1, max_size=80),
       st.integers(1, 6))
def test_interval_by_interval_with_carried_state_equals_one_replay(events, cut_minutes):
    """A hot account (VELOCITY's silence chains fire to fire) split at an interval boundary:
    the second interval, continuing from the first one's state expired at the boundary, gives
    exactly the alerts of one replay over both."""
    txns = [txn(t, amount) for t, amount in events]
    boundary = T0 + cut_minutes * WINDOW
    whole = {a.alert_id for a in f.alerts_of(txns)}
    states: dict[str, f.RuleState] = {}
    first = f.alerts_of([t for t in txns if t["event_time_ms"] < boundary], None, P, states)
    carried = {}
    for account, state in states.items():
        f.expire(state, boundary, 0, P)
        carried[account] = f.state_from_json(f.state_to_json(state))  # as the snapshot file
    second = f.alerts_of([t for t in txns if t["event_time_ms"] >= boundary], None, P, carried)
    assert {a.alert_id for a in first + second} == whole


def test_without_the_carried_state_a_hot_account_alerts_differently():
    """Why the state is carried: the same second interval from an empty state."""
    txns = [txn(i * 4_000) for i in range(80)]  # 15 a minute: fires every 60 s
    boundary = T0 + 130_000
    whole = {a.alert_id for a in f.alerts_of(txns)}
    cold = f.alerts_of([t for t in txns if t["event_time_ms"] >= boundary])
    first = f.alerts_of([t for t in txns if t["event_time_ms"] < boundary])
    assert {a.alert_id for a in first + cold} != whole
