"""The analyst report's charts (SVG, matplotlib), with one scale convention stated on each:
counts and rates on linear axes from zero; amounts, which span decades, on a log axis in the
currency's major unit."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from jobs.batch import drift, formats
from udfs import reconcile

MAX_CURRENCY_PANELS = 6
SCALE_NOTE = "Counts and rates: linear scale from zero."
AMOUNT_SCALE_NOTE = ("Counts: linear scale from zero. Amounts: log scale, in the currency's "
                     "major unit.")
HISTORY_RATES = (("duplicate", "Duplicate rate"), ("late", "Late rate"),
                 ("dlq", "DLQ rate (all classes)"), ("unexplained", "Unexplained keys / keys"))
COLORS = {reconcile.MATCH: "#2e7d32", reconcile.EXPLAINED_LATE: "#1565c0",
          reconcile.ORDER_DEPENDENT: "#6a1b9a", reconcile.MISSING_IN_STREAM: "#c62828",
          reconcile.EXTRA_IN_STREAM: "#ef6c00", reconcile.VALUE_MISMATCH: "#ad1457"}


def pyplot():
    # deferred: matplotlib is heavy and only the report's charts need it; the Agg backend must
    # be chosen before pyplot is first imported
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "payline",
                         "font.size": 10, "axes.spines.top": False,
                         "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def _save(plt, fig, path: Path, note: str, rect=(0, 0, 1, 1)) -> str:
    fig.text(0.995, 0.005, note, ha="right", va="bottom", fontsize=7, color="#616161")
    fig.tight_layout(rect=(rect[0], max(rect[1], 0.04), rect[2], rect[3]))
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    return path.name


def _hhmm(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M")


def chart_windows(plt, windows: list[dict], window_ms: int, path: Path) -> str:
    """Transactions per window on each side, and the keys not matching, over the windows
    with traffic (report_data.windows_with_traffic)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.4), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1.4]})
    x = list(range(len(windows)))
    labels = [_hhmm(w["window_start_ms"]) for w in windows]
    stream = [w["stream_txn_count"] for w in windows]
    batch = [w["batch_txn_count"] for w in windows]
    if len(x) <= 90:
        top.bar([i - 0.2 for i in x], stream, width=0.4, color="#90a4ae",
                label="stream (committed aggregates)")
        top.bar([i + 0.2 for i in x], batch, width=0.4, color="#1565c0",
                label="batch (recomputed from the raw log)")
    else:
        top.step(x, stream, where="mid", color="#90a4ae", label="stream (committed aggregates)")
        top.step(x, batch, where="mid", color="#1565c0", linewidth=0.8,
                 label="batch (recomputed from the raw log)")
    top.set_ylabel("transactions")
    top.set_ylim(bottom=0)
    top.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False, fontsize=8)
    explained = [w["not_match"] - w["unexplained"] for w in windows]
    bottom.bar(x, explained, color="#1565c0", label="explained (late, order-dependent)")
    bottom.bar(x, [w["unexplained"] for w in windows], bottom=explained, color="#c62828",
               label="unexplained")
    bottom.set_ylabel("keys not\nmatching")
    bottom.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False,
                  fontsize=8)
    bottom.set_ylim(0, max([1] + [w["not_match"] for w in windows]) * 1.1)
    bottom.set_xlim(-0.6, max(len(x), 1) - 0.4)
    step = max(1, math.ceil(len(x) / 12))
    bottom.set_xticks(x[::step], labels[::step])
    bottom.set_xlabel("window start (UTC)")
    if not windows:
        top.text(0.5, 0.5, "no traffic in this interval", ha="center", transform=top.transAxes)
    fig.suptitle(f"Transactions per {window_ms // 1000:,} s window: stream vs batch",
                 fontsize=11)
    return _save(plt, fig, path, SCALE_NOTE)


