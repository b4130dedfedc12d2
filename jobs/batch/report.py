"""The analyst report of a reconciliation run: ``<reports_dir>/<run>/index.html`` (static: opens
from the file system, no server) with SVG charts next to it, and ``summary.json`` (the same
content for machines). ``<reports_dir>/index.html`` lists every run, newest first.

A run is named by its interval in UTC, ``20260101T000000Z_20260101T010000Z``; a re-run of the
interval replaces its report. The report reads the run's result files in the lake (the
reconciliation's ``aggregates.parquet`` / ``alerts.parquet``), the drift history and the
recomputed accepted transactions; it decides nothing (the exit code is the reconciliation's).

One cohesive module, longer than most: the page, its charts and the index of runs are one
report whose parts share their names, colours and figures.
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import functions as F

from jobs.batch import drift, quality
from udfs import reconcile

SAMPLE_ROWS = 25
MAX_CURRENCY_PANELS = 6
HISTORY_RATES = (("duplicate", "Duplicate rate"), ("late", "Late rate"),
                 ("dlq", "DLQ rate (all classes)"), ("unexplained", "Unexplained keys / keys"))
COLORS = {reconcile.MATCH: "#2e7d32", reconcile.EXPLAINED_LATE: "#1565c0",
          reconcile.ORDER_DEPENDENT: "#6a1b9a", reconcile.MISSING_IN_STREAM: "#c62828",
          reconcile.EXTRA_IN_STREAM: "#ef6c00", reconcile.VALUE_MISMATCH: "#ad1457"}
CLASS_MEANING = {
    reconcile.MATCH: "the stream committed exactly what the batch recomputes",
    reconcile.EXPLAINED_LATE: "differs only by transactions the stream routed to "
                              "payments.late-transactions",
    reconcile.ORDER_DEPENDENT: "involves a txn_id that came on two partitions; which copy "
                               "counts depends on the interleaving",
    reconcile.MISSING_IN_STREAM: "the batch has it, the stream never committed it (unexplained)",
    reconcile.EXTRA_IN_STREAM: "the stream committed it, the raw log does not support it "
                               "(unexplained)",
    reconcile.VALUE_MISMATCH: "both have it with different values (unexplained)",
}


def run_name(start_ms: int, end_ms: int) -> str:
    def fmt(ms):
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{fmt(start_ms)}_{fmt(end_ms)}"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --- data ----------------------------------------------------------------------------------------

def collect(spark, cfg, results: dict) -> dict:
    """The small, already aggregated data the report shows (collected to the driver)."""
    out_dir = results["out_dir"]
    aggs = spark.read.parquet(str(out_dir / "aggregates.parquet"))

    def field(column, name):
        return F.coalesce(F.col(f"{column}.{name}"), F.lit(0))

    windows = [r.asDict() for r in (
        aggs.groupBy("window_start_ms").agg(
            F.count("*").alias("keys"),
            F.sum(F.when(F.col("reconciliation_class") != reconcile.MATCH, 1).otherwise(0))
             .alias("not_match"),
            F.sum(F.when(F.col("reconciliation_class").isin(*reconcile.UNEXPLAINED), 1)
                  .otherwise(0)).alias("unexplained"),
            F.sum(field("stream", "txn_count")).alias("stream_txn_count"),
            F.sum(field("batch", "txn_count")).alias("batch_txn_count"),
            F.sum(field("stream", "net_cents")).alias("stream_net_cents"),
            F.sum(field("batch", "net_cents")).alias("batch_net_cents"))
        .orderBy("window_start_ms").collect())]

    def sample(df, order):
        unexplained_first = F.when(F.col("reconciliation_class").isin(*reconcile.UNEXPLAINED),
                                   0).otherwise(1)
        rows = (df.where(F.col("reconciliation_class") != reconcile.MATCH)
                .orderBy(unexplained_first, *order).limit(SAMPLE_ROWS).collect())
        return [r.asDict(recursive=True) for r in rows]

    alerts = spark.read.parquet(str(out_dir / "alerts.parquet"))
    accepted = results["quality_frames"]["accepted_transactions"]
    # amounts per currency in fifth-of-a-decade bins of log10(amount_cents)
    bins = accepted.groupBy("currency", F.floor(F.log10("amount_cents") * 5).alias("bin")) \
                   .count().collect()
    hist: dict[str, dict[int, int]] = {}
    for r in bins:
        hist.setdefault(r["currency"], {})[int(r["bin"])] = r["count"]
    return {
        "windows": windows,
        "sample_aggregates": sample(aggs.drop("late"), ["account_id", "currency",
                                                        "window_start_ms"]),
        "sample_alerts": sample(alerts, ["alert_id"]),
        "amount_bins": hist,
        "history": history(cfg, results["summary"]["interval"]["start_ms"]),
    }


def history(cfg, up_to_start_ms: int) -> list[dict]:
    """The drift history of the runs up to this one, oldest first."""
    return [h for h in drift.metrics_history(cfg) if h["start_ms"] <= up_to_start_ms]


# --- charts --------------------------------------------------------------------------------------

def _pyplot():
    # deferred: matplotlib is heavy and only the report's charts need it; the Agg backend must
    # be chosen before pyplot is first imported
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "payline",
                         "font.size": 10, "axes.spines.top": False,
                         "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def _save(plt, fig, path: Path, rect=(0, 0, 1, 1)) -> str:
    fig.tight_layout(rect=rect)
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    return path.name


def _hhmm(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M")


def all_windows(windows: list[dict], start_ms: int, end_ms: int, window_ms: int) -> list[dict]:
    """Every window of the interval, in order; a window with no key in either side has
    zeros (so the time axis has no holes)."""
    have = {w["window_start_ms"]: w for w in windows}
    zero = {k: 0 for k in ("keys", "not_match", "unexplained", "stream_txn_count",
                           "batch_txn_count", "stream_net_cents", "batch_net_cents")}
    return [have.get(t, {"window_start_ms": t, **zero})
            for t in range(start_ms, end_ms, window_ms)]


def chart_windows(plt, windows: list[dict], path: Path) -> str:
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
    top.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False, fontsize=8)
    explained = [w["not_match"] - w["unexplained"] for w in windows]
    bottom.bar(x, explained, color="#1565c0", label="explained (late, order-dependent)")
    bottom.bar(x, [w["unexplained"] for w in windows], bottom=explained, color="#c62828",
               label="unexplained")
    bottom.set_ylabel("keys not\nmatching")
    bottom.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False,
                  fontsize=8)
    bottom.set_ylim(0, max([1] + [w["not_match"] for w in windows]) * 1.1)
    bottom.set_xlim(-1, max(len(x), 2))
    step = max(1, math.ceil(len(x) / 12))
    bottom.set_xticks(x[::step], labels[::step])
    bottom.set_xlabel("window start (UTC)")
    fig.suptitle("Transactions per 60 s window: stream vs batch", fontsize=11)
    return _save(plt, fig, path)


def chart_classes(plt, summary: dict, path: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
    for ax, (title, counts) in zip(axes, (("Aggregate keys", summary["aggregates"]),
                                          ("Alerts", summary["alerts"])), strict=True):
        names = [c for c in reconcile.CLASSES if counts.get(c)]
        values = [counts[c] for c in names]
        ax.barh(names, values, color=[COLORS[c] for c in names])
        ax.invert_yaxis()
        ax.set_xscale("log" if values and max(values) > 50 * max(1, min(values)) else "linear")
        for i, v in enumerate(values):
            ax.annotate(f" {v:,}", (v, i), va="center", fontsize=8)
        if values:  # room for the labels
            ax.set_xlim(right=max(values) * (4 if ax.get_xscale() == "log" else 1.2))
        ax.set_title(title + (" (log scale)" if ax.get_xscale() == "log" else ""))
        ax.grid(axis="y", visible=False)
        if not names:
            ax.text(0.5, 0.5, "none in this interval", ha="center", transform=ax.transAxes)
    return _save(plt, fig, path)


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
    fig.legend(handles, names, loc="lower center", ncol=4, frameon=False, fontsize=8)
    step = max(1, len(x) // 8)
    for ax in axes[1]:
        ax.set_xticks(x[::step], [_hhmm(runs[i]["start_ms"]) for i in x[::step]])
        ax.set_xlabel("run interval start (UTC)")
    return _save(plt, fig, path, rect=(0, 0.06, 1, 1))


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
        ax.bar([10 ** (b / 5) for b in xs], [counts[b] for b in xs],
               width=[10 ** ((b + 1) / 5) - 10 ** (b / 5) for b in xs], align="edge",
               color="#64b5f6", edgecolor="#1565c0", linewidth=0.4)
        ax.set_xscale("log")
        q_now = runs[-1]["metrics"]["amount_quantiles"].get(cur) if runs else None
        if q_now:
            ax.axvline(q_now[median_at], color="#0d47a1", label="median")
        past = [r["metrics"]["amount_quantiles"][cur][median_at] for r in base_runs
                if cur in r["metrics"]["amount_quantiles"]]
        if past:
            ax.axvline(sum(past) / len(past), color="#c62828", linestyle="--",
                       label="baseline median")
        ax.set_title(f"{cur} ({sum(counts.values()):,} txns)", fontsize=9)
        ax.set_xlabel("amount (cents, log scale)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(top):]:
        ax.set_visible(False)
    if top:
        axes.flat[0].legend(fontsize=7)
    return _save(plt, fig, path)


# --- page ----------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:
1000px;padding:1.5em;color:#212121;line-height:1.45}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid
#ddd;padding-bottom:.2em}.sub{color:#616161;margin-top:0}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:.8em;
margin:1em 0}.tile{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;
overflow-wrap:anywhere}
.tile b{display:block;font-size:1.6em}
.ok{border-left:6px solid #2e7d32}.bad{border-left:6px solid #c62828}.warn{border-left:6px solid
#ef6c00}table{border-collapse:collapse;font-size:.88em;margin:.5em 0}td,th{border:1px solid #ddd;
padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f5f5f5}td.n{text-align:right;
font-variant-numeric:tabular-nums}img{max-width:100%;height:auto}code{font-size:.9em}
.cls{font-weight:600}.note{color:#616161;font-size:.9em}
"""


