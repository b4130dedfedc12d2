"""The reconciliation job (jobs/batch/reconcile.py) on a session-scoped local SparkSession, over a
hand-built raw lake: the raw transactions and profiles plus what a stream "committed", written
with the archiver's own file writer. The stream side is built here from the data set, with its
late transaction and an order-dependent pair, then tampered with."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyspark
import pytest

from jobs.batch import quality
from jobs.batch import reconcile as job
from runtime import config
from runtime.times import interval_for_path
from tests.support import records
from tests.support.records import enc
from udfs import contract, fraud, reconcile, semantics

pytestmark = pytest.mark.spark

T0 = 1767225600000  # 2026-01-01T00:00:00Z
W = 60_000
RUN_FOLDER = "2026-01-01T00-00-00Z_2026-01-01T00-05-00Z"  # a report's: [T0, T0 + 5 W)
TOPICS = config.load().topics


def txn(txn_id, account, amount, t, kind="purchase", currency="EUR", country="DE"):
    return {"txn_id": txn_id, "account_id": account, "merchant_id": "m-1",
            "amount_cents": amount, "currency": currency, "kind": kind,
            "event_time_ms": T0 + t, "channel": "web", "country": country}


ON_TIME = [txn("t1", "a1", 100, 1000), txn("t2", "a1", 40, 2000, "refund"),
           txn("t3", "a2", 2_000_000, 3000), txn("t4", "a2", 500, 61000),
           txn("t5", "a3", 700, 62000, country="FR")]
LATE = txn("t6", "a1", 900, 5000)  # window 0, arrived after the stream had closed it
DUP_OF_T1 = txn("t1", "a1", 100, 1000)
CONFLICT = txn("t2", "a1", 41, 2000, "refund")
# the same txn_id on two partitions with different values: which copy is "first" depends on
# how the stream interleaved the partitions
SPLIT_P0 = txn("t7", "a4", 300, 4000)
SPLIT_P1 = txn("t7", "a4", 301, 4000)
BAD = b'{"txn_id": "t8"'


def raw_transactions():
    """(partition, value) in offset order per partition."""
    return [(0, enc(t)) for t in ON_TIME[:3]] + [
        (0, enc(DUP_OF_T1)), (0, enc(CONFLICT)), (0, BAD), (0, enc(SPLIT_P0)),
        (1, enc(ON_TIME[3])), (1, enc(ON_TIME[4])), (1, enc(SPLIT_P1)), (1, enc(LATE))]


PROFILES = [(0, b"a3", enc({"account_id": "a3", "home_country": "DE", "risk_tier": "high",
                            "valid_from_ms": T0 - 1}))]


def write_topic(root: Path, topic: str, rows: list[tuple[int, bytes | None, bytes]],
                ts: int = T0 + 30_000) -> dict[int, list[int]]:
    return records.write_topic(root, topic, rows, ts)


def stream_outputs():
    """What the stream committed: aggregates of its accepted on-time transactions (it took
    SPLIT_P1 as the first copy of t7), the late record, the DLQ, the alerts."""
    accepted = ON_TIME + [SPLIT_P1]
    aggs = semantics.aggregate(accepted, W)
    late = semantics.late_record(LATE, T0 + W + 10_000, W)
    dlq = [(0, 4, "CONFLICTING_DUPLICATE"), (0, 5, "MALFORMED"), (0, 6,
                                                                 "CONFLICTING_DUPLICATE")]
    profiles = {"a3": {T0 - 1: fraud.Profile(T0 - 1, "DE", "high")}}
    alerts = fraud.alerts_of(accepted, profiles)
    return aggs, late, dlq, alerts


def build_lake(root: Path, *, drop_key=None, alter_key=None, drop_alert=False) -> None:
    write_topic(root, TOPICS.transactions, [(p, b"k", v) for p, v in raw_transactions()])
    write_topic(root, TOPICS.accounts, PROFILES)
    aggs, late, dlq, alerts = stream_outputs()
    agg_rows = []
    for key, agg in sorted(aggs.items()):
        if key == drop_key:
            continue
        value = agg.as_dict()
        if key == alter_key:
            value["net_cents"] += 1
        agg_rows.append((0, key.encode(), enc(value)))
    write_topic(root, TOPICS.aggregates, agg_rows, ts=T0 + 200_000)
    write_topic(root, TOPICS.late, [(0, b"a1", late.encode())], ts=T0 + 200_000)
    write_topic(root, TOPICS.dlq, [(0, None, enc({
        "error_class": cls, "error": "x", "raw": "", "raw_encoding": "utf8",
        "source_topic": TOPICS.transactions, "source_partition": p, "source_offset": o,
        "source_timestamp_ms": T0})) for p, o, cls in dlq], ts=T0 + 200_000)
    kept = alerts[1:] if drop_alert else alerts
    write_topic(root, TOPICS.alerts, [(0, a.account_id.encode(), a.record(T0).encode())
                                      for a in kept], ts=T0 + 200_000)


def cfg_for(tmp_path: Path):
    return config.load(None, [f"paths.data_dir={tmp_path}",
                              f"paths.reports_dir={tmp_path / 'reports'}"])


def classes(out_dir: Path, table: str) -> dict:
    rows = pq.read_table(out_dir / f"{table}.parquet").to_pylist()
    if table == "aggregates":
        return {(r["account_id"], r["window_start_ms"]): r["reconciliation_class"]
                for r in rows}
    return {r["alert_id"]: r["reconciliation_class"] for r in rows}


def test_a_session_this_process_starts_runs_the_parallel_collector(spark):
    """spark_session (the tests' session too) starts the driver's JVM with
    BATCH_JAVA_OPTIONS: the parallel collector's two collectors, not G1's."""
    factory = spark.sparkContext._jvm.java.lang.management.ManagementFactory
    names = {bean.getName() for bean in factory.getGarbageCollectorMXBeans()}
    assert job.BATCH_JAVA_OPTIONS == "-XX:+UseParallelGC"
    assert names == {"PS Scavenge", "PS MarkSweep"}, names


def test_the_jvm_fast_path_and_the_sql_dedup_decide_as_the_shared_functions(spark):
    """job.validated (the canonical shape over Arrow batches, the rest through
    contract.validate) and job.dedup (dedup_decision_sql, invalid rows keeping their class)
    against the Python functions, record for record, over canonical, non-canonical and invalid
    encodings and repeated txn_ids."""
    base = txn("f1", "a1", 100, 1000)
    values = [
        enc(base), json.dumps(base).encode(),                      # canonical / spaced
        enc({**base, "txn_id": "f2", "currency": "XXX"}),          # canonical shape, bad value
        enc({**base, "txn_id": "f3", "amount_cents": 0}),
        enc({**base, "txn_id": "f4", "amount_cents": 10**12 + 1}),
        enc({**base, "txn_id": "f5", "event_time_ms": 4102444800000}),
        enc({**base, "txn_id": "f6", "amount_cents": -3}),
        enc(base) + b"\n", enc(base).replace(b'"f1"', b'"f\\u0031"'),  # JSON, not canonical
        enc({**base, "amount_cents": 101}),                        # conflicting copy
        enc({**base, "event_time_ms": base["event_time_ms"] + 86_400_000}),  # a horizon away
        enc({**base, "txn_id": "f7", "channel": "fax"}), b"\xff" + enc(base), None,
        enc({**base, "txn_id": "t" * 65}), enc({**base, "txn_id": "f8", "country": "D\u00c9"}),
        enc({**base, "txn_id": "f9"}),
    ]
    rows = [(i % 2, i, T0, v) for i, v in enumerate(values)]
    raw = spark.createDataFrame(rows, "partition INT, offset LONG, timestamp_ms LONG, "
                                      "value BINARY")
    rules = contract.Rules()
    got = {r["offset"]: r.asDict() for r in job.validated(raw, rules).collect()}
    assert sorted(got) == list(range(len(values)))
    for _, offset, _, value in rows:
        want = contract.validate(value, rules)
        row = got[offset]
        if want.ok:
            assert row["error_class"] is None and {
                n: row[n] for n in contract.FIELD_NAMES} == want.txn, value
        else:
            assert (row["error_class"], row["error"]) == (want.error_class, want.error), value
    # the fast path took the canonical records: every value the pattern holds is one
    assert contract.canonical_arrow(pa.array(values, pa.binary())).num_rows == 4

    decided = {r["offset"]: (r["outcome"], r["cross_partition"])
               for r in job.dedup(job.validated(raw, rules), 86_400_000).collect()}
    want, first = {}, {}
    for _partition, offset, _, value in sorted(rows, key=lambda r: (r[0], r[1])):
        v = contract.validate(value, rules)
        if not v.ok:  # an invalid record keeps its error class and takes no part
            want[offset] = v.error_class
            assert decided[offset][1] is False, value
        else:
            prior = first.get(v.txn["txn_id"])
            want[offset] = semantics.dedup_decision(prior, v.txn, 86_400_000)
            first.setdefault(v.txn["txn_id"], (semantics.fingerprint(v.txn),
                                               v.txn["event_time_ms"]))
    assert {o: d[0] for o, d in decided.items()} == want
    assert {semantics.ACCEPTED, semantics.DUPLICATE, "CONFLICTING_DUPLICATE"} < set(
        want.values())
    # f1 came on both partitions, so which copy is first depends on the stream's interleaving
    assert decided[0][1] is True and decided[len(values) - 1] == (semantics.ACCEPTED, False)


def test_every_difference_of_a_clean_stream_is_explained(spark, tmp_path):
    cfg = cfg_for(tmp_path)
    build_lake(cfg.paths.raw_dir)
    results = job.run(cfg, T0, T0 + 5 * W, spark)
    s = results["summary"]
    assert s["unexplained"] == 0
    got = classes(results["out_dir"], "aggregates")
    assert got == {("a1", T0): reconcile.EXPLAINED_LATE, ("a2", T0): reconcile.MATCH,
                   ("a2", T0 + W): reconcile.MATCH, ("a3", T0 + W): reconcile.MATCH,
                   ("a4", T0): reconcile.ORDER_DEPENDENT}
    assert s["accounting"] == {"raw_records": 11, "accepted": 7, "duplicates": 1, "dlq": 3,
                               "holds": True}
    # aggregates.parquet: each side's aggregate as a typed struct, the stream's late
    # transactions of the key and window as a list of them
    table = pq.read_table(results["out_dir"] / "aggregates.parquet")
    for column in ("stream", "batch"):
        side = table.schema.field(column).type
        assert pa.types.is_struct(side), column
        assert [(f.name, str(f.type)) for f in side] == [
            (f, "string" if f in ("account_id", "currency") else "int64")
            for f in semantics.AGGREGATE_FIELDS], column
    a1_key = semantics.aggregate_key("a1", "EUR", T0)
    (a1,) = [r for r in table.to_pylist() if r["account_id"] == "a1"]
    assert a1["stream"] == stream_outputs()[0][a1_key].as_dict()
    assert a1["batch"] == semantics.aggregate(ON_TIME[:2] + [LATE], W)[a1_key].as_dict()
    assert a1["late"] == [LATE]
    assert s["dlq"]["MALFORMED"] == {"stream": 1, "batch": 1, "class": reconcile.MATCH}
    assert s["dlq"]["CONFLICTING_DUPLICATE"] == {"stream": 2, "batch": 2,
                                                 "class": reconcile.MATCH}
    # Great Expectations: the recomputed data passes; this tiny lake's rates do not
    q = s["quality"]
    suites = quality.suite_expectations(cfg)
    for name in ("accepted_transactions", "aggregates"):
        assert q[name] == {"success": True, "evaluated": len(suites[name]), "failed": []}
    assert q["run_rates"]["failed"] == ["expect_column_values_to_be_between"] * 3
    assert Path(s["data_docs"]).is_file()
    # drift: the first run has no baseline; its metrics start the history
    assert s["drift"] == {} and s["drift_flags"] == []
    assert s["metrics"]["currency_mix"] == {"EUR": 7}
    assert (cfg.paths.data_dir / "quality" / "history" /
            f"interval={interval_for_path(T0, T0 + 5 * W)}.json").is_file()
    assert "run_rates" in Path(s["data_docs"]).read_text()
    alert_classes = classes(results["out_dir"], "alerts")
    rules = {a.alert_id: a.rule for a in stream_outputs()[3]}
    assert set(rules.values()) == {"LARGE_AMOUNT", "FOREIGN_HIGH_RISK"}
    assert {alert_classes[i] for i in rules} == {reconcile.MATCH}


def test_tampered_stream_output_is_reported_exactly_and_fails_the_run(spark, tmp_path,
                                                                    monkeypatch):
    cfg = cfg_for(tmp_path)
    a2_w0 = semantics.aggregate_key("a2", "EUR", T0)
    a3_w1 = semantics.aggregate_key("a3", "EUR", T0 + W)
    build_lake(cfg.paths.raw_dir, drop_key=a2_w0, alter_key=a3_w1, drop_alert=True)
    results = job.run(cfg, T0, T0 + 5 * W, spark)
    got = classes(results["out_dir"], "aggregates")
    assert got[("a2", T0)] == reconcile.MISSING_IN_STREAM
    assert got[("a3", T0 + W)] == reconcile.VALUE_MISMATCH
    dropped = stream_outputs()[3][0].alert_id
    alert_classes = classes(results["out_dir"], "alerts")
    assert alert_classes[dropped] == reconcile.MISSING_IN_STREAM
    assert [c for c in alert_classes.values() if c != reconcile.MATCH] == [
        reconcile.MISSING_IN_STREAM]
    assert results["summary"]["unexplained"] == 3
    # the command exits non-zero on it (same session: getOrCreate returns it; keep it open)
    monkeypatch.setattr(spark, "stop", lambda: None)
    code = job.main(["--start", str(T0), "--end", str(T0 + 5 * W),
                     "--set", f"paths.data_dir={tmp_path}",
                     "--set", f"paths.reports_dir={tmp_path / 'reports'}"])
    assert code == 1


def test_rerunning_an_interval_gives_the_same_files(spark, tmp_path):
    cfg = cfg_for(tmp_path)
    build_lake(cfg.paths.raw_dir)
    first = job.run(cfg, T0, T0 + 5 * W, spark)["out_dir"]
    before = {p.name: p.read_bytes() for p in sorted(first.iterdir())}
    again = job.run(cfg, T0, T0 + 5 * W, spark)
    second = again["out_dir"]
    assert again["summary"]["drift"] == {}  # a re-run is never its own baseline
    assert second == first
    assert {p.name: p.read_bytes() for p in sorted(second.iterdir())} == before
    assert set(before) == {"aggregates.parquet", "alerts.parquet", "dlq.parquet",
                           "mismatches.csv", "summary.json"}


@pytest.mark.parametrize("args, message", [
    (["--start", "yesterday", "--end", "1"], "--start: not an ISO 8601 time"),
    (["--start", str(T0 + 1), "--end", str(T0 + W)], "--start/--end: must be aligned"),
    (["--start", str(T0 + W), "--end", str(T0)], "--end: must be after --start"),
])
def test_a_bad_argument_gets_one_line_naming_it(args, message, capsys):
    assert job.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"reconcile: {message}") and "\n" not in err


def test_the_analyst_report_shows_the_run_and_opens_without_a_server(spark, tmp_path):
    cfg = cfg_for(tmp_path)
    a2_w0 = semantics.aggregate_key("a2", "EUR", T0)
    build_lake(cfg.paths.raw_dir, drop_key=a2_w0, drop_alert=True)
    results = job.run(cfg, T0, T0 + 5 * W, spark)
    page = results["report"]
    assert page == cfg.paths.reports_dir / RUN_FOLDER / "index.html"
    doc = json.loads((page.parent / "summary.json").read_text())
    assert doc["headline"]["unexplained"] == 2
    assert doc["reconciliation"] == json.loads((results["out_dir"] / "summary.json").read_text())
    # stream vs batch per window: a2's dropped aggregate and a1's late transaction are the gap
    assert [(w["window_start_ms"], w["stream_txn_count"], w["batch_txn_count"])
            for w in doc["windows"]] == [(T0, 3, 5), (T0 + W, 2, 2)]
    # the sample lists the unexplained keys first
    first = doc["sample_aggregates"][0]
    assert (first["account_id"], first["reconciliation_class"]) == ("a2",
                                                                    reconcile.MISSING_IN_STREAM)
    assert [a["reconciliation_class"] for a in doc["sample_alerts"]] == [
        reconcile.MISSING_IN_STREAM]
    text = page.read_text()
    assert "MISSING_IN_STREAM" in text and "EXPLAINED_LATE" in text
    # every link and image resolves from the file system; the charts are well-formed SVG
    targets = re.findall(r'(?:href|src)="([^"]+)"', text)
    assert {t for t in targets if t.endswith(".svg")} == {
        "windows.svg", "classes.svg", "history.svg", "amounts.svg"}
    for t in targets:
        assert (page.parent / t).exists(), t
        if t.endswith(".svg"):
            ET.parse(page.parent / t)
    assert any(t.endswith("local_site/index.html") for t in targets)  # Data Docs
    # and this run's own validation page of each suite, under the interval's run name
    run_pages = {t for t in targets if "/validations/" in t}
    assert len(run_pages) == 3
    assert all("/2026-01-01T00:00:00Z--2026-01-01T00:05:00Z/" in t for t in run_pages)
    # the sample names the late transaction that explains a1's key
    (a1,) = [r for r in doc["sample_aggregates"] if r["account_id"] == "a1"]
    assert (a1["reconciliation_class"], a1["late_txn_ids"]) == (reconcile.EXPLAINED_LATE,
                                                                 ["t6"])
    assert "<td>t6</td>" in text and "net EUR 9.60" in text  # a1: 100 - 40 + 900 cents
    # every mismatch as a CSV row next to the Parquet
    with (results["out_dir"] / "mismatches.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    dropped = stream_outputs()[3][0]
    assert sorted((r["kind"], r["reconciliation_class"], r["account_id"], r["window_start"],
                   r["alert_id"], r["late_txn_ids"]) for r in rows) == [
        ("aggregate", reconcile.EXPLAINED_LATE, "a1", "2026-01-01T00:00:00Z", "", "t6"),
        ("aggregate", reconcile.MISSING_IN_STREAM, "a2", "2026-01-01T00:00:00Z", "", ""),
        ("aggregate", reconcile.ORDER_DEPENDENT, "a4", "2026-01-01T00:00:00Z", "", ""),
        ("alert", reconcile.MISSING_IN_STREAM, dropped.account_id, "", dropped.alert_id, "")]
    index = (cfg.paths.reports_dir / "index.html").read_text()
    assert f'href="{page.parent.name}/index.html"' in index


def test_spark_submit_runs_the_job_from_the_py_files_zip_alone(tmp_path):
    """The cluster path: spark-submit with --py-files and an interpreter that has pyspark,
    pandas and pyarrow but not this project (the editable install's .pth is not read, -S);
    the entry script is a copy outside the checkout. The zip is what `payline package-batch`
    writes (run as a user runs it: this test imports nothing of the operator tool)."""
    zipped = tmp_path / "payline-batch.zip"
    subprocess.run([str(Path(sys.executable).parent / "payline"), "package-batch", "--out",
                    str(zipped)], check=True, capture_output=True, timeout=120)
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\n"
                      f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{sysconfig.get_paths()["purelib"]}"'
                      f' exec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    bare = subprocess.run([str(python), "-c", "import payline"], cwd=work, capture_output=True)
    assert bare.returncode != 0, "the interpreter must not see the checkout"
    entry = tmp_path / "entry" / "reconcile.py"
    entry.parent.mkdir()
    shutil.copy(job.__file__, entry)
    build_lake(work / "data" / "raw")  # the default data_dir, relative to the working directory
    home = Path(pyspark.__file__).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK", "SPARK"))}
    env |= {"SPARK_HOME": str(home), "PYSPARK_PYTHON": str(python),
            "PYSPARK_DRIVER_PYTHON": str(python)}
    done = subprocess.run(
        [str(home / "bin" / "spark-submit"), "--master", "local[2]", "--py-files", str(zipped),
         str(entry), "--start", str(T0), "--end", str(T0 + 5 * W)],
        cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "unexplained 0" in done.stdout
    out_dir = work / "data" / "reconciliation" / f"interval={interval_for_path(T0, T0 + 5 * W)}"
    assert classes(out_dir, "aggregates")[("a1", T0)] == reconcile.EXPLAINED_LATE
    assert (work / "reports" / RUN_FOLDER / "index.html").is_file()


@pytest.mark.parametrize("named", [True, False], ids=["named-by-the-stream", "not-named"])
def test_an_order_the_stream_could_not_keep_is_explained_when_the_stream_names_it(
        spark, tmp_path, named):
    """The fraud job met L after s2 because L reached it behind its watermark (a partition woke
    after idleness): it paired L with s2, the batch replay in event-time order pairs it with s1.
    With L named in the stream alert's details both sides are EXPLAINED_LATE; without, they are
    exactly the unexplained pair."""
    cfg = cfg_for(tmp_path)
    build_lake(cfg.paths.raw_dir)
    s1, big, s2 = (txn("s1", "a5", 50, 1000), txn("L", "a5", 60_000, 12_000),
                   txn("s2", "a5", 60, 14_000))
    write_topic(cfg.paths.raw_dir, TOPICS.transactions,
                [(2, b"k", enc(t)) for t in (s1, s2, big)])
    aggs = semantics.aggregate([s1, big, s2], W)
    write_topic(cfg.paths.raw_dir, TOPICS.aggregates,
                [(1, k.encode(), enc(a.as_dict())) for k, a in sorted(aggs.items())],
                ts=T0 + 200_000)
    state, streamed = fraud.RuleState(), []
    for t in (s1, s2, big):  # the stream's order
        streamed += fraud.step(state, t, fraud.applicable_profile(None, t["event_time_ms"]))
    (alert,) = streamed
    assert alert.txn_ids == ("s2", "L")
    (batch_alert,) = fraud.alerts_of([s1, big, s2])
    assert batch_alert.txn_ids == ("s1", "L")
    if named:
        alert = fraud.Alert(alert.rule, alert.account_id, alert.txn_ids, alert.event_time_ms,
                            {**alert.details, fraud.BEHIND_KEY: ["L"]})
    write_topic(cfg.paths.raw_dir, TOPICS.alerts, [(1, b"a5", alert.record(T0).encode())],
                ts=T0 + 200_000)
    results = job.run(cfg, T0, T0 + 5 * W, spark)
    got = classes(results["out_dir"], "alerts")
    if named:
        assert got[alert.alert_id] == got[batch_alert.alert_id] == reconcile.EXPLAINED_LATE
        assert results["summary"]["unexplained"] == 0
    else:
        assert got[alert.alert_id] == reconcile.EXTRA_IN_STREAM
        assert got[batch_alert.alert_id] == reconcile.MISSING_IN_STREAM
        assert results["summary"]["unexplained"] == 2


def test_consecutive_intervals_carry_the_rule_state_and_follow_a_velocity_chain(
        spark, tmp_path):
    """A busy account fires VELOCITY once a minute, a chain across the boundary of two runs:
    the second continues from the rule state the first one left. One transaction reached the
    fraud job behind its watermark, so the stream's first firing differs from the batch's, and
    then every later one: the silences end elsewhere. Alerts within reach of the behind
    transaction are explained by it; the ones after are followed through the silence, across
    the boundary (the second run reads the first one's classes)."""
    cfg = cfg_for(tmp_path)
    hot = [txn(f"h{i:03d}", "a9", 100, i * 4000) for i in range(180)]  # 15 a minute, 12 min
    behind = hot[2]
    arrivals = hot[:2] + hot[3:11] + [behind] + hot[11:]
    write_topic(cfg.paths.raw_dir, TOPICS.transactions, [(0, b"a9", enc(t)) for t in arrivals])
    write_topic(cfg.paths.raw_dir, TOPICS.aggregates,
                [(0, k.encode(), enc(a.as_dict()))
                 for k, a in sorted(semantics.aggregate(hot, W).items())], ts=T0 + 800_000)
    state, streamed = fraud.RuleState(), []
    for t in arrivals:
        for a in fraud.step(state, t, fraud.NO_PROFILE):
            near = abs(a.event_time_ms - behind["event_time_ms"]) <= fraud.DEFAULT_PARAMS.reach_ms
            streamed.append(fraud.Alert(a.rule, a.account_id, a.txn_ids, a.event_time_ms,
                                        {**a.details, fraud.BEHIND_KEY: [behind["txn_id"]]}
                                        if near else a.details))
    write_topic(cfg.paths.raw_dir, TOPICS.alerts,
                [(0, b"a9", a.record(T0).encode()) for a in streamed], ts=T0 + 800_000)
    batch = fraud.alerts_of(hot)
    one_sided = {a.alert_id for a in streamed} ^ {a.alert_id for a in batch}
    assert len(one_sided) == 24  # every firing differs, for 12 minutes

    first = job.run(cfg, T0, T0 + 5 * W, spark)
    assert first["summary"]["alert_state"] == {"continued_from_snapshot": False,
                                               "replayed_from_ms": T0 - cfg.batch.lookback_ms}
    second = job.run(cfg, T0 + 5 * W, T0 + 12 * W, spark)
    assert second["summary"]["alert_state"]["continued_from_snapshot"] is True
    got = {**classes(first["out_dir"], "alerts"), **classes(second["out_dir"], "alerts")}
    assert first["summary"]["unexplained"] == second["summary"]["unexplained"] == 0
    assert {got[a] for a in one_sided} == {reconcile.EXPLAINED_LATE}
    beyond = [a for a in streamed + batch if a.alert_id in one_sided
              and a.event_time_ms - behind["event_time_ms"] > fraud.DEFAULT_PARAMS.reach_ms
              and a.event_time_ms >= T0 + 5 * W]
    assert len(beyond) >= 10  # explained through the chain alone, in the second run

    # without the first run's results the second cannot trace the chain to its root
    (first["out_dir"] / "alerts.parquet").unlink()
    again = job.run(cfg, T0 + 5 * W, T0 + 12 * W, spark)
    assert again["summary"]["unexplained"] == len(beyond)


# --- drift against the history of earlier runs ---------------------------------------------------

# The metrics of a reconciliation of build_lake()'s interval, written out by hand: 11 raw records
# in scope, 7 accepted (t1-t7: all EUR, all web, t5 from FR), 1 duplicate, DLQ 1 MALFORMED and
# 2 CONFLICTING_DUPLICATE, 1 late of 7 accepted; amounts 40, 100, 300, 500, 700, 900, 2 000 000.
LAKE_METRICS = {
    "raw_records": 11, "accepted": 7,
    "currency_mix": {"EUR": 7}, "channel_mix": {"web": 7}, "country_mix": {"DE": 6, "FR": 1},
    "amount_quantiles": {"EUR": [40.0, 100.0, 500.0, 900.0, 2000000.0, 2000000.0]},
    "rates": {"dlq.MALFORMED": 1 / 11, "dlq.SCHEMA_VIOLATION": 0.0, "dlq.INVALID_VALUE": 0.0,
              "dlq.CONFLICTING_DUPLICATE": 2 / 11, "duplicate": 1 / 11, "late": 1 / 7,
              "unexplained": 0.0},
}
# earlier runs with another currency and channel mix and amounts 1 000x larger
OTHER_MIX_AND_AMOUNTS = {
    **LAKE_METRICS,
    "currency_mix": {"USD": 6, "GBP": 1}, "channel_mix": {"pos": 5, "atm": 2},
    "amount_quantiles": {"EUR": [40_000.0, 100_000.0, 500_000.0, 900_000.0, 2e9, 2e9]},
}


@pytest.mark.parametrize("earlier, flags", [
    (LAKE_METRICS, []),
    (OTHER_MIX_AND_AMOUNTS, ["psi.channel_mix", "psi.currency_mix", "wasserstein.amount.EUR"]),
], ids=["matching-baseline", "other-mix-and-amounts"])
def test_a_run_flags_drift_against_the_earlier_runs_metrics(spark, tmp_path, earlier, flags):
    # the amounts of a currency are compared from 5 accepted transactions on (200 by default;
    # the lake has 7)
    cfg = config.load(None, [f"paths.data_dir={tmp_path}",
                             f"paths.reports_dir={tmp_path / 'reports'}",
                             "drift.amount_min_count=5"])
    build_lake(cfg.paths.raw_dir)
    history = tmp_path / "quality" / "history"  # <data_dir>/quality/history, one file a run
    history.mkdir(parents=True)
    for k in (1, 2):  # two runs of earlier intervals
        start = T0 - k * 5 * W
        name = f"interval={interval_for_path(start, start + 5 * W)}.json"
        (history / name).write_text(json.dumps(earlier))

    s = job.run(cfg, T0, T0 + 5 * W, spark)["summary"]
    assert s["drift_flags"] == flags
    assert set(s["drift"]) == {
        "psi.currency_mix", "psi.channel_mix", "psi.country_mix", "wasserstein.amount.EUR",
        "rate.dlq.MALFORMED", "rate.dlq.SCHEMA_VIOLATION", "rate.dlq.INVALID_VALUE",
        "rate.dlq.CONFLICTING_DUPLICATE", "rate.duplicate", "rate.late", "rate.unexplained"}
    assert s["drift"]["psi.country_mix"]["value"] == 0.0
    # the run's own metrics, as written out above, joined the history
    assert s["metrics"]["currency_mix"] == {"EUR": 7}
    assert s["metrics"]["country_mix"] == {"DE": 6, "FR": 1}
    assert s["metrics"]["rates"] == pytest.approx(LAKE_METRICS["rates"])
    assert sorted(p.name for p in history.iterdir()) == sorted([
        f"interval={interval_for_path(T0 - 10 * W, T0 - 5 * W)}.json",
        f"interval={interval_for_path(T0 - 5 * W, T0)}.json",
        f"interval={interval_for_path(T0, T0 + 5 * W)}.json"])
