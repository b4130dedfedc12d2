"""The fraud job's keyed operator (jobs.streaming.fraud.EvaluateRules) without a JVM: its
state and timers on an in-memory harness that fires event-time timers the way Flink's timer
service does (in timestamp order, each (key, timestamp) once, timers registered at or before
the watermark fire on its next advance). The cluster tests (tests/integration/test_fraud_job.py)
run the same operator for real; these pin its slot bookkeeping, its earlier state layout and
its cost when a watermark is held back."""

import hashlib
import json

from hypothesis import given, settings
from hypothesis import strategies as st
from pyflink.common import Row

from jobs.streaming.fraud import LATE_TXN, PENDING_FIELDS, TXN, EvaluateRules
from udfs import fraud as f

T0 = 1_767_225_600_000
WINDOW = 60_000
COALESCE = 200
MIN_WATERMARK = -(2**63)


class Counter:
    def inc(self, n=1):
        pass


class Group:
    def add_group(self, *names):
        return self

    def counter(self, name):
        return Counter()


class Harness:
    """Keyed state by (state name, current key), a timer queue and a watermark."""

    def __init__(self, op: EvaluateRules):
        self.op, self.key, self.timers = op, None, set()
        self.watermark = MIN_WATERMARK
        self.data: dict[str, dict] = {}
        self.read_rows = 0  # pending transactions read by timers, for the cost test
        self.fired = 0  # timers fired
        self.in_timer = False
        op.open(self)

    # -- RuntimeContext
    def get_map_state(self, d):
        return MapState(self, d.name)

    def get_list_state(self, d):
        return ListState(self, d.name)

    def get_state(self, d):
        return ValueState(self, d.name)

    def get_metrics_group(self):
        return Group()

    # -- Context / TimerService
    def timer_service(self):
        return self

    def register_event_time_timer(self, ts):
        self.timers.add((ts, self.key))

    def current_watermark(self):
        return self.watermark

    def get_current_key(self):
        return self.key

    def cell(self, name, default):
        return self.data.setdefault(name, {}).setdefault(self.key, default())

    # -- driving
    def element(self, row):
        self.key = row[1]
        return list(self.op.process_element(row, self))

    def advance(self, watermark):
        out = []
        self.watermark = max(self.watermark, watermark)
        while self.timers and min(self.timers)[0] <= self.watermark:
            ts, self.key = min(self.timers)
            self.timers.remove((ts, self.key))
            self.in_timer = True
            self.fired += 1
            out += list(self.op.on_timer(ts, self))
            self.in_timer = False
        return out

    def empty(self):
        return all(not v for per_key in self.data.values() for v in per_key.values())


class MapState:
    def __init__(self, h, name):
        self.h, self.name = h, name

    def _d(self):
        return self.h.cell(self.name, dict)

    def get(self, k):
        v = self._d().get(k)
        if v is not None and self.name == "pending_slots" and self.h.in_timer:
            self.h.read_rows += len(json.loads(v))
        return v

    def put(self, k, v):
        self._d()[k] = v

    def remove(self, k):
        del self._d()[k]

    def contains(self, k):
        return k in self._d()

    def items(self):
        return list(self._d().items())

    def is_empty(self):
        return not self._d()


class ListState:
    def __init__(self, h, name):
        self.h, self.name = h, name

    def get(self):
        rows = list(self.h.cell(self.name, list))
        self.h.read_rows += len(rows) if self.h.in_timer else 0
        return rows

    def add(self, v):
        self.h.cell(self.name, list).append(v)

    def update(self, vs):
        self.h.data[self.name][self.h.key] = list(vs)

    def clear(self):
        self.h.data.setdefault(self.name, {})[self.h.key] = []


class ValueState:
    def __init__(self, h, name):
        self.h, self.name = h, name

    def value(self):
        return self.h.data.get(self.name, {}).get(self.h.key)

    def update(self, v):
        self.h.data.setdefault(self.name, {})[self.h.key] = v

    def clear(self):
        self.h.data.setdefault(self.name, {}).pop(self.h.key, None)


def operator():
    return EvaluateRules(f.DEFAULT_PARAMS, WINDOW, COALESCE,
                         {"medium": "medium", "dlq": "dlq"}, clock=lambda: 0)


def rule_row(t, rec=TXN):
    return Row(rec, t["account_id"], t["txn_id"], t["kind"], t["amount_cents"], t["currency"],
               t["event_time_ms"], t["country"], None, None, None)


def alert_ids(out):
    records = [o[1] if isinstance(o, tuple) else o for o in out]
    return sorted(json.loads(r[1])["alert_id"] for r in records)


def alerts(out):
    """The operator's alert records as (rule, txn_ids, event_time_ms), sorted."""
    records = [json.loads((o[1] if isinstance(o, tuple) else o)[1]) for o in out]
    return sorted((a["rule"], tuple(a["txn_ids"]), a["event_time_ms"]) for a in records)


