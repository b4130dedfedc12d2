"""The transaction contract (docs/contract.md#fields and #validation steps 1-3) as one declarative
spec and one validator. Pure Python: no pyflink, no pyspark. The streaming jobs, the batch recompute
and the traffic generator's tests all classify records with :func:`validate`.

``validate(raw_bytes)`` never raises. It returns a :class:`Valid` with the parsed transaction,
or an :class:`Invalid` with the error class and a message naming the field and the broken rule.
The checks run in contract order: MALFORMED, then SCHEMA_VIOLATION (fields in table order),
then INVALID_VALUE (fields in table order); the first failure wins.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

MALFORMED = "MALFORMED"
SCHEMA_VIOLATION = "SCHEMA_VIOLATION"
INVALID_VALUE = "INVALID_VALUE"
CONFLICTING_DUPLICATE = "CONFLICTING_DUPLICATE"
ERROR_CLASSES = (MALFORMED, SCHEMA_VIOLATION, INVALID_VALUE, CONFLICTING_DUPLICATE)

DEFAULT_CURRENCIES = (
    "USD EUR GBP JPY CHF CAD AUD SEK NOK DKK PLN INR BRL MXN SGD".split()
)
KINDS = ("purchase", "refund")
CHANNELS = ("web", "pos", "mobile", "atm")
ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
COUNTRY_PATTERN = r"^[A-Z]{2}$"

# Field order is the contract table's order; it decides which error is reported first.
FIELDS: tuple[tuple[str, type], ...] = (
    ("txn_id", str),
    ("account_id", str),
    ("merchant_id", str),
    ("amount_cents", int),
    ("currency", str),
    ("kind", str),
    ("event_time_ms", int),
    ("channel", str),
    ("country", str),
)
FIELD_NAMES = tuple(name for name, _ in FIELDS)
INT_FIELDS = tuple(name for name, typ in FIELDS if typ is int)

# An integer literal longer than this cannot be in any configured range; parsing it as an int
# would hit CPython's 4300-digit limit, so it becomes a sentinel that fails the range rule.
_MAX_INT_DIGITS = 24


class _HugeInt(int):
    """An integer literal too long to be in range; keeps its sign for the error message."""


def _parse_int(text: str) -> int:
    digits = len(text) - (text[0] == "-")
    if digits > _MAX_INT_DIGITS:
        return _HugeInt(-(10**_MAX_INT_DIGITS) if text[0] == "-" else 10**_MAX_INT_DIGITS)
    return int(text)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_int=_parse_int, parse_constant=_reject_constant)


@dataclass(frozen=True)
class Rules:
    """The configurable limits of docs/contract.md#fields; defaults are the contract's."""

    currencies: tuple[str, ...] = tuple(DEFAULT_CURRENCIES)
    max_value_bytes: int = 65536
    min_amount_cents: int = 1
    max_amount_cents: int = 1_000_000_000_000
    min_event_time_ms: int = 946_684_800_000
    max_event_time_ms: int = 4_102_444_800_000  # exclusive
    _currency_set: frozenset = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_currency_set", frozenset(self.currencies))


DEFAULT_RULES = Rules()

_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_COUNTRY_RE = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True, slots=True)
class Valid:
    txn: dict  # the nine fields of docs/contract.md#fields, extra fields dropped

    ok = True


@dataclass(frozen=True, slots=True)
class Invalid:
    error_class: str
    error: str
    field: str | None = None

    ok = False


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number with a fraction part"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _check_value(name: str, value: Any, rules: Rules) -> str | None:
    """The rule (docs/contract.md#fields) of one well-typed field, or None when it holds."""
    if name in ("txn_id", "account_id", "merchant_id"):
        if not _ID_RE.fullmatch(value):
            return f"{name}: must match {ID_PATTERN}"
    elif name == "amount_cents":
        if not rules.min_amount_cents <= value <= rules.max_amount_cents:
            return (
                f"amount_cents: must be in {rules.min_amount_cents}..{rules.max_amount_cents}"
            )
    elif name == "currency":
        if value not in rules._currency_set:
            return "currency: not in the currency allow-list"
    elif name == "kind":
        if value not in KINDS:
            return "kind: must be one of purchase, refund"
    elif name == "event_time_ms":
        if not rules.min_event_time_ms <= value < rules.max_event_time_ms:
            return (
                f"event_time_ms: must be in [{rules.min_event_time_ms}, "
                f"{rules.max_event_time_ms})"
            )
    elif name == "channel":
        if value not in CHANNELS:
            return "channel: must be one of web, pos, mobile, atm"
    elif name == "country":
        if not _COUNTRY_RE.fullmatch(value):
            return f"country: must match {COUNTRY_PATTERN}"
    return None


