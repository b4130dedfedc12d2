"""Bad input (issue 7): the shared validation under hostile records never raises and always
answers with one of the contract's classes; every command refuses a bad argument with one
line, no traceback."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payline.cli import command_names, main
from udfs.contract import ERROR_CLASSES, Invalid, Valid, validate, validate_profile

GOOD = {"txn_id": "t-1", "account_id": "acct-1", "merchant_id": "m-1", "amount_cents": 100,
        "currency": "USD", "kind": "purchase", "event_time_ms": 1767225600000,
        "channel": "web", "country": "US"}
GOOD_JSON = json.dumps(GOOD)

# text that breaks parsers: surrogates, nulls, BOM, right-to-left and combining marks, emoji
NASTY_TEXT = st.sampled_from(["\ud800", "\x00", "\ufeff", "\u202e", "e\u0301", "\U0001f4b3",
                              "", " ", "\\", '"', "\n", "a" * 70, "\u0660\u0661"])
HUGE_NUMBERS = st.sampled_from(["1e309", "-1e309", "9" * 400, "1" + "0" * 5000, "0.1e-400",
                                "NaN", "Infinity", "-Infinity", "1.0", "-0", "1e2",
                                "9223372036854775808", "-9223372036854775809"])


def answered(raw: bytes) -> None:
    r = validate(raw)
    assert isinstance(r, Valid) or (isinstance(r, Invalid) and r.error_class in ERROR_CLASSES
                                    and r.error)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(GOOD_JSON) - 1))
def test_truncated_json_is_malformed(cut):
    r = validate(GOOD_JSON[:cut].encode())
    assert isinstance(r, Invalid) and r.error_class == "MALFORMED"


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 100_000), st.sampled_from(["[", "{\"a\":"]))
def test_deep_nesting_never_raises(depth, opener):
    closer = "]" if opener == "[" else "}"
    answered((opener * depth + "1" + closer * depth).encode())
    answered(json.dumps({**GOOD, "extra": None}).replace("null", opener * depth + "1"
                                                         + closer * depth).encode())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(GOOD)), HUGE_NUMBERS)
def test_huge_numbers_and_nan_tokens_in_any_field_never_raise(field, token):
    raw = GOOD_JSON.replace(json.dumps({field: GOOD[field]})[1:-1],
                            f'"{field}":{token}')
    r = validate(raw.encode())
    assert isinstance(r, Invalid) and r.error_class in ERROR_CLASSES  # never a valid number
    answered(raw.encode())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(GOOD)), st.one_of(
    NASTY_TEXT, st.none(), st.booleans(), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.floats(),
    st.integers(-2**70, 2**70)))
def test_wrong_types_and_unicode_edge_cases_never_raise(field, value):
    try:
        raw = json.dumps({**GOOD, field: value}).encode("utf-8", "surrogatepass")
    except ValueError:  # a float json cannot write: the raw NaN/Infinity token instead
        raw = json.dumps({**GOOD, field: str(value)}).encode()
    answered(raw)
    key = GOOD["account_id"].encode()
    p = validate_profile(raw, key)
    assert p is not None


# what each command needs before an unknown option is the only thing wrong
REQUIRED = {"archiver": ["run"], "submit": ["fraud"], "release": ["fraud"],
            "deploy": ["fraud"], "upgrade": ["fraud", "--version", "v"], "rollback": ["fraud"],
            "savepoint": ["fraud"], "savepoints": ["fraud"], "releases": ["fraud"],
            "reconcile": ["--start", "0", "--end", "60000"]}
COMMANDS = command_names()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_refuses_an_unknown_option_with_one_line(command, capsys):
    assert main([command, *REQUIRED.get(command, []), "--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--no-such-option" in err and "Traceback" not in err


@pytest.mark.parametrize("command", sorted(REQUIRED))
def test_a_missing_argument_is_named_in_one_line(command, capsys):
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "required" in err and "Traceback" not in err
