"""The analyst report of a reconciliation run: ``<reports_dir>/<run>/index.html`` (static: opens
from the file system offline, no server) with SVG charts next to it (jobs/batch/report_charts.py),
and ``summary.json`` (the same content for machines). ``<reports_dir>/index.html`` lists every
run, newest interval first.

A run's folder is named by its interval in UTC, ``2026-12-01T10-00-00Z_2026-12-01T10-05-00Z``
(jobs/batch/formats.py); a re-run of the interval replaces its report. The report reads the
run's result files in the lake (jobs/batch/report_data.py), the drift history and the
recomputed accepted transactions, and links the run's results (Parquet, the mismatches' CSV)
and its own Great Expectations validation pages; it decides nothing (the exit code is the
reconciliation's).
"""

from __future__ import annotations

import html
import json
import os
import shutil
import time
from pathlib import Path

from jobs.batch import formats, quality, report_data
from jobs.batch.report_charts import (
    COLORS,
    MAX_CURRENCY_PANELS,
    chart_amounts,
    chart_classes,
    chart_history,
    chart_windows,
    pyplot,
)
from runtime import times
from udfs import reconcile

LATE_IDS_SHOWN = 5
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
#ef6c00}.none{border-left:6px solid #9e9e9e;background:#fafafa}.none b{color:#616161}
table{border-collapse:collapse;font-size:.88em;margin:.5em 0}td,th{border:1px solid #ddd;
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


def drift_state(summary: dict) -> tuple[str, str, str]:
    """The drift tile: (style, value, note). With no baseline there is nothing to compare:
    neutral, not a pass."""
    flags = summary["drift_flags"]
    if not summary["drift"]:
        return "none", "no baseline", "no earlier interval reconciled yet: nothing compared"
    if flags:
        return "warn", f"{len(flags)} flagged", ", ".join(flags)
    return "ok", "none", "against the trailing baseline"


def aggregate_cell(d: dict | None, currency: str) -> str:
    """One side's aggregate in a table cell: ``3 txns, net EUR 10.60, max EUR 9.00``."""
    if d is None:
        return '<span class="note">(none)</span>'
    return _e(f"{d['txn_count']:,} txns, net {formats.money(d['net_cents'], currency)}, "
              f"max {formats.money(d['max_amount_cents'], currency)}")


def late_ids_cell(ids: list[str] | None) -> str:
    """The late transactions that explain a key: ``t6, t9`` (+ how many more)."""
    ids = ids or []
    more = len(ids) - LATE_IDS_SHOWN
    return _e(", ".join(ids[:LATE_IDS_SHOWN]) + (f" (+{more} more)" if more > 0 else ""))


def page(s: dict, data: dict, charts: dict, links: dict, generated: str) -> str:
    start_ms, end_ms = s["interval"]["start_ms"], s["interval"]["end_ms"]
    interval = formats.interval_text(start_ms, end_ms)
    acct = s["accounting"]
    failed = quality.failing(s)
    matched = "n/a" if s["matched_pct"] is None else f"{s['matched_pct']:.2f} %"
    drift_style, drift_value, drift_note = drift_state(s)
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
        (drift_style, "Drift", drift_value, drift_note),
    ]
    tile_html = "".join(f'<div class="tile {c}" id="tile-{_e(t.lower().replace(" ", "-"))}">'
                        f'{_e(t)}<b>{_e(v)}</b><span class="note">{_e(n)}</span></div>'
                        for c, t, v, n in tiles)
    class_rows = [[_cls(c), s["aggregates"].get(c, 0), s["alerts"].get(c, 0),
                   _e(CLASS_MEANING[c])] for c in reconcile.CLASSES]
    dlq_rows = [[_e(k), v["stream"], v["batch"], _cls(v["class"])]
                for k, v in s["dlq"].items()]
    pages = links["pages"]
    quality_rows = [[f'<a href="{pages[k]}">{_e(k)}</a>' if k in pages else _e(k),
                     "pass" if v["success"] else "<b>FAIL</b>",
                     f'{v.get("evaluated", "")}', _e(", ".join(v.get("failed", [])) or "")]
                    for k, v in sorted(s["quality"].items())]
    drift_rows = [[_e(k), f"{v['value']:.6g}", f"{v['threshold']:.6g}",
                   "<b>DRIFT</b>" if v["drifted"] else "ok"]
                  for k, v in sorted(s["drift"].items(), key=lambda kv: (not kv[1]["drifted"],
                                                                         kv[0]))]
    agg_sample = [[_cls(r["reconciliation_class"]), _e(r["account_id"]), _e(r["currency"]),
                   _e(times.iso(r["window_start_ms"])),
                   aggregate_cell(r["stream"], r["currency"]),
                   aggregate_cell(r["batch"], r["currency"]), late_ids_cell(r["late_txn_ids"]),
                   "yes" if r["order_dependent"] else ""]
                  for r in data["sample_aggregates"]]
    alert_sample = [[_cls(r["reconciliation_class"]), _e(r["alert_id"]), _e(r["rule"]),
                     _e(r["account_id"]), _e(times.iso(r["event_time_ms"])),
                     "yes" if r["in_stream"] else "", "yes" if r["in_batch"] else ""]
                    for r in data["sample_alerts"]]
    rates = s["rates"]
    run_pages = " · ".join(f'<a href="{p}">{_e(k)}</a>' for k, p in sorted(pages.items()))
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>Reconciliation "
        f"{_e(interval)}</title><style>{CSS}</style></head><body>",
        f'<p class=note><a href="{links["index"]}">All runs</a></p>',
        f'<h1 id="interval">Reconciliation {_e(interval)}</h1>',
        f'<p class=sub>Windows starting in [start, end), UTC. Generated {_e(generated)}. '
        f'Results: <a href="{links["results"]}">the run\'s folder</a> (Parquet, '
        f'<a href="{links["summary"]}">summary.json</a>, '
        f'<a href="{links["csv"]}">mismatches.csv</a>)</p>',
        f'<div class="tiles">{tile_html}</div>',
        f'<p>Rates: DLQ {_fmt_rate(rates["dlq_rate"])} of raw records, duplicates '
        f'{_fmt_rate(rates["duplicate_rate"])}, late {_fmt_rate(rates["late_rate"])} of accepted '
        f'transactions.</p>',
        "<h2>Stream vs batch per window</h2>",
        f'<img src="{charts["windows"]}" alt="transactions per window, stream and batch">',
        '<p class=note>The windows from the first to the last with traffic. Gaps between the '
        'bars are transactions the stream routed to payments.late-transactions '
        '(EXPLAINED_LATE) or, when red below, unexplained.</p>',
        "<h2>Reconciliation classes</h2>",
        f'<img src="{charts["classes"]}" alt="reconciliation classes">',
        _table(["class", "aggregate keys", "alerts", "meaning"], class_rows, {1, 2}),
        "<h3>DLQ per error class</h3>",
        _table(["error class", "stream", "batch", "class"], dlq_rows, {1, 2}),
        "<h2>Mismatching keys (sample)</h2>",
        f"<p class=note>Up to {report_data.SAMPLE_ROWS} of each, unexplained first. Full "
        f'lists: <a href="{links["csv"]}">mismatches.csv</a>, and '
        f'<code>aggregates.parquet</code> and <code>alerts.parquet</code> in the '
        f'<a href="{links["results"]}">results</a>. Amounts in the currency, with its '
        'minor unit.</p>',
        "<h3>Aggregates</h3>",
        _table(["class", "account", "currency", "window start", "stream", "batch",
                "late txn_ids", "order-dependent"], agg_sample) if agg_sample
        else "<p>None: every key matches.</p>",
        "<h3>Alerts</h3>",
        _table(["class", "alert_id", "rule", "account", "event time", "in stream",
                "in batch"], alert_sample) if alert_sample else "<p>None: every alert "
        "matches.</p>",
        "<h2>Data quality</h2>",
        f'<p>Great Expectations suites on this run. Its validation pages: {run_pages or "-"}; '
        f'every run kept: <a href="{links["data_docs"]}">Data Docs</a>.</p>',
        _table(["suite", "result", "expectations", "failed"], quality_rows),
        "<h2>Drift against the baseline</h2>",
        "<p class=note>Thresholds and the reason for each statistic: README, section "
        "“Drift”.</p>",
        _table(["check", "value", "threshold", "flag"], drift_rows, {1, 2}) if drift_rows
        else '<p class="tile none">No baseline yet: no earlier interval has been reconciled, '
             'so nothing was compared.</p>',
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
    data = report_data.collect(spark, cfg, results)
    reports = cfg.paths.reports_dir
    name = times.interval_for_path(start_ms, end_ms)
    final = reports / name
    tmp = reports / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    plt = pyplot()
    w = cfg.event_time.window_ms
    charts = {
        "windows": chart_windows(plt, report_data.windows_with_traffic(
            data["windows"], start_ms, end_ms, w), w, tmp / "windows.svg"),
        "classes": chart_classes(plt, s, tmp / "classes.svg"),
        "history": chart_history(plt, data["history"], cfg.drift, tmp / "history.svg"),
        "amounts": chart_amounts(plt, data["amount_bins"], data["history"], cfg.drift,
                                 tmp / "amounts.svg"),
    }
    out_dir = results["out_dir"]
    pages = results.get("data_docs_pages", {})
    links = {"index": "../index.html", "results": _rel(out_dir, final),
             "summary": _rel(out_dir / "summary.json", final),
             "csv": _rel(out_dir / "mismatches.csv", final),
             "data_docs": _rel(Path(s["data_docs"]), final),
             "pages": {k: _rel(p, final) for k, p in pages.items()}}
    generated = times.iso(int(time.time() * 1000))
    (tmp / "index.html").write_text(page(s, data, charts, links, generated))
    doc = {"run": name, "generated": generated,
           "interval": {**s["interval"], "start": times.iso(start_ms),
                        "end": times.iso(end_ms)},
           "headline": {"matched_pct": s["matched_pct"], "unexplained": s["unexplained"],
                        "accounting_holds": s["accounting"]["holds"],
                        "quality_failing": quality.failing(s),
                        "drift_baseline": bool(s["drift"]),
                        "drift_flags": s["drift_flags"]},
           "windows": data["windows"], "sample_aggregates": data["sample_aggregates"],
           "sample_alerts": data["sample_alerts"],
           "links": {"results": str(out_dir), "mismatches_csv": str(out_dir / "mismatches.csv"),
                     "data_docs": s["data_docs"],
                     "validation_pages": {k: str(p) for k, p in pages.items()}},
           "reconciliation": s}
    (tmp / "summary.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    write_index(reports)
    return final / "index.html"


def write_index(reports: Path) -> Path:
    """``<reports_dir>/index.html``: every run's headline, newest interval first."""
    docs = [(f.parent.name, json.loads(f.read_text())) for f in reports.glob("*/summary.json")]
    docs.sort(key=lambda nd: (nd[1]["interval"]["start_ms"], nd[1]["interval"]["end_ms"]),
              reverse=True)
    rows = []
    for folder, d in docs:
        h = d["headline"]
        matched = "n/a" if h["matched_pct"] is None else f"{h['matched_pct']:.2f} %"
        drift = ("no baseline" if not h.get("drift_baseline", True)
                 else ", ".join(h["drift_flags"]) or "none")
        rows.append([f'<a href="{_e(folder)}/index.html">{_e(d["interval"]["start"])} '
                     f'→ {_e(d["interval"]["end"])}</a>',
                     f'<b style="color:#c62828">{h["unexplained"]}</b>' if h["unexplained"]
                     else "0", matched, "holds" if h["accounting_holds"] else "<b>BROKEN</b>",
                     _e(", ".join(h["quality_failing"]) or "pass"), _e(drift),
                     _e(d["generated"])])
    body = _table(["interval (UTC)", "unexplained", "matched", "accounting", "data quality",
                   "drift", "generated"], rows) if rows else "<p>No runs yet.</p>"
    index = reports / "index.html"
    index.write_text(f"<!doctype html><html lang=en><head><meta charset=utf-8><title>"
                     f"Reconciliation runs</title><style>{CSS}</style></head><body>"
                     f"<h1>Reconciliation runs</h1>{body}</body></html>\n")
    return index