def _e(value) -> str:
    return html.escape(str(value))


def _table(headers: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f'<td class="n">{_e(v)}</td>' if i in numeric else f"<td>{v}</td>"
        for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cls(name: str) -> str:
    return f'<span class="cls" style="color:{COLORS.get(name, "#212121")}">{_e(name)}</span>'


def _rel(target: Path, start: Path) -> str:
    return _e(Path(os.path.relpath(target, start)).as_posix())


def _fmt_rate(v: float) -> str:
    return f"{100 * v:.3f} %"


def _aggregate_cell(d: dict | None) -> str:
    """One side's aggregate (a dict of AGGREGATE_FIELDS) in a table cell."""
    if d is None:
        return '<span class="note">(none)</span>'
    return _e(", ".join(f"{k}={d[k]}" for k in ("txn_count", "net_cents", "max_amount_cents")
                        if k in d))


def page(s: dict, data: dict, charts: dict, links: dict, generated: str) -> str:
    start_ms, end_ms = s["interval"]["start_ms"], s["interval"]["end_ms"]
    acct = s["accounting"]
    failed = quality.failing(s)
    flags = s["drift_flags"]
    matched = "n/a" if s["matched_pct"] is None else f"{s['matched_pct']:.2f} %"
    tiles = [
        ("ok" if s["unexplained"] == 0 else "bad", "Unexplained", f"{s['unexplained']:,}",
         "keys, alerts and DLQ classes the stream got wrong"),
        ("ok", "Matched", matched, "aggregate keys equal in stream and batch"),
        ("ok" if acct["holds"] else "bad", "Accounting",
         "holds" if acct["holds"] else "BROKEN",
         f"{acct['raw_records']:,} raw = {acct['accepted']:,} accepted + "
         f"{acct['duplicates']:,} duplicates + {acct['dlq']:,} DLQ"),
        ("warn" if failed else "ok", "Data quality",
         "all suites pass" if not failed else f"{len(failed)} failing",
         ", ".join(failed) or "Great Expectations"),
        ("warn" if flags else "ok", "Drift",
         "no baseline" if not s["drift"] else (f"{len(flags)} flagged" if flags else "none"),
         ", ".join(flags) or "against the trailing baseline"),
    ]
    tile_html = "".join(f'<div class="tile {c}">{_e(t)}<b>{_e(v)}</b>'
                        f'<span class="note">{_e(n)}</span></div>' for c, t, v, n in tiles)
    class_rows = [[_cls(c), s["aggregates"].get(c, 0), s["alerts"].get(c, 0),
                   _e(CLASS_MEANING[c])] for c in reconcile.CLASSES]
    dlq_rows = [[_e(k), v["stream"], v["batch"], _cls(v["class"])]
                for k, v in s["dlq"].items()]
    quality_rows = [[_e(k), "pass" if v["success"] else "<b>FAIL</b>",
                     f'{v.get("evaluated", "")}', _e(", ".join(v.get("failed", [])) or "")]
                    for k, v in sorted(s["quality"].items())]
    drift_rows = [[_e(k), f"{v['value']:.6g}", f"{v['threshold']:.6g}",
                   "<b>DRIFT</b>" if v["drifted"] else "ok"]
                  for k, v in sorted(s["drift"].items(), key=lambda kv: (not kv[1]["drifted"],
                                                                         kv[0]))]
    agg_sample = [[_cls(r["reconciliation_class"]), _e(r["account_id"]), _e(r["currency"]),
                   _e(iso(r["window_start_ms"])), _aggregate_cell(r["stream"]),
                   _aggregate_cell(r["batch"]), "yes" if r["order_dependent"] else ""]
                  for r in data["sample_aggregates"]]
    alert_sample = [[_cls(r["reconciliation_class"]), _e(r["alert_id"]), _e(r["rule"]),
                     _e(r["account_id"]), _e(iso(r["event_time_ms"])),
                     "yes" if r["in_stream"] else "", "yes" if r["in_batch"] else ""]
                    for r in data["sample_alerts"]]
    rates = s["rates"]
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Reconciliation "
        f"{_e(iso(start_ms))} to {_e(iso(end_ms))}</title><style>{CSS}</style></head><body>",
        f'<p class=note><a href="{links["index"]}">All runs</a></p>',
        f"<h1>Reconciliation {_e(iso(start_ms))} → {_e(iso(end_ms))}</h1>",
        f'<p class=sub>Windows starting in [start, end). Generated {_e(generated)}. '
        f'Results: <a href="{links["results"]}">{_e(links["results_name"])}</a> '
        f'(<a href="{links["summary"]}">summary.json</a>)</p>',
        f'<div class="tiles">{tile_html}</div>',
        f'<p>Rates: DLQ {_fmt_rate(rates["dlq_rate"])} of raw records, duplicates '
        f'{_fmt_rate(rates["duplicate_rate"])}, late {_fmt_rate(rates["late_rate"])} of accepted '
        f'transactions.</p>',
        "<h2>Stream vs batch per window</h2>",
        f'<img src="{charts["windows"]}" alt="transactions per window, stream and batch">',
        '<p class=note>Gaps between the bars are transactions the stream routed to '
        'payments.late-transactions (EXPLAINED_LATE) or, when red below, unexplained.</p>',
        "<h2>Reconciliation classes</h2>",
        f'<img src="{charts["classes"]}" alt="reconciliation classes">',
        _table(["class", "aggregate keys", "alerts", "meaning"], class_rows, {1, 2}),
        "<h3>DLQ per error class</h3>",
        _table(["error class", "stream", "batch", "class"], dlq_rows, {1, 2}),
        "<h2>Mismatching keys (sample)</h2>",
        f"<p class=note>Up to {SAMPLE_ROWS} of each, unexplained first. Full lists: "
        f'<code>aggregates.parquet</code> and <code>alerts.parquet</code> in the '
        f'<a href="{links["results"]}">results</a>.</p>',
        "<h3>Aggregates</h3>",
        _table(["class", "account", "currency", "window start", "stream", "batch",
                "order-dependent"], agg_sample) if agg_sample else "<p>None: every key "
        "matches.</p>",
        "<h3>Alerts</h3>",
        _table(["class", "alert_id", "rule", "account", "event time", "in stream",
                "in batch"], alert_sample) if alert_sample else "<p>None: every alert "
        "matches.</p>",
        "<h2>Data quality</h2>",
        f'<p>Great Expectations suites on this run. Details per expectation: '
        f'<a href="{links["data_docs"]}">Data Docs</a>.</p>',
        _table(["suite", "result", "expectations", "failed"], quality_rows),
        "<h2>Drift against the baseline</h2>",
        "<p class=note>Thresholds and the reason for each statistic: README, section "
        "“Drift”.</p>",
        _table(["check", "value", "threshold", "flag"], drift_rows, {1, 2}) if drift_rows
        else "<p>No baseline yet: no earlier interval has been reconciled.</p>",
        f'<img src="{charts["history"]}" alt="metric history with baseline band">',
        "<h2>Amount distributions</h2>",
        f"<p class=note>The {MAX_CURRENCY_PANELS} currencies with the most accepted "
        "transactions. The drift checks cover every currency with enough transactions "
        "(<code>drift.amount_min_count</code>).</p>",
        f'<img src="{charts["amounts"]}" alt="amount histograms per currency">',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write(spark, cfg, results: dict) -> Path:
    """Write the run's report (replacing an earlier report of the same interval) and the
    runs' index; returns the report's index.html."""
    s = results["summary"]
    start_ms, end_ms = s["interval"]["start_ms"], s["interval"]["end_ms"]
    data = collect(spark, cfg, results)
    reports = cfg.paths.reports_dir
    name = run_name(start_ms, end_ms)
    final = reports / name
    tmp = reports / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    plt = _pyplot()
    charts = {
        "windows": chart_windows(plt, all_windows(data["windows"], start_ms, end_ms,
                                                  cfg.event_time.window_ms),
                                 tmp / "windows.svg"),
        "classes": chart_classes(plt, s, tmp / "classes.svg"),
        "history": chart_history(plt, data["history"], cfg.drift, tmp / "history.svg"),
        "amounts": chart_amounts(plt, data["amount_bins"], data["history"], cfg.drift,
                                 tmp / "amounts.svg"),
    }
    out_dir = results["out_dir"]
    links = {"index": "../index.html", "results": _rel(out_dir, final),
             "results_name": out_dir.name, "summary": _rel(out_dir / "summary.json", final),
             "data_docs": _rel(Path(s["data_docs"]), final)}
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    (tmp / "index.html").write_text(page(s, data, charts, links, generated))
    doc = {"run": name, "generated": generated,
           "interval": {**s["interval"], "start": iso(start_ms), "end": iso(end_ms)},
           "headline": {"matched_pct": s["matched_pct"], "unexplained": s["unexplained"],
                        "accounting_holds": s["accounting"]["holds"],
                        "quality_failing": quality.failing(s),
                        "drift_flags": s["drift_flags"]},
           "windows": data["windows"], "sample_aggregates": data["sample_aggregates"],
           "sample_alerts": data["sample_alerts"],
           "links": {"results": str(out_dir), "data_docs": s["data_docs"]},
           "reconciliation": s}
    (tmp / "summary.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    write_index(reports)
    return final / "index.html"


def write_index(reports: Path) -> Path:
    """``<reports_dir>/index.html``: every run's headline, newest interval first."""
    rows = []
    for f in sorted(reports.glob("*/summary.json"), reverse=True):
        d = json.loads(f.read_text())
        h = d["headline"]
        matched = "n/a" if h["matched_pct"] is None else f"{h['matched_pct']:.2f} %"
        rows.append([f'<a href="{_e(f.parent.name)}/index.html">{_e(d["interval"]["start"])} '
                     f'→ {_e(d["interval"]["end"])}</a>',
                     f'<b style="color:#c62828">{h["unexplained"]}</b>' if h["unexplained"]
                     else "0", matched, "holds" if h["accounting_holds"] else "<b>BROKEN</b>",
                     _e(", ".join(h["quality_failing"]) or "pass"),
                     _e(", ".join(h["drift_flags"]) or "none"), _e(d["generated"])])
    body = _table(["interval", "unexplained", "matched", "accounting", "data quality",
                   "drift", "generated"], rows) if rows else "<p>No runs yet.</p>"
    index = reports / "index.html"
    index.write_text(f"<!doctype html><html lang=en><head><meta charset=utf-8><title>"
                     f"Reconciliation runs</title><style>{CSS}</style></head><body>"
                     f"<h1>Reconciliation runs</h1>{body}</body></html>\n")
    return index
