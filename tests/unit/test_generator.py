"""The traffic generator: deterministic per seed, and every record is what its category says.

Valid records are checked against an independent reading of docs/contract.md#fields written here
(not the generator's or udfs' code), and against the shared validator; bad records must break
exactly the rule their manifest entry names.
"""

import json
import re
from collections import Counter

import pytest

from payline.generator.plan import Options, Spike, plan
from payline.generator.send import Progress
from udfs.contract import Invalid, Valid, validate

ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
CURRENCIES = set("USD EUR GBP JPY CHF CAD AUD SEK NOK DKK PLN INR BRL MXN SGD".split())


def conforms_to_contract(value: bytes) -> bool:
    """docs/contract.md#fields, read independently of udfs/."""
    if len(value) > 65536:
        return False
    obj = json.loads(value.decode("utf-8"))
    ints = ("amount_cents", "event_time_ms")
    for f in ("txn_id", "account_id", "merchant_id", "currency", "kind", "channel", "country"):
        if not isinstance(obj.get(f), str):
            return False
    for f in ints:
        if type(obj.get(f)) is not int:
            return False
    return bool(
        ID.match(obj["txn_id"]) and ID.match(obj["account_id"]) and ID.match(obj["merchant_id"])
        and 1 <= obj["amount_cents"] <= 10**12
        and obj["currency"] in CURRENCIES
        and obj["kind"] in ("purchase", "refund")
        and 946684800000 <= obj["event_time_ms"] < 4102444800000
        and obj["channel"] in ("web", "pos", "mobile", "atm")
        and re.fullmatch(r"[A-Z]{2}", obj["country"])
    )


# Every fraction raised so that a few thousand records hold every category many times.
BUSY = Options(seed=3, count=4000, accounts=50, duplicate_fraction=0.05,
               conflicting_duplicate_fraction=0.03, late_fraction=0.03, late_after=100,
               malformed_fraction=0.04, schema_violation_fraction=0.04,
               invalid_value_fraction=0.04)


@pytest.fixture(scope="module")
def busy():
    return list(plan(BUSY))


def test_same_seed_gives_the_same_records_byte_for_byte():
    a = [(r.topic, r.key, r.value, r.category) for r in plan(BUSY)]
    b = [(r.topic, r.key, r.value, r.category) for r in plan(BUSY)]
    assert a == b


def test_another_seed_gives_other_records():
    other = Options(**{**BUSY.__dict__, "seed": 4})
    a = [r.value for r in plan(BUSY)]
    b = [r.value for r in plan(other)]
    assert a != b


def test_count_is_the_number_of_transactions_after_one_profile_per_account(busy):
    cats = Counter(r.category for r in busy)
    assert cats["profile"] == 50
    assert sum(cats.values()) == 50 + 4000
    for cat in ("valid", "duplicate", "conflicting_duplicate", "late", "malformed",
                "schema_violation", "invalid_value"):
        assert cats[cat] > 10, cat


def test_profiles_follow_the_accounts_contract(busy):
    for r in (r for r in busy if r.category == "profile"):
        p = json.loads(r.value)
        assert r.topic == "payments.accounts"
        assert set(p) == {"account_id", "home_country", "risk_tier", "valid_from_ms"}
        assert r.key.decode() == p["account_id"]
        assert p["risk_tier"] in ("low", "medium", "high")
        assert re.fullmatch(r"[A-Z]{2}", p["home_country"])


def test_every_valid_record_satisfies_the_contract(busy):
    for r in busy:
        if r.category in ("valid", "late", "duplicate", "conflicting_duplicate"):
            assert conforms_to_contract(r.value), r
            assert isinstance(validate(r.value), Valid), r
            assert r.key == json.loads(r.value)["account_id"].encode()


def test_every_bad_record_breaks_exactly_the_rule_its_category_names(busy):
    expected_class = {"malformed": "MALFORMED", "schema_violation": "SCHEMA_VIOLATION",
                      "invalid_value": "INVALID_VALUE"}
    rules_seen = set()
    for r in busy:
        if r.category not in expected_class:
            continue
        result = validate(r.value)
        assert isinstance(result, Invalid), r
        assert result.error_class == expected_class[r.category], (r, result)
        if r.category != "malformed":
            assert result.field == r.detail["field"], (r, result)
            # exactly one rule: putting the named field back to a valid value heals the record
            fixed = json.loads(r.value)
            fixed[r.detail["field"]] = _a_valid_value(r.detail["field"])
            assert conforms_to_contract(json.dumps(fixed).encode()), r
        rules_seen.add((r.category, r.detail.get("field"), r.detail["rule"]))
    assert len(rules_seen) >= 15  # the variants are all exercised, not one repeated


