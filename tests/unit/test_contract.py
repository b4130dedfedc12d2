"""udfs.contract.validate: docs/contract.md#fields and #validation steps 1-3, at and just past
every boundary."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.records import GOOD, enc
from udfs import contract
from udfs.contract import (
    ERROR_CLASSES,
    INVALID_VALUE,
    MALFORMED,
    SCHEMA_VIOLATION,
    Invalid,
    Valid,
    validate,
)


def with_(**kw) -> bytes:
    return enc({**GOOD, **kw})


def classify(raw: bytes):
    r = validate(raw)
    return ("OK", None) if isinstance(r, Valid) else (r.error_class, r.field)


def test_a_good_record_is_accepted_and_extra_fields_are_dropped():
    r = validate(enc({**GOOD, "new_field": [1, 2]}))
    assert isinstance(r, Valid)
    assert r.txn == GOOD


@pytest.mark.parametrize("raw, why", [
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"txn_id": "t-1"', "truncated"),
    (b"[1, 2]", "an array"),
    (b'"a string"', "a string"),
    (b"", "empty"),
    (enc({**GOOD})[:-1] + b',"x":NaN}', "NaN token"),
    (b'{"a": Infinity}', "Infinity token"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    (None, "tombstone"),
])
def test_malformed(raw, why):
    assert classify(raw) == (MALFORMED, None), why


def test_size_limit_is_64_kib_inclusive():
    base = enc({**GOOD, "pad": ""})
    at_limit = enc({**GOOD, "pad": "x" * (65536 - len(base))})
    assert len(at_limit) == 65536
    assert classify(at_limit) == ("OK", None)
    over = enc({**GOOD, "pad": "x" * (65537 - len(base))})
    assert len(over) == 65537
    assert classify(over) == (MALFORMED, None)


@pytest.mark.parametrize("field, value", [
    ("amount_cents", 1.5), ("amount_cents", 100.0), ("amount_cents", True),
    ("amount_cents", "100"), ("amount_cents", None), ("event_time_ms", False),
    ("event_time_ms", 1.7e12), ("txn_id", 1), ("currency", ["USD"]), ("country", {"c": 1}),
])
def test_wrong_json_type_is_a_schema_violation(field, value):
    assert classify(with_(**{field: value})) == (SCHEMA_VIOLATION, field)


@pytest.mark.parametrize("field", [f for f in GOOD])
def test_missing_field_is_a_schema_violation(field):
    assert classify(enc({k: v for k, v in GOOD.items() if k != field})) == (SCHEMA_VIOLATION,
                                                                             field)


def test_schema_violations_are_reported_before_invalid_values():
    # txn_id breaks its rule, amount_cents has the wrong type: the type wins (step 2 < step 3)
    assert classify(with_(txn_id="bad id", amount_cents="1")) == (SCHEMA_VIOLATION,
                                                                  "amount_cents")


@pytest.mark.parametrize("field", ["txn_id", "account_id", "merchant_id"])
def test_id_length_boundaries(field):
    assert classify(with_(**{field: "a" * 64})) == ("OK", None)
    assert classify(with_(**{field: "a" * 65})) == (INVALID_VALUE, field)
    assert classify(with_(**{field: ""})) == (INVALID_VALUE, field)
    assert classify(with_(**{field: "A-z_0.9:"})) == ("OK", None)
    for bad in ("a b", "a/b", "é", "a\n"):
        assert classify(with_(**{field: bad})) == (INVALID_VALUE, field), bad


@pytest.mark.parametrize("literal, ok", [("0", False), ("1", True), ("1000000000000", True),
                                         ("1000000000001", False), ("-5", False),
                                         ("1" + "0" * 400, False), ("-" + "9" * 5000, False)],
                         ids=["0", "1", "max", "max+1", "negative", "400 digits", "5000 digits"])
def test_amount_boundaries(literal, ok):
    raw = with_(amount_cents=0)
    raw = raw.replace(b'"amount_cents":0', b'"amount_cents":' + literal.encode())
    assert classify(raw) == (("OK", None) if ok else (INVALID_VALUE, "amount_cents"))


@pytest.mark.parametrize("value, ok", [(946684800000, True), (946684799999, False),
                                       (4102444799999, True), (4102444800000, False)])
def test_event_time_boundaries(value, ok):
    assert classify(with_(event_time_ms=value)) == (
        ("OK", None) if ok else (INVALID_VALUE, "event_time_ms"))


@pytest.mark.parametrize("field, good, bad", [
    ("currency", ["USD", "SGD", "JPY"], ["usd", "XXX", "", "US"]),
    ("kind", ["purchase", "refund"], ["Purchase", "chargeback", ""]),
    ("channel", ["web", "pos", "mobile", "atm"], ["WEB", "fax", ""]),
    ("country", ["US", "DE"], ["us", "USA", "U", "", "1A"]),
])
def test_allow_lists_and_patterns(field, good, bad):
    for v in good:
        assert classify(with_(**{field: v})) == ("OK", None), v
    for v in bad:
        assert classify(with_(**{field: v})) == (INVALID_VALUE, field), v


# One value breaking its rule (docs/contract.md#fields), per field, in the contract table's
# order (written out here, not taken from udfs.contract, whose order is what is tested).
CONTRACT_ORDER = (
    ("txn_id", "bad id"),
    ("account_id", ""),
    ("merchant_id", "m/1"),
    ("amount_cents", 0),
    ("currency", "XXX"),
    ("kind", "chargeback"),
    ("event_time_ms", 1),
    ("channel", "fax"),
    ("country", "usa"),
)
PAIRS = [(a, b) for i, a in enumerate(CONTRACT_ORDER) for b in CONTRACT_ORDER[i + 1:]]


@pytest.mark.parametrize("first, second", PAIRS, ids=[f"{a[0]}+{b[0]}" for a, b in PAIRS])
def test_a_record_breaking_two_rules_names_the_first_field_in_contract_order(first, second):
    (name, bad), (other, other_bad) = first, second
    # the later field is placed first in the JSON: the order of the record does not matter
    raw = enc({other: other_bad, **{k: v for k, v in GOOD.items() if k != other},
               name: bad})
    assert classify(raw) == (INVALID_VALUE, name)


def test_two_broken_rules_report_the_earlier_fields_message():
    r = validate(with_(country="usa", amount_cents=0, merchant_id="m/1"))
    assert (r.error_class, r.field, r.error) == (
        INVALID_VALUE, "merchant_id", "merchant_id: must match ^[A-Za-z0-9_.:-]{1,64}$")
    r = validate(with_(channel="fax", event_time_ms=1))
    assert (r.error_class, r.field, r.error) == (
        INVALID_VALUE, "event_time_ms",
        "event_time_ms: must be in [946684800000, 4102444800000)")


def test_error_message_names_the_field_and_the_rule():
    r = validate(with_(txn_id="t" * 65))
    assert r.error == "txn_id: must match ^[A-Za-z0-9_.:-]{1,64}$"
    r = validate(with_(amount_cents=1.5))
    assert r.error == "amount_cents: expected integer, got number with a fraction part"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise_and_get_a_contract_class(raw):
    r = validate(raw)
    assert isinstance(r, Valid) or r.error_class in ERROR_CLASSES


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(list(GOOD) + ["x"]), json_values))
def test_random_json_objects_never_raise(obj):
    r = validate(json.dumps(obj).encode())
    assert isinstance(r, (Valid, Invalid))


# --- payments.accounts (docs/contract.md#account-profiles) ----------------------------------------

PROFILE = {"account_id": "acct-1", "home_country": "DE", "risk_tier": "high",
           "valid_from_ms": 1767225600000}


def _profile(**changes):
    return json.dumps({**PROFILE, **changes}).encode()


def test_a_valid_profile_keeps_its_four_fields():
    got = contract.validate_profile(_profile(extra=1), b"acct-1")
    assert isinstance(got, contract.ValidProfile) and got.profile == PROFILE


def test_a_null_profile_value_is_a_tombstone_not_an_error():
    assert isinstance(contract.validate_profile(None, b"acct-1"), contract.Tombstone)


@pytest.mark.parametrize("raw, key, error_class, message", [
    (b"not json", b"acct-1", "MALFORMED", "value: not JSON"),
    (_profile(valid_from_ms=True), b"acct-1", "SCHEMA_VIOLATION",
     "valid_from_ms: expected integer, got boolean"),
    (json.dumps({k: v for k, v in PROFILE.items() if k != "risk_tier"}).encode(), b"acct-1",
     "SCHEMA_VIOLATION", "risk_tier: required field missing"),
    (_profile(risk_tier="extreme"), b"acct-1", "INVALID_VALUE", "risk_tier: must be one of"),
    (_profile(home_country="de"), b"acct-1", "INVALID_VALUE", "home_country: must match"),
    (_profile(valid_from_ms=1), b"acct-1", "INVALID_VALUE", "valid_from_ms: must be in"),
    (_profile(), b"acct-2", "INVALID_VALUE", "account_id: differs from the record key"),
])
def test_a_bad_profile_gets_the_transaction_error_classes(raw, key, error_class, message):
    got = contract.validate_profile(raw, key)
    assert isinstance(got, contract.Invalid)
    assert got.error_class == error_class and got.error.startswith(message)


# --- the common valid shape (contract.canonical_arrow, validate_arrow's fast path) ---------

def fast_path(raw, rules=contract.DEFAULT_RULES):
    """The nine fields when validate_arrow's fast path (canonical_arrow) takes ``raw``."""
    import pyarrow as pa

    rows = contract.canonical_arrow(pa.array([raw], pa.binary()), rules).to_pylist()
    return {n: rows[0][n] for n in contract.FIELD_NAMES} if rows else None


