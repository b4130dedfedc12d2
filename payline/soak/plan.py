"""The soak's plan: which faults, of which kinds, at which moments, and when the traffic
spikes; all drawn from ``soak.seed``, so the same seed gives the same plan."""

from __future__ import annotations

import random
from dataclasses import dataclass

from payline.generator.plan import Spike
from runtime.config import ConfigError

# the fault kinds, in the order the summary table lists them (payline.soak.faults injects each)
KINDS = ("taskmanager_kill", "jobmanager_restart", "broker_kill", "archiver_kill", "upgrade",
         "rollback", "checkpoint_readonly")
# the jobs the soak deploys as releases (runtime.registry), and the one it upgrades
JOBS = ("transactions", "fraud")
UPGRADED_JOB = "transactions"


@dataclass(frozen=True)
class PlannedFault:
    at_s: float  # seconds after the traffic started
    kind: str


@dataclass
class FaultResult:
    kind: str
    planned_at_s: float
    injected_at_s: float | None = None
    recovery_s: float | None = None
    outcome: str = "pending"  # recovered | not recovered | skipped: ... | not injected: ...
    detail: str = ""


def check_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ConfigError(f"conf: soak.kinds: unknown fault kind {unknown[0]!r} "
                          f"(known: {', '.join(KINDS)})")
    if "rollback" in kinds and "upgrade" not in kinds:
        raise ConfigError("conf: soak.kinds: rollback needs upgrade in the list (it rolls an "
                          "upgrade back)")
    return kinds


def plan_faults(seed: int, count: int, kinds: tuple[str, ...], duration_s: float,
                warmup_s: float, cooldown_s: float) -> list[PlannedFault]:
    """``count`` faults at uniform random moments of [warmup_s, duration_s - cooldown_s],
    every kind at least once when ``count`` >= len(kinds), a rollback only after an upgrade
    that it undoes. The same seed gives the same plan."""
    check_kinds(kinds)
    if count == 0:
        return []
    if duration_s - cooldown_s <= warmup_s:
        raise ConfigError(f"conf: soak.duration_s must exceed soak.warmup_s + soak.cooldown_s "
                          f"({warmup_s:g} + {cooldown_s:g}), got {duration_s:g}")
    rng = random.Random(seed)
    order = [kinds[i % len(kinds)] for i in range(count)]
    rng.shuffle(order)
    pending = 0  # upgrades not rolled back yet
    for i, kind in enumerate(order):
        if kind == "rollback" and not pending:
            later = [j for j in range(i + 1, len(order)) if order[j] == "upgrade"]
            if later:
                order[i], order[later[0]] = order[later[0]], order[i]
            else:
                order[i] = "upgrade"
        pending += {"upgrade": 1, "rollback": -1}.get(order[i], 0)
    times = sorted(rng.uniform(warmup_s, duration_s - cooldown_s) for _ in range(count))
    return [PlannedFault(round(t, 1), k) for t, k in zip(times, order, strict=True)]


def plan_spikes(seed: int, count: int, factor: float, spike_s: float,
                duration_s: float) -> tuple[Spike, ...]:
    rng = random.Random(seed + 1)
    if count == 0 or duration_s <= spike_s:
        return ()
    return tuple(sorted((Spike(factor, spike_s, round(rng.uniform(0, duration_s - spike_s), 1))
                         for _ in range(count)), key=lambda s: s.at_s))