def txn(i, t_ms, amount, kind="purchase", account="a-1", country="DE"):
    return {"txn_id": f"t-{i:06d}", "account_id": account, "merchant_id": "m-1",
            "amount_cents": amount, "currency": "EUR", "kind": kind,
            "event_time_ms": T0 + t_ms, "channel": "web", "country": country}


traffic = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 150_000),
                             st.sampled_from([50, 99, 1_000, 50_000, 1_000_000]),
                             st.sampled_from(["purchase", "refund"])), min_size=1, max_size=80)


def test_out_of_order_arrival_within_the_bound_gives_the_alerts_of_event_time_order():
    """Two accounts, each transaction arriving up to 4 s after later ones (the watermark
    trails the highest event time by 5 s): the alerts are those of the transactions in
    event-time order, written out by hand."""
    a1 = {i: txn(i, i * 2_000, amount) for i, amount in
          enumerate([1_000, 1_000, 1_000, 60, 1_000, 70_000, 1_000, 1_000, 1_000, 1_000])}
    a2 = {100: txn(100, 100, 50, account="a-2"),
          101: txn(101, 500, 80_000, "refund", account="a-2"),  # a refund: never the large
          102: txn(102, 2_000, 99, account="a-2"),   # the most recent small purchase (< 100)
          103: txn(103, 2_500, 100, account="a-2"),  # not small
          104: txn(104, 3_000, 50_000, account="a-2"),  # large: >= 50 000
          105: txn(105, 63_001, 50_000, account="a-2")}  # 61 001 ms after the small one
    arrivals = [a2[104], a1[1], a2[100], a1[0], a2[103], a2[102], a2[101], a1[2], a1[5],
                a1[3], a1[4], a1[7], a1[6], a1[9], a1[8], a2[105]]
    h, out, seen = Harness(operator()), [], MIN_WATERMARK
    for t in arrivals:
        out += h.element(rule_row(t))
        seen = max(seen, t["event_time_ms"])
        out += h.advance(seen - 5000 - 1)
    out += h.advance(T0 + 63_001 + 10 * WINDOW)
    assert alerts(out) == [
        ("SMALL_THEN_LARGE", ("t-000003", "t-000005"), T0 + 10_000),
        ("SMALL_THEN_LARGE", ("t-000102", "t-000104"), T0 + 3_000),
        ("VELOCITY", tuple(f"t-{i:06d}" for i in range(10)), T0 + 18_000),
    ]
    assert h.empty()


@settings(max_examples=120, deadline=None)
@given(traffic, st.randoms(use_true_random=False))
def test_out_of_order_arrival_within_the_bound_gives_the_batch_replays_alerts(rows, rnd):
    """A property over random traffic: the operator, fed out of order within the bound,
    agrees with the batch replay (udfs.fraud.alerts_of in event-time order). The alerts
    themselves are pinned by hand in the scenarios around it."""
    txns = [txn(i, t, amount, kind, f"a-{a}") for i, (a, t, amount, kind) in enumerate(rows)]
    arrivals = sorted(txns, key=lambda x: x["event_time_ms"] + rnd.randint(0, 4000))
    h, out, seen = Harness(operator()), [], MIN_WATERMARK
    for t in arrivals:
        out += h.element(rule_row(t))
        seen = max(seen, t["event_time_ms"])
        out += h.advance(seen - 5000 - 1)
    out += h.advance(T0 + 150_000 + 10 * WINDOW)
    # LARGE_AMOUNT leaves from SQL, before this operator (test_fraud_job.py runs that part)
    assert alert_ids(out) == sorted(a.alert_id for a in f.alerts_of(txns)
                                    if a.rule != f.LARGE_AMOUNT)
    assert h.empty(), "an account idle past every look-back keeps no state"


def test_large_amount_is_sent_again_by_the_operator_only_to_name_a_transaction_behind_it():
    h = Harness(operator())
    h.element(rule_row(txn(0, 0, 1_000)))
    h.advance(T0 + 5_000)
    assert h.element(rule_row(txn(1, 6_000, 1_000_000))) == [], "sent from SQL, not here"
    behind = txn(2, 4_000, 1_000)  # behind the watermark of 5 000
    h.element(rule_row(behind))
    large = txn(3, 7_000, 2_000_000)
    [(key, record)] = h.element(rule_row(large))
    alert = json.loads(record)
    assert key == "a-1"
    assert (alert["rule"], alert["txn_ids"], alert["event_time_ms"]) == (
        "LARGE_AMOUNT", ["t-000003"], T0 + 7_000)
    assert alert["alert_id"] == hashlib.sha256(b"LARGE_AMOUNT|t-000003").hexdigest()[:32]
    assert alert["details"][f.BEHIND_KEY] == [behind["txn_id"]]


