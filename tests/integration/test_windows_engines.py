"""udfs.windows in the engines that run it: window alignment, lateness and the aggregate as
Spark runs them (the batch recompute's own forms, jobs/batch/recompute.py) and as Flink runs
them (a local PyFlink batch TableEnvironment, the Flink jobs' texts), on the boundary rows of
tests/unit/test_windows_sql.py, against the Python reference (udfs.semantics) and the
hand-written expectations there."""

from __future__ import annotations

import pytest
from pyflink.table import EnvironmentSettings, TableEnvironment
from pyspark.sql import functions as F

from jobs.batch import recompute
from jobs.streaming.txn_sql import flink_instant_sql
from tests.unit.test_windows_sql import AGGREGATE_CASES, LATENESS_CASES, W
from udfs import semantics, windows

WINDOW_STARTS = [(w, t) for w in (60_000, 7, 3_600_000)
                 for t in (1_767_225_600_000, 1_767_225_659_999, 1_767_225_660_000, 59_999,
                           60_000, 20)]
TXN_SCHEMA = ("account_id STRING, currency STRING, kind STRING, amount_cents BIGINT, "
              "event_time_ms BIGINT")


def keyed(aggs: list[dict]) -> dict[tuple, dict]:
    return {(a["account_id"], a["currency"], a["window_start_ms"]): a for a in aggs}


# --- Spark ------------------------------------------------------------------------------------


@pytest.mark.spark
def test_spark_aligns_windows_as_the_reference(spark):
    df = spark.createDataFrame(WINDOW_STARTS, "window_ms LONG, event_time_ms LONG")
    for w in {w for w, _ in WINDOW_STARTS}:
        got = {r[0]: r[1] for r in df.where(df.window_ms == w).select(
            "event_time_ms", recompute.window_start_of("event_time_ms", w)).collect()}
        assert got == {t: semantics.window_start(t, w) for ww, t in WINDOW_STARTS if ww == w}


@pytest.mark.spark
def test_spark_judges_lateness_as_the_reference(spark):
    df = spark.createDataFrame([(i, *case[:3]) for i, case in enumerate(LATENESS_CASES)],
                               "i INT, event_time_ms LONG, watermark_ms LONG, lateness LONG")
    got = {}
    for lateness in {case[2] for case in LATENESS_CASES}:
        sql = windows.is_late_sql("event_time_ms", "watermark_ms", W, lateness)
        got |= {r[0]: r[1] for r in df.where(df.lateness == lateness).select(
            "i", F.coalesce(F.expr(sql), F.lit(False))).collect()}
    assert got == {i: late for i, (_, _, _, late) in enumerate(LATENESS_CASES)}
    assert all(semantics.is_late(t, wm, W, lateness) is late
               for t, wm, lateness, late in LATENESS_CASES)


@pytest.mark.spark
@pytest.mark.parametrize("case", list(AGGREGATE_CASES))
def test_spark_aggregates_as_the_reference(spark, case):
    txns, want = AGGREGATE_CASES[case]
    df = spark.createDataFrame(
        [(t["account_id"], t["currency"], t["kind"], t["amount_cents"], t["event_time_ms"])
         for t in txns], TXN_SCHEMA).withColumn(
        "window_start_ms", recompute.window_start_of("event_time_ms", W))
    got = keyed([r.asDict() for r in recompute.window_aggregates(df, W).collect()])
    assert got == keyed(want)
    assert got == keyed([a.as_dict() for a in semantics.aggregate(txns, W).values()])


# --- Flink ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flink():
    """A local batch TableEnvironment (a mini-cluster in a JVM of its own), UTC."""
    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    t_env.get_config().set("table.local-time-zone", "UTC")
    t_env.get_config().set("parallelism.default", "1")
    return t_env


def flink_rows(t_env, sql: str) -> list[tuple]:
    with t_env.execute_sql(sql).collect() as results:
        return [tuple(r) for r in results]


def values_sql(rows: list[tuple], names: list[str]) -> str:
    def lit(v):
        if v is None:
            return "CAST(NULL AS BIGINT)"
        return f"CAST('{v}' AS STRING)" if isinstance(v, str) else f"CAST({v} AS BIGINT)"
    body = ", ".join("(" + ", ".join(lit(v) for v in r) + ")" for r in rows)
    return f"(VALUES {body}) AS t({', '.join(names)})"


@pytest.mark.integration
def test_flink_runs_the_jobs_texts_as_the_reference(flink):
    # window start
    got = flink_rows(flink, "SELECT w, event_time_ms, " + ", ".join(
        f"CASE WHEN w = {w} THEN {windows.window_start_sql('event_time_ms', w)} END"
        for w in sorted({w for w, _ in WINDOW_STARTS})) + " FROM "
        + values_sql(WINDOW_STARTS, ["w", "event_time_ms"]))
    for w, t, *starts in got:
        assert [s for s in starts if s is not None] == [semantics.window_start(t, w)]

    # lateness: the routed view's condition, the watermark a TIMESTAMP_LTZ(3) as in the job
    rows = [(i, t, wm, lateness) for i, (t, wm, lateness, _) in enumerate(LATENESS_CASES)]
    cases = " ".join(
        f"WHEN lateness = {lateness} AND "
        + windows.is_late_sql("event_time_ms", "arrival_watermark", W, lateness,
                              to_time=flink_instant_sql, and_="\n AND ") + " THEN TRUE"
        for lateness in sorted({r[3] for r in rows}))
    got = dict(flink_rows(flink, f"""
        SELECT i, CASE {cases} ELSE FALSE END FROM (
          SELECT i, event_time_ms, lateness, TO_TIMESTAMP_LTZ(wm, 3) AS arrival_watermark
          FROM {values_sql(rows, ["i", "event_time_ms", "wm", "lateness"])})"""))
    assert got == {i: late for i, (_, _, _, late) in enumerate(LATENESS_CASES)}

    # the aggregate: the job's select list and derived fields
    start = windows.window_start_sql("event_time_ms", W)
    derived = ", ".join(f"{sql} AS {name}"
                        for name, sql in windows.derived_sql("window_start_ms", W))
    names = ["account_id", "currency", "kind", "amount_cents", "event_time_ms"]
    for case, (txns, want) in AGGREGATE_CASES.items():
        source = values_sql([tuple(t[n] for n in names) for t in txns], names)
        sql = (f"SELECT *, {derived} FROM (SELECT account_id, currency, "
               f"MIN({start}) AS window_start_ms, {windows.aggregate_select_sql()} "
               f"FROM {source} GROUP BY account_id, currency, {start})")
        columns = ["account_id", "currency", "window_start_ms",
                   *(n for n, _ in windows.AGGREGATE_MEASURES),
                   *(n for n, _ in windows.derived_sql("window_start_ms", W))]
        got = keyed([dict(zip(columns, r, strict=True)) for r in flink_rows(flink, sql)])
        assert got == keyed(want), case
