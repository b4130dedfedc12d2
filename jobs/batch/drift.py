"""Data-quality drift: each reconciliation run's metrics against a trailing baseline of earlier
runs (``[drift]`` in conf/payline.toml). Pure Python over metric dicts; the Spark job computes
the metrics and keeps the history.

Checks, and why:

* categorical mixes (currency, channel, country): **PSI** (population stability index) of the
  run's shares against the baseline's mean shares. PSI is symmetric in practice, additive over
  categories, and has well-known reading bands (< 0.1 stable, 0.1-0.25 moderate, > 0.25
  major); default threshold 0.25. Shares are floored at 0.0001 so a category new or gone does not
  give an infinite PSI.
* amounts per currency: **Wasserstein-1 distance** between the run's and the baseline's
  distributions of log10(amount), from their quantiles (the W1 distance is the mean absolute
  difference of the quantile functions). Amounts are spread over several orders of magnitude,
  so on a linear scale the distance is ruled by the top quantile's noise; on the log scale it
  reads in decades in any currency: 0.2 (the default threshold) is a typical amount 1.6x
  higher or lower, a unit error (cents sent as units) is 2. A currency with fewer than
  ``amount_min_count`` (200) accepted transactions in the run is not checked: the quantiles
  of a smaller sample move by more than that on their own. The quantiles are what the
  history keeps: no raw sample is stored.
* rates (DLQ per error class, duplicates, late, unexplained): **relative change** against the
  baseline mean, flagged when the rate is more than ``rate_change`` (default 1.0: doubled)
  above it and above ``rate_floor`` in absolute terms (0.002), so that a rate moving from 0 to
  one record in a million is not drift.

The history: one JSON file of metrics per reconciled interval under
``<data_dir>/quality/history/`` (:func:`check_drift` writes it, the report reads it back).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from runtime import times

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
MIN_SHARE = 1e-4


def psi(current: dict[str, float], baseline: dict[str, float]) -> float:
    """PSI of two count (or share) maps over the union of their categories."""
    cur_total = sum(current.values()) or 1.0
    base_total = sum(baseline.values()) or 1.0
    total = 0.0
    for k in set(current) | set(baseline):
        c = max(current.get(k, 0) / cur_total, MIN_SHARE)
        b = max(baseline.get(k, 0) / base_total, MIN_SHARE)
        total += (c - b) * math.log(c / b)
    return total


def wasserstein_from_quantiles(current: list[float], baseline: list[float]) -> float:
    """W1 between two distributions of log10(amount) given by the same quantile levels of
    the amounts, in decades."""
    def log(q):
        return math.log10(max(q, 1.0))
    return sum(abs(log(c) - log(b)) for c, b in zip(current, baseline, strict=True)) / len(current)


def mean_map(maps: list[dict[str, float]]) -> dict[str, float]:
    """Mean shares of several count maps."""
    out: dict[str, float] = {}
    for m in maps:
        total = sum(m.values()) or 1.0
        for k, v in m.items():
            out[k] = out.get(k, 0.0) + v / total / len(maps)
    return out


def compare(current: dict, history: list[dict], params) -> dict:
    """Drift checks of a run's metrics against the baseline (the last ``params.baseline_runs``
    of ``history``, oldest first). Returns {check: {value, threshold, drifted}}; empty when
    there is no baseline yet."""
    base = history[-params.baseline_runs:]
    if not base:
        return {}
    out = {}
    for mix in ("currency_mix", "channel_mix", "country_mix"):
        value = psi(current[mix], mean_map([h[mix] for h in base]))
        out[f"psi.{mix}"] = {"value": round(value, 6), "threshold": params.psi_threshold,
                             "drifted": value > params.psi_threshold}
    for currency, qs in current["amount_quantiles"].items():
        if current["currency_mix"].get(currency, 0) < params.amount_min_count:
            continue
        past = [h["amount_quantiles"][currency] for h in base
                if currency in h["amount_quantiles"]]
        if not past:
            continue
        mean_qs = [sum(p[i] for p in past) / len(past) for i in range(len(qs))]
        value = wasserstein_from_quantiles(qs, mean_qs)
        out[f"wasserstein.amount.{currency}"] = {
            "value": round(value, 6), "threshold": params.amount_threshold,
            "drifted": value > params.amount_threshold}
    for rate, value in current["rates"].items():
        past = [h["rates"].get(rate, 0.0) for h in base]
        mean = sum(past) / len(past)
        limit = max(mean * (1 + params.rate_change), params.rate_floor)
        out[f"rate.{rate}"] = {"value": round(value, 6), "threshold": round(limit, 6),
                               "drifted": value > limit}
    return out


# --- the history of run metrics ------------------------------------------------------------------


def history_dir(cfg) -> Path:
    return cfg.paths.data_dir / "quality" / "history"


def metrics_history(cfg) -> list[dict]:
    """Every run's metrics in the history, by interval start: {start_ms, end_ms, metrics}."""
    out = []
    for f in history_dir(cfg).glob("interval=*.json"):
        start, end = (times.from_path(x) for x in f.stem.split("=", 1)[1].split("_"))
        out.append({"start_ms": start, "end_ms": end, "metrics": json.loads(f.read_text())})
    return sorted(out, key=lambda h: h["start_ms"])


def check_drift(cfg, start_ms: int, end_ms: int, metrics: dict) -> dict:
    """Append the run's metrics to the history (one file per interval: a re-run replaces its
    own) and compare them with the runs of earlier intervals (:func:`compare`, ``[drift]``)."""
    earlier = [h["metrics"] for h in metrics_history(cfg) if h["start_ms"] < start_ms]
    result = compare(metrics, earlier, cfg.drift)
    history_dir(cfg).mkdir(parents=True, exist_ok=True)
    (history_dir(cfg) / f"interval={times.interval_for_path(start_ms, end_ms)}.json").write_text(
        json.dumps(metrics, sort_keys=True) + "\n")
    return result