def _parse_object(raw: bytes, rules: Rules) -> dict | Invalid:
    """docs/contract.md#validation step 1: a UTF-8 JSON object within the size limit, or
    MALFORMED."""
    if len(raw) > rules.max_value_bytes:
        return Invalid(MALFORMED, f"value: {len(raw)} bytes, over {rules.max_value_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Invalid(MALFORMED, f"value: not UTF-8 (byte {exc.start})")
    try:
        obj = _decoder.decode(text)
    except RecursionError:
        return Invalid(MALFORMED, "value: JSON nested too deeply")
    except ValueError as exc:  # JSONDecodeError is a ValueError; so is NaN/Infinity
        return Invalid(MALFORMED, f"value: not JSON ({str(exc).splitlines()[0][:120]})")
    if not isinstance(obj, dict):
        return Invalid(MALFORMED, f"value: JSON {_json_type(obj)}, not an object")
    return obj


def _check_types(obj: dict, fields: tuple[tuple[str, type], ...]) -> Invalid | None:
    """docs/contract.md#validation step 2, fields in table order: the first missing or mistyped
    one."""
    for name, typ in fields:
        if name not in obj:
            return Invalid(SCHEMA_VIOLATION, f"{name}: required field missing", name)
        value = obj[name]
        if type(value) is not typ and not (typ is int and type(value) is _HugeInt):
            want = "integer" if typ is int else "string"
            return Invalid(
                SCHEMA_VIOLATION, f"{name}: expected {want}, got {_json_type(value)}", name
            )
    return None


def validate(raw: bytes | None, rules: Rules = DEFAULT_RULES) -> Valid | Invalid:
    """Classify one raw Kafka record value (docs/contract.md#validation steps 1-3). Never raises."""
    if raw is None:
        return Invalid(MALFORMED, "value: null record value (tombstone)")
    obj = _parse_object(raw, rules)
    if isinstance(obj, Invalid):
        return obj

    problem = _check_types(obj, FIELDS)
    if problem:
        return problem
    for name, _ in FIELDS:
        problem = _check_value(name, obj[name], rules)
        if problem:
            return Invalid(INVALID_VALUE, problem, name)
    return Valid({name: obj[name] for name in FIELD_NAMES})


def encode_txn(txn: dict) -> bytes:
    """The canonical JSON encoding of a transaction (field order of the contract)."""
    return json.dumps({k: txn[k] for k in FIELD_NAMES}, separators=(",", ":")).encode()


# --- payments.accounts (docs/contract.md#account-profiles) ----------------------------------------

RISK_TIERS = ("low", "medium", "high")
PROFILE_FIELDS: tuple[tuple[str, type], ...] = (
    ("account_id", str),
    ("home_country", str),
    ("risk_tier", str),
    ("valid_from_ms", int),
)


@dataclass(frozen=True, slots=True)
class ValidProfile:
    profile: dict  # the four fields of docs/contract.md#account-profiles, extra fields dropped

    ok = True


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A null value on the compacted topic: the account's profiles are deleted."""

    ok = True


def validate_profile(raw: bytes | None, key: bytes | None,
                     rules: Rules = DEFAULT_RULES) -> ValidProfile | Tombstone | Invalid:
    """Classify one ``payments.accounts`` record with the same error classes as
    docs/contract.md#validation steps 1-3. The record key must be the profile's account_id
    (the topic is compacted by it). Never raises."""
    if raw is None:
        return Tombstone()
    parsed = _parse_object(raw, rules)
    if isinstance(parsed, Invalid):
        return parsed
    problem = _check_types(parsed, PROFILE_FIELDS)
    if problem:
        return problem
    if not _ID_RE.fullmatch(parsed["account_id"]):
        return Invalid(INVALID_VALUE, f"account_id: must match {ID_PATTERN}", "account_id")
    if not _COUNTRY_RE.fullmatch(parsed["home_country"]):
        return Invalid(INVALID_VALUE, f"home_country: must match {COUNTRY_PATTERN}",
                       "home_country")
    if parsed["risk_tier"] not in RISK_TIERS:
        return Invalid(INVALID_VALUE, "risk_tier: must be one of low, medium, high",
                       "risk_tier")
    if not rules.min_event_time_ms <= parsed["valid_from_ms"] < rules.max_event_time_ms:
        return Invalid(INVALID_VALUE, f"valid_from_ms: must be in [{rules.min_event_time_ms}, "
                                      f"{rules.max_event_time_ms})", "valid_from_ms")
    if key is not None and key != parsed["account_id"].encode():
        return Invalid(INVALID_VALUE, "account_id: differs from the record key", "account_id")
    return ValidProfile({name: parsed[name] for name, _ in PROFILE_FIELDS})


# --- the common valid shape, checked vectorised (docs/contract.md#fields, #validation) ------------
#
# Nearly every record is a valid transaction in the canonical encoding (:func:`encode_txn`:
# contract field order, no whitespace, plain ASCII values). One regular expression recognises
# that shape, so those records need no JSON parse and no per-field checks in Python: the Spark
# recompute decides them over whole Arrow batches (:func:`validate_arrow`, whose fast path is
# :func:`canonical_arrow`). The pattern is conservative, never wrong: a record it
# accepts is one that ``validate`` accepts with the same nine values (property tests hold the
# two together), and whatever it cannot decide (whitespace, another field order, escapes,
# negative or leading-zero numbers, a configured currency outside [A-Z]{3}) goes to
# ``validate``, which gives the same answer, only slower.

_CANONICAL_VALUES = {
    "txn_id": '"([A-Za-z0-9_.:-]{1,64})"',
    "account_id": '"([A-Za-z0-9_.:-]{1,64})"',
    "merchant_id": '"([A-Za-z0-9_.:-]{1,64})"',
    # at most 18 digits: always a 64-bit integer; JSON allows no leading zero
    "amount_cents": "(0|[1-9][0-9]{0,17})",
    "currency": '"([A-Z]{3})"',
    "kind": '"(' + "|".join(KINDS) + ')"',
    "event_time_ms": "(0|[1-9][0-9]{0,17})",
    "channel": '"(' + "|".join(CHANNELS) + ')"',
    "country": '"([A-Z]{2})"',
}
# group i + 1 is field FIELD_NAMES[i]; no value can hold a quote, a backslash or a comma
CANONICAL_BODY = "\\{" + ",".join(f'"{name}":{_CANONICAL_VALUES[name]}'
                                    for name in FIELD_NAMES) + "\\}"
# anchored for RE2 (Arrow's regex engine): \z is the very end of the value
CANONICAL_PATTERN = "^" + CANONICAL_BODY + "\\z"


def _split_positions() -> dict[str, int]:
    """Where each field's value lies in a canonical record split at its quotes: a string's
    own piece, an integer's piece ``:<digits>,`` (the fields are found by name, never by a
    hand-counted offset)."""
    pieces = encode_txn({name: (7 if typ is int else "v") for name, typ in FIELDS}).split(b'"')
    return {name: pieces.index(name.encode()) + (1 if typ is int else 2)
            for name, typ in FIELDS}


_SPLIT_AT = _split_positions()


def canonical_arrow(values, rules: Rules = DEFAULT_RULES):
    """The fast path of :func:`validate_arrow`: the values of an Arrow binary array that have
    the common valid shape and pass the rules the pattern does not hold (size, ranges, the
    currency allow-list), as a ``pyarrow.Table`` of ``row`` (index into ``values``) and the
    nine fields. Every other value is for :func:`validate`."""
    # deferred: only the vectorised paths need pyarrow; validate() and its users (the
    # generator, the per-record Flink function) do not load it
    import pyarrow as pa
    import pyarrow.compute as pc

    shaped = pc.fill_null(pc.match_substring_regex(values, CANONICAL_PATTERN), False)
    matched = values.filter(shaped)
    pieces = pc.split_pattern(matched, '"')
    cols = {}
    for name, typ in FIELDS:
        piece = pc.list_element(pieces, _SPLIT_AT[name])
        cols[name] = (pc.cast(pc.cast(pc.binary_slice(piece, 1, -1), pa.string()), pa.int64())
                      if typ is int else pc.cast(piece, pa.string()))
    amount, event_time = cols["amount_cents"], cols["event_time_ms"]
    ok = pc.and_(
        pc.and_(pc.less_equal(pc.binary_length(matched), rules.max_value_bytes),
                pc.is_in(cols["currency"], pa.array(list(rules.currencies), pa.string()))),
        pc.and_(pc.and_(pc.greater_equal(amount, rules.min_amount_cents),
                        pc.less_equal(amount, rules.max_amount_cents)),
                pc.and_(pc.greater_equal(event_time, rules.min_event_time_ms),
                        pc.less(event_time, rules.max_event_time_ms))))
    rows = pc.cast(pc.indices_nonzero(shaped), pa.int64())
    return pa.table({"row": rows, **cols}).filter(ok)


VALIDATED_COLUMNS = ("row", "error_class", "error") + FIELD_NAMES


def validate_arrow(values, rules: Rules = DEFAULT_RULES):
    """:func:`validate` over an Arrow array of raw values (binary, nulls allowed), vectorised
    for the common shape. Returns a ``pyarrow.Table`` of VALIDATED_COLUMNS with one row per
    value in no particular order; ``row`` is the value's index in ``values``."""
    # deferred: as in canonical_arrow
    import numpy as np
    import pyarrow as pa

    values = values.cast(pa.binary())
    fast = canonical_arrow(values, rules)
    # everything else, one record at a time
    is_fast = np.zeros(len(values), dtype=bool)
    is_fast[fast.column("row").to_numpy()] = True
    slow_rows = np.flatnonzero(~is_fast).tolist()
    out = {name: [] for name in VALIDATED_COLUMNS}
    for i in slow_rows:
        v = validate(values[i].as_py(), rules)
        out["row"].append(i)
        out["error_class"].append(None if v.ok else v.error_class)
        out["error"].append(None if v.ok else v.error)
        for name in FIELD_NAMES:
            out[name].append(v.txn[name] if v.ok else None)
    types = {"row": pa.int64(), "error_class": pa.string(), "error": pa.string(),
             **{name: pa.int64() if typ is int else pa.string() for name, typ in FIELDS}}
    slow = pa.table({name: pa.array(out[name], types[name]) for name in VALIDATED_COLUMNS})
    fast = pa.table({name: (fast.column(name) if name in fast.column_names
                            else pa.nulls(fast.num_rows, types[name]))
                     for name in VALIDATED_COLUMNS})
    return pa.concat_tables([fast, slow])
