"""How the analyst report and the Data Docs write times, intervals and amounts.

* An instant is ISO 8601 in UTC to the second: ``2026-12-01T10:00:00Z`` (runtime.times.iso).
* An interval is its two instants: ``2026-12-01T10:00:00Z → 2026-12-01T10:05:00Z`` on a page,
  ``2026-12-01T10:00:00Z--2026-12-01T10:05:00Z`` as a Great Expectations run name, and
  ``2026-12-01T10-00-00Z_2026-12-01T10-05-00Z`` as a folder name
  (runtime.times.interval_for_path: no colons, which are not allowed in Windows paths and
  read as a scheme at the start of a relative link).
* An amount is in the currency's minor unit (the contract's ``amount_cents``); it is shown in
  the major unit with as many decimals as the currency has (ISO 4217): ``EUR 1,234.56``,
  ``JPY 1,235``.
"""

from __future__ import annotations

from runtime import times

# ISO 4217 exponents of the contract's currencies that differ from 2 (USD, EUR, GBP, CHF, CAD,
# AUD, SEK, NOK, DKK, PLN, INR, BRL, MXN and SGD have cents)
MINOR_UNITS = {"JPY": 0}
DEFAULT_MINOR_UNITS = 2


def interval_text(start_ms: int, end_ms: int) -> str:
    return f"{times.iso(start_ms)} → {times.iso(end_ms)}"


def run_name(start_ms: int, end_ms: int) -> str:
    """The interval as a Great Expectations run name."""
    return f"{times.iso(start_ms)}--{times.iso(end_ms)}"


def minor_units(currency: str) -> int:
    return MINOR_UNITS.get(currency, DEFAULT_MINOR_UNITS)


def major(amount_minor: int | float, currency: str) -> float:
    """An amount in the currency's major unit (1234 cents of EUR: 12.34)."""
    return amount_minor / 10 ** minor_units(currency)


def money(amount_minor: int, currency: str) -> str:
    """``EUR 1,234.56`` from 123456; ``JPY 1,235`` from 1235; negative: ``EUR -0.40``."""
    digits = minor_units(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(int(amount_minor)), 10 ** digits)
    text = f"{whole:,}" + (f".{frac:0{digits}d}" if digits else "")
    return f"{currency} {sign}{text}"