def _a_valid_value(field):
    return {"txn_id": "t-1", "account_id": "a-1", "merchant_id": "m-1", "amount_cents": 100,
            "currency": "EUR", "kind": "refund", "event_time_ms": 1767225600000,
            "channel": "pos", "country": "DE"}[field]


def test_duplicates_repeat_an_earlier_valid_record_exactly(busy):
    by_seq = {r.seq: r for r in busy}
    for r in (r for r in busy if r.category == "duplicate"):
        original = by_seq[r.detail["of_seq"]]
        assert original.seq < r.seq and original.category == "valid"
        assert (r.key, r.value) == (original.key, original.value)


def test_conflicting_duplicates_share_the_txn_id_and_differ_in_a_field(busy):
    by_seq = {r.seq: r for r in busy}
    for r in (r for r in busy if r.category == "conflicting_duplicate"):
        original = json.loads(by_seq[r.detail["of_seq"]].value)
        changed = json.loads(r.value)
        assert changed["txn_id"] == original["txn_id"]
        diff = {k for k in original if original[k] != changed[k]}
        assert diff == {r.detail["field"]}


def test_late_records_lag_the_schedule_by_late_by_ms_and_come_after_warm_up(busy):
    txns = [r for r in busy if r.category != "profile"]
    for i, r in enumerate(txns):
        if r.category == "late":
            assert i >= BUSY.late_after
            t = json.loads(r.value)["event_time_ms"]
            assert t == BUSY.start_ms + int(r.schedule_s * 1000) - BUSY.late_by_ms


def test_out_of_order_records_stay_inside_the_bound(busy):
    lags = []
    for r in busy:
        if r.category == "valid":
            lag = BUSY.start_ms + int(r.schedule_s * 1000) - json.loads(r.value)["event_time_ms"]
            assert 0 <= lag <= BUSY.out_of_order_ms
            lags.append(lag)
    assert max(lags) > 0


def test_a_spike_multiplies_the_rate_for_its_duration():
    opts = Options(seed=1, count=3000, rate_per_s=100, spikes=(Spike(10, 2, 5),),
                   duplicate_fraction=0, conflicting_duplicate_fraction=0, late_fraction=0,
                   malformed_fraction=0, schema_violation_fraction=0, invalid_value_fraction=0)
    times = [r.schedule_s for r in plan(opts) if r.category != "profile"]
    in_spike = sum(1 for t in times if 5 <= t < 7)
    before = sum(1 for t in times if 3 <= t < 5)
    assert before == pytest.approx(200, abs=2)
    assert in_spike == pytest.approx(2000, abs=20)


def test_duration_bounds_the_schedule_instead_of_count():
    opts = Options(seed=1, count=None, duration_s=3, rate_per_s=50)
    txns = [r for r in plan(opts) if r.category != "profile"]
    assert len(txns) == 150
    assert max(r.schedule_s for r in txns) < 3


@pytest.mark.parametrize("text, expected", [("10x:10s@30s", Spike(10, 10, 30)),
                                            ("2.5x:1@0", Spike(2.5, 1, 0))])
def test_spike_parses(text, expected):
    assert Spike.parse(text) == expected


@pytest.mark.parametrize("text", ["10x", "x:1s@2s", "0x:1s@1s", "3x:-1s@0s"])
def test_bad_spike_is_refused(text):
    with pytest.raises(ValueError, match="--spike"):
        Spike.parse(text)


def test_manifest_entry_keeps_bytes_that_are_not_utf8(busy):
    import base64

    bad = next(r for r in busy if r.category == "malformed" and r.detail["rule"] == "utf8")
    entry = bad.manifest_entry()
    assert entry["value"] is None
    assert base64.b64decode(entry["value_b64"]) == bad.value


class _Tty:
    def __init__(self, tty):
        self.tty, self.text = tty, ""

    def isatty(self):
        return self.tty

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_progress_bar_is_drawn_on_a_terminal_only():
    tty = _Tty(True)
    bar = Progress(200, tty)
    bar.update(50, 1.0, force=True)
    bar.close()
    assert "[#######" in tty.text and " 25.0% 50/200" in tty.text and tty.text.endswith("\n")
    pipe = _Tty(False)
    bar = Progress(200, pipe)
    bar.update(50, 1.0, force=True)
    bar.close()
    assert pipe.text == ""