def chart_classes(plt, summary: dict, path: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
    for ax, (title, counts) in zip(axes, (("Aggregate keys", summary["aggregates"]),
                                          ("Alerts", summary["alerts"])), strict=True):
        names = [c for c in reconcile.CLASSES if counts.get(c)]
        values = [counts[c] for c in names]
        ax.barh(names, values, color=[COLORS[c] for c in names])
        ax.invert_yaxis()
        for i, v in enumerate(values):
            ax.annotate(f" {v:,}", (v, i), va="center", fontsize=8)
        ax.set_xlim(0, max(values) * 1.25 if values else 1)  # room for the labels
        ax.set_title(title)
        ax.grid(axis="y", visible=False)
        if not names:
            ax.set_yticks([])
            ax.text(0.5, 0.5, "none in this interval", ha="center", transform=ax.transAxes)
    return _save(plt, fig, path, SCALE_NOTE)


def rate_series(runs: list[dict], name: str) -> list[float]:
    if name == "dlq":
        return [sum(v for k, v in r["metrics"]["rates"].items() if k.startswith("dlq."))
                for r in runs]
    return [r["metrics"]["rates"].get(name, 0.0) for r in runs]


def chart_history(plt, runs: list[dict], params, path: Path) -> str:
    """Each rate per run, with the band its baseline spanned (min..max of the previous
    ``baseline_runs`` runs) and the drift limit of each run (dashed)."""
    n = params.baseline_runs
    fig, axes = plt.subplots(2, 2, figsize=(9, 5), sharex=True)
    x = list(range(len(runs)))
    for ax, (name, title) in zip(axes.flat, HISTORY_RATES, strict=True):
        values = rate_series(runs, name)
        lo, hi, limit = [], [], []
        for i in x:
            base = values[max(0, i - n):i]
            lo.append(min(base) if base else math.nan)
            hi.append(max(base) if base else math.nan)
            mean = sum(base) / len(base) if base else math.nan
            limit.append(max(mean * (1 + params.rate_change), params.rate_floor)
                         if base else math.nan)
        ax.fill_between(x, lo, hi, color="#90caf9", alpha=0.5, step="mid",
                        label=f"baseline (last {n} runs) min-max")
        ax.plot(x, limit, "--", color="#c62828", linewidth=1, label="drift limit")
        ax.plot(x, values, "o-", color="#0d47a1", markersize=4, label="run")
        ax.plot(x[-1:], values[-1:], "o", color="#ff6f00", markersize=8, label="this run")
        ax.set_title(title)
        ax.set_ylim(bottom=0)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=4, frameon=False, fontsize=8,
               bbox_to_anchor=(0.5, 0.03))
    step = max(1, len(x) // 8)
    for ax in axes[1]:
        ax.set_xticks(x[::step], [_hhmm(runs[i]["start_ms"]) for i in x[::step]])
        ax.set_xlabel("run interval start (UTC)")
    return _save(plt, fig, path, SCALE_NOTE, rect=(0, 0.09, 1, 1))


def chart_amounts(plt, bins: dict[str, dict[int, int]], runs: list[dict], params,
                  path: Path) -> str:
    """Histogram of amounts for the busiest currencies, this run's median (solid) against the
    baseline's (dashed, mean of the previous runs' medians)."""
    top = sorted(bins, key=lambda c: -sum(bins[c].values()))[:MAX_CURRENCY_PANELS]
    cols = 3
    rows = max(1, math.ceil(len(top) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(9, 2.4 * rows), squeeze=False)
    median_at = drift.QUANTILES.index(0.5)
    base_runs = runs[:-1][-params.baseline_runs:]
    for ax, cur in zip(axes.flat, top, strict=False):
        counts = bins[cur]
        xs = sorted(counts)

        def edge(b, cur=cur):
            return formats.major(10 ** (b / 5), cur)

        ax.bar([edge(b) for b in xs], [counts[b] for b in xs],
               width=[edge(b + 1) - edge(b) for b in xs], align="edge",
               color="#64b5f6", edgecolor="#1565c0", linewidth=0.4)
        ax.set_xscale("log")
        ax.set_ylim(bottom=0)
        q_now = runs[-1]["metrics"]["amount_quantiles"].get(cur) if runs else None
        if q_now:
            ax.axvline(formats.major(q_now[median_at], cur), color="#0d47a1", label="median")
        past = [r["metrics"]["amount_quantiles"][cur][median_at] for r in base_runs
                if cur in r["metrics"]["amount_quantiles"]]
        if past:
            ax.axvline(formats.major(sum(past) / len(past), cur), color="#c62828",
                       linestyle="--", label="baseline median")
        ax.set_title(f"{cur} ({sum(counts.values()):,} txns)", fontsize=9)
        ax.set_xlabel(f"amount in {cur} (log scale)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(top):]:
        ax.set_visible(False)
    if top:
        axes.flat[0].legend(fontsize=7)
    return _save(plt, fig, path, AMOUNT_SCALE_NOTE)
