"""The generator's options from the configuration and a command's flags (`payline generate`,
`payline demo`, the soak's traffic)."""

from __future__ import annotations

import time

from payline.generator.plan import Options
from runtime.errors import UsageError
from runtime.settings import Config


def generator_options(cfg: Config, flags: dict | None = None) -> Options:
    """The generator's options: the ``[generator]`` section, with what ``flags`` (a command's
    arguments by name: count, duration, rate, seed, ...; None for "not given") sets instead.
    UsageError names a flag whose value cannot work."""
    gc = cfg.generator
    a = flags or {}

    def pick(name, default):
        value = a.get(name)
        return default if value is None else value

    count = pick("count", gc.count)
    duration = a.get("duration")
    if duration is not None and a.get("count") is None:
        count = None
    start_ms = pick("start_ms", (int(time.time() * 1000) // 60000) * 60000)
    opts = Options(
        seed=pick("seed", gc.seed), start_ms=start_ms, rate_per_s=pick("rate", gc.rate_per_s),
        count=count, duration_s=duration, accounts=pick("accounts", gc.accounts),
        merchants=pick("merchants", gc.merchants), spikes=tuple(a.get("spike") or ()),
        out_of_order_ms=pick("out_of_order_ms", gc.out_of_order_ms),
        out_of_order_fraction=pick("out_of_order_fraction", gc.out_of_order_fraction),
        duplicate_fraction=pick("duplicate_fraction", gc.duplicate_fraction),
        conflicting_duplicate_fraction=pick("conflicting_duplicate_fraction",
                                            gc.conflicting_duplicate_fraction),
        late_fraction=pick("late_fraction", gc.late_fraction),
        late_by_ms=pick("late_by_ms", gc.late_by_ms),
        late_after=pick("late_after", gc.late_after),
        malformed_fraction=pick("malformed_fraction", gc.malformed_fraction),
        schema_violation_fraction=pick("schema_violation_fraction",
                                       gc.schema_violation_fraction),
        invalid_value_fraction=pick("invalid_value_fraction", gc.invalid_value_fraction),
        large_amount_fraction=pick("large_amount_fraction", gc.large_amount_fraction),
        high_risk_account_fraction=gc.high_risk_account_fraction,
        currencies=cfg.contract.currencies,
        txn_topic=cfg.topics.transactions, accounts_topic=cfg.topics.accounts,
    )
    if opts.accounts < 1:
        raise UsageError("payline generate: argument --accounts: must be >= 1")
    if opts.merchants < 1:
        raise UsageError("payline generate: argument --merchants: must be >= 1")
    total_bad = (opts.duplicate_fraction + opts.conflicting_duplicate_fraction
                 + opts.late_fraction + opts.malformed_fraction
                 + opts.schema_violation_fraction + opts.invalid_value_fraction)
    if total_bad >= 1.0:
        raise UsageError("payline generate: the --*-fraction values must add up to less than 1")
    if opts.out_of_order_ms >= cfg.event_time.out_of_orderness_ms:
        raise UsageError(
            f"payline generate: argument --out-of-order-ms: must stay below "
            f"event_time.out_of_orderness_ms ({cfg.event_time.out_of_orderness_ms}) "
            f"to be in bound"
        )
    return opts
