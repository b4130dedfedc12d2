"""The transaction contract (CONTRACT.md §1 and §3 steps 1-3) as one declarative spec and one
validator. Pure Python: no pyflink, no pyspark. The streaming jobs, the batch recompute and the
traffic generator's tests all classify records with :func:`validate`.

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
    """The configurable limits of §1; defaults are the contract's."""

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
    txn: dict  # the nine §1 fields, extra fields dropped

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
    """The §1 rule of one well-typed field, or None when it holds."""
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
    """§3 step 1: a UTF-8 JSON object within the size limit, or MALFORMED."""
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
    """§3 step 2, fields in table order: the first missing or mistyped one."""
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
    """Classify one raw Kafka record value (§3 steps 1-3). Never raises."""
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


# --- payments.accounts (CONTRACT.md §2) ---------------------------------------------------------

RISK_TIERS = ("low", "medium", "high")
PROFILE_FIELDS: tuple[tuple[str, type], ...] = (
    ("account_id", str),
    ("home_country", str),
    ("risk_tier", str),
    ("valid_from_ms", int),
)


@dataclass(frozen=True, slots=True)
class ValidProfile:
    profile: dict  # the four §2 fields, extra fields dropped

    ok = True


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A null value on the compacted topic: the account's profiles are deleted."""

    ok = True


def validate_profile(raw: bytes | None, key: bytes | None,
                     rules: Rules = DEFAULT_RULES) -> ValidProfile | Tombstone | Invalid:
    """Classify one ``payments.accounts`` record with the same error classes as §3 steps 1-3.
    The record key must be the profile's account_id (the topic is compacted by it). Never
    raises."""
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