def test_a_held_back_watermark_costs_one_read_per_transaction_when_it_catches_up():
    # one partition behind: 3 000 transactions of one account wait; then the watermark moves
    # one slot at a time, as a lagging partition's reads let it
    txns = [txn(i, i * 50, 1_000) for i in range(3_000)]
    h = Harness(operator())
    for t in txns:
        h.element(rule_row(t))
    for wm in range(T0, T0 + 3_000 * 50 + COALESCE, COALESCE):
        h.advance(wm)
    assert h.read_rows == len(txns)
    assert not h.data["pending_slots"]["a-1"]


def test_a_late_transaction_from_long_ago_fires_a_timer_or_two_not_one_per_idle_period():
    # its idle timer fires at once; the account's memory of now must not make it re-arm one
    # idle period (2 min) later, and again, all the way to the present (21 600 timers for
    # these 30 days; millions for a record years old, which held the job for minutes)
    h = Harness(operator())
    for t in [txn(i, i * 1_000, 1_000) for i in range(3)]:
        h.element(rule_row(t))
    h.advance(T0 + 10_000)
    fired = h.fired
    h.element(rule_row(txn(9, -30 * 86_400_000, 1_000), LATE_TXN))
    h.advance(T0 + 10_200)
    assert h.fired - fired <= 2
    assert h.data["behind"]["a-1"] == {}, "a late one beyond every reach is not kept"
    h.advance(T0 + 20 * WINDOW)
    assert h.empty()


def test_timers_restored_with_the_earlier_one_list_layout_still_drain_it():
    # a savepoint of a version before the slots: the transactions in one list ("pending"),
    # one timer per grid slot
    txns = [txn(i, i * 1_000, amount) for i, amount in
            enumerate([50, 50, 60_000] + [1_000] * 12)]
    h = Harness(operator())
    h.key = "a-1"
    for t in txns:
        h.data.setdefault("pending", {}).setdefault("a-1", []).append(
            Row(*(t[n] for n in PENDING_FIELDS)))
        h.register_event_time_timer(-(-t["event_time_ms"] // COALESCE) * COALESCE)
    out = h.advance(T0 + 5_000)  # part of them
    out += h.advance(T0 + 20 * WINDOW)
    # 50 at 1 s then 60 000 at 2 s; the tenth transaction (9 s) makes VELOCITY, whose
    # silence holds back the five after it
    assert alerts(out) == [
        ("SMALL_THEN_LARGE", ("t-000001", "t-000002"), T0 + 2_000),
        ("VELOCITY", tuple(f"t-{i:06d}" for i in range(10)), T0 + 9_000),
    ]
    assert h.empty()


def test_a_transaction_behind_the_watermark_meets_the_rules_at_the_next_advance_and_is_named():
    h = Harness(operator())
    first = [txn(i, i * 1_000, 1_000) for i in range(9)]
    for t in first:
        h.element(rule_row(t))
    assert h.advance(T0 + 8_500) == []  # nine: no VELOCITY yet
    behind = txn(9, 8_400, 1_000)  # its slot (8 400) is at or before the watermark
    assert h.element(rule_row(behind)) == []
    out = h.advance(T0 + 9_000)
    [record] = [json.loads(o[1][1]) for o in out]
    assert record["rule"] == f.VELOCITY and behind["txn_id"] in record["txn_ids"]
    assert record["details"][f.BEHIND_KEY] == [behind["txn_id"]]
    assert not h.data["pending_slots"]["a-1"]


def test_rule_state_restored_in_the_earlier_row_layout_is_read_once_then_kept_as_text():
    # "account" (a Row: silence, recent transactions, profiles) of a version before the String
    # layout: nine small purchases in the look-back; the tenth makes VELOCITY
    h = Harness(operator())
    h.key = "a-1"
    nine = [txn(i, i * 1_000, 1_000) for i in range(9)]
    h.data["account"] = {"a-1": Row(None, [Row(t["event_time_ms"], t["txn_id"], t["kind"],
                                               t["amount_cents"]) for t in nine],
                                    [Row(T0 - 1, "DE", "high")])}
    h.watermark = T0 + 8_500
    tenth = txn(9, 9_000, 1_000)
    h.element(rule_row(tenth))
    [record] = [json.loads(o[1][1]) for o in h.advance(T0 + 9_500)]
    assert record["rule"] == f.VELOCITY and tenth["txn_id"] in record["txn_ids"]
    assert h.data["account"].get("a-1") is None, "the old layout is cleared once read"
    rules = json.loads(h.data["rules"]["a-1"])
    assert rules["profiles"] == [[T0 - 1, "DE", "high"]] and len(rules["recent"]) == 10