ID_CHARS = st.sampled_from("Aa0_.:-z/ é\"\\\n")
canonical_like = st.fixed_dictionaries({
    "txn_id": st.text(ID_CHARS, max_size=66), "account_id": st.text(ID_CHARS, max_size=3),
    "merchant_id": st.text(ID_CHARS, max_size=3),
    "amount_cents": st.integers(-5, 10**19) | st.sampled_from([0, 1, 10**12, 10**12 + 1]),
    "currency": st.sampled_from(["USD", "SGD", "XXX", "usd", "US"]),
    "kind": st.sampled_from(["purchase", "refund", "Purchase"]),
    "event_time_ms": st.integers(946684799998, 946684800001)
    | st.integers(4102444799999, 4102444800000) | st.integers(-1, 10**19),
    "channel": st.sampled_from(["web", "pos", "mobile", "atm", "fax"]),
    "country": st.sampled_from(["US", "DE", "us", "USA"]),
})


@settings(max_examples=1500, deadline=None)
@given(canonical_like, st.sampled_from(["compact", "spaced", "reordered", "extra", "tail"]))
def test_the_common_shape_is_only_ever_what_validate_accepts_with_the_same_values(txn, form):
    raw = {
        "compact": contract.encode_txn(txn),
        "spaced": json.dumps(txn).encode(),
        "reordered": enc(dict(reversed(list(txn.items())))),
        "extra": enc({**txn, "x": 1}),
        "tail": contract.encode_txn(txn) + b"\n",
    }[form]
    full = validate(raw)
    fast = fast_path(raw)
    if fast is not None:
        assert isinstance(full, Valid) and full.txn == fast
    if form == "compact" and isinstance(full, Valid):
        # the canonical encoding of any valid transaction with plain ASCII ids takes the fast
        # path (in the Flink job and the Spark recompute it never enters Python)
        assert fast == full.txn


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_take_the_fast_path_wrongly(raw):
    fast = fast_path(raw)
    assert fast is None or validate(raw).txn == fast


def test_the_fast_path_leaves_every_doubtful_record_to_validate():
    good = contract.encode_txn(GOOD)
    assert fast_path(good) == GOOD
    for raw in (good + b"\n", b" " + good, good.replace(b'"t-1"', b'"t\\u002d1"'),
                good.replace(b":100,", b":0100,"), good.replace(b":100,", b":-100,"),
                good.replace(b"USD", b"XXX"), good.replace(b":100,", b":1000000000001,"),
                good.replace(b"1767225600000", b"4102444800000"), good[:-1]):
        assert fast_path(raw) is None, raw
    assert fast_path(good, contract.Rules(max_value_bytes=len(good) - 1)) is None
    assert fast_path(good, contract.Rules(currencies=("EUR",))) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    canonical_like.map(contract.encode_txn), canonical_like.map(lambda t: enc(t)),
    st.binary(max_size=40), st.none(), st.just(contract.encode_txn(GOOD))), max_size=30))
def test_validate_arrow_is_validate_over_a_batch(values):
    import pyarrow as pa

    got = contract.validate_arrow(pa.array(values, pa.binary())).to_pylist()
    assert sorted(r["row"] for r in got) == list(range(len(values)))
    for r in got:
        want = validate(values[r["row"]])
        if want.ok:
            assert r["error_class"] is None and r["error"] is None
            assert {n: r[n] for n in contract.FIELD_NAMES} == want.txn
        else:
            assert (r["error_class"], r["error"]) == (want.error_class, want.error)
            assert all(r[n] is None for n in contract.FIELD_NAMES)


def test_validate_arrow_applies_the_configured_rules():
    import pyarrow as pa

    values = pa.array([contract.encode_txn(GOOD)])
    (r,) = contract.validate_arrow(values, contract.Rules(currencies=("EUR",))).to_pylist()
    assert (r["error_class"], r["error"]) == (INVALID_VALUE,
                                              "currency: not in the currency allow-list")
    (r,) = contract.validate_arrow(values, contract.Rules(max_amount_cents=99)).to_pylist()
    assert r["error"] == "amount_cents: must be in 1..99"


def test_the_pattern_has_one_group_per_field_in_contract_order():
    import re
    assert re.compile(contract.CANONICAL_BODY).groups == len(contract.FIELD_NAMES)
    assert contract.CANONICAL_PATTERN.endswith("\\z")
