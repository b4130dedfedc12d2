"""The transactions job: validate, dedup, per-account event-time aggregates, late data, DLQ.

Reads ``payments.transactions`` and writes, exactly once (Kafka transactions committed on
checkpoints):

* ``payments.dlq``: every record that fails validation (MALFORMED, SCHEMA_VIOLATION,
  INVALID_VALUE) and every CONFLICTING_DUPLICATE, with its source partition and offset;
* ``payments.late-transactions``: accepted transactions that arrive after the watermark has
  passed the end of their window, with ``watermark_ms`` and ``window_start_ms``;
* ``payments.account-aggregates``: one record per (account_id, currency, 60 s window).

Shape (docs/contract.md#validation to #outputs; semantics from ``udfs/``). Python validates the
records in Arrow batches, in a Python worker process beside the task (a vectorised UDF; outputs are
committed at checkpoints, so a batch's wait costs no visible latency), and sees the outputs once
more to count them (thread mode); everything else is Flink SQL on the JVM:

    Kafka source (per-partition watermarks, idleness)
      -> validate_txn (vectorised Python UDF = udfs.contract.validate_arrow, i.e. validate)
      -> dedup state: process table function dedup_first_copy (infra/flink-udfs, Java),
         PARTITION BY txn_id: first copy's fingerprint and event time, count of copies;
         decision udfs.semantics.dedup_decision, written as SQL
      -> outcome: invalid / CONFLICTING_DUPLICATE -> DLQ;  DUPLICATE -> counted, dropped;
         accepted behind the watermark (udfs.windows.is_late_sql) -> late;  on time ->
         (the watermark: the highest CURRENT_WATERMARK seen on the record's Kafka partition,
         kept in keyed state, so a restore does not route replayed late records "on time"
         into a window aggregate that restored its progress and drops them)
      -> tumbling window TVF aggregate (udfs.windows)            -> aggregates

Dedup state is one row per txn_id (the first copy's fingerprint and event time, the count of
copies), cleared by an event-time timer when the watermark passes the first copy's event time
plus the dedup horizon (``contract.dedup_horizon_ms``, docs/contract.md#deduplication). The
function comes from ``flink.udf_jar``, which ``payline up`` builds; the job adds it to
``pipeline.jars`` itself.

Submit (``payline submit transactions`` wraps this):

    FLINK_CONF_DIR=run/flink/conf .venv/lib/python3.11/site-packages/pyflink/bin/flink run -d \\
        --jarfile infra/flink/target/lib/flink-sql-connector-kafka-5.0.0-2.2.jar \\
        --python jobs/streaming/transactions.py [--conf FILE] [--set section.key=value ...] \\
        [--bounded] [--group-id ID]

Flags: ``--conf``/``--set`` as for ``payline``; ``--bounded`` reads up to the offsets current at
start and then finishes (tests, backfills); ``--starting-offsets earliest|committed``.
"""

from __future__ import annotations

import sys

from pyflink.common import Row, Types
from pyflink.datastream import (
    CheckpointingMode,
    OutputTag,
    ProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from pyflink.table import StreamTableEnvironment

from jobs.streaming.txn_sql import (
    add_udf_jar,
    configure_tables,
    create_routed_view,
    epoch_ms_sql,
    parse_job_args,
    sink_ddl,
    source_ddl,
    sql_interval,
)
from runtime import config as config_mod
from runtime import handoff
from runtime.registry import TRANSACTIONS
from udfs import semantics, windows
from udfs.contract import ERROR_CLASSES, FIELD_NAMES

JOB_NAME = TRANSACTIONS.name

# What goes back from the counting operator to a Kafka sink table.
SINK_ROW = Types.ROW_NAMED(["key", "value"], [Types.STRING(), Types.STRING()])
OUTPUT_KINDS = ("aggregates", "late", "dlq")


class CountOutputs(ProcessFunction):
    """The job's counters, kept where Python sees few records: its outputs (about 2 % of the
    input). Python scalar UDFs in thread mode cannot report metrics (their metric group is
    Beam's, which only process mode forwards), and counting each accepted record would put a
    second Python call on the hot path; so ``accepted`` counts the transactions of each emitted
    aggregate plus each late one: a transaction is counted when its window closes.

    Counters ``payline.accepted``, ``payline.duplicates``, ``payline.late``,
    ``payline.error_class.<CLASS>.dlq``. No Python gauge: in thread mode Flink's metric
    reporter thread calls a gauge's Python function itself, and that call crashed a
    TaskManager (SIGSEGV in ``take_gil``) while the task thread shut Python down around an
    upgrade. The event-time lag is the source operator's JVM gauge ``watermarkLag`` (wall
    clock minus the source's last watermark), which ``payline status`` shows as
    ``event_time_lag_ms``."""

    def __init__(self, tags: dict):
        self.tags = tags

    def open(self, runtime_context: RuntimeContext):
        group = runtime_context.get_metrics_group().add_group("payline")
        self.accepted = group.counter("accepted")
        self.duplicates = group.counter("duplicates")
        self.late = group.counter("late")
        self.dlq = {cls: group.add_group("error_class", cls).counter("dlq")
                    for cls in ERROR_CLASSES}

    def process_element(self, row, ctx: ProcessFunction.Context):
        kind = row["kind"]
        if kind == "duplicate":
            self.duplicates.inc()
            return
        if kind == "aggregates":
            self.accepted.inc(row["transactions"])
        elif kind == "late":
            self.accepted.inc()
            self.late.inc()
        else:
            self.dlq[row["error_class"]].inc()
        yield self.tags[kind], Row(row["key"], row["value"])


def create_sinks(t_env, cfg) -> dict[str, str]:
    """The three exactly-once Kafka sinks (key, value as raw UTF-8), by output; returns their
    table names."""
    names = {"aggregates": ("account_aggregates", cfg.topics.aggregates),
             "late": ("late_transactions", cfg.topics.late),
             "dlq": ("dead_letters", cfg.topics.dlq)}
    for name, topic in names.values():
        t_env.execute_sql(sink_ddl(cfg, JOB_NAME, name, topic, "key STRING, `value` STRING", "key",
                                   "raw"))
    return {kind: name for kind, (name, _) in names.items()}


def build_pipeline(t_env, source: str, sinks: dict[str, str], cfg):
    """Wire validation, dedup, late routing and the window aggregate from the ``source`` table
    into the ``sinks`` tables (by output: aggregates, late, dlq). Creates no connector;
    returns the statement set to execute."""
    w = cfg.event_time.window_ms
    topic = cfg.topics.transactions
    create_routed_view(t_env, source, cfg, vectorised=True)
    window_start = windows.window_start_sql(windows.EVENT_TIME, w)
    # start computed from event_time_ms as udfs.semantics.window_start does (epoch-aligned);
    # every row of a window has the same value
    start = f"MIN({window_start})"
    # the measures (udfs.windows.AGGREGATE_MEASURES), one per line as they have always been:
    # the text is the plan a savepoint maps onto
    measures = windows.aggregate_select_sql(",\n" + " " * 15)
    derived = dict(windows.derived_sql("window_start_ms", w))
    aggregate = f"""
      SELECT CONCAT(account_id, '|', currency, '|', CAST(window_start_ms AS STRING)) AS key,
             JSON_OBJECT('account_id' VALUE account_id, 'currency' VALUE currency,
                         'window_start_ms' VALUE window_start_ms,
                         'window_end_ms' VALUE {derived["window_end_ms"]},
                         'txn_count' VALUE txn_count, 'purchase_count' VALUE purchase_count,
                         'refund_count' VALUE refund_count,
                         'purchase_cents' VALUE purchase_cents, 'refund_cents' VALUE refund_cents,
                         'net_cents' VALUE {derived["net_cents"]},
                         'max_amount_cents' VALUE max_amount_cents) AS `value`,
             txn_count
      FROM (
        SELECT account_id, currency, {start} AS window_start_ms, {measures}
        FROM TABLE(TUMBLE(
          TABLE routed, DESCRIPTOR(rowtime), {sql_interval(w)}))
        WHERE outcome = '{semantics.ACCEPTED}' AND NOT late
        GROUP BY account_id, currency, window_start, window_end)"""
    txn_fields = ", ".join(f"'{n}' VALUE {n}" for n in FIELD_NAMES)
    late = f"""
      SELECT account_id AS key,
             JSON_OBJECT({txn_fields},
                         'watermark_ms' VALUE {epoch_ms_sql("arrival_watermark")},
                         'window_start_ms' VALUE {window_start}) AS `value`
      FROM routed WHERE late"""
    before, after = semantics.CONFLICT_ERROR.split("{txn_id}")
    dlq = f"""
      SELECT outcome AS error_class,
             JSON_OBJECT(
               'error_class' VALUE outcome,
               'error' VALUE CASE WHEN error_class IS NULL
                                  THEN CONCAT('{before}', txn_id, '{after}') ELSE error END,
               'raw' VALUE CASE WHEN error_class IS NULL
                                THEN CAST(raw_value AS STRING) ELSE raw_text END,
               'raw_encoding' VALUE CASE WHEN error_class IS NULL
                                         THEN 'utf8' ELSE raw_encoding END,
               'source_topic' VALUE '{topic}', 'source_partition' VALUE src_partition,
               'source_offset' VALUE src_offset,
               'source_timestamp_ms' VALUE {epoch_ms_sql("src_timestamp")}) AS `value`
      FROM routed WHERE outcome NOT IN ('{semantics.ACCEPTED}', '{semantics.DUPLICATE}')"""
    # The outputs as one stream (kind, key, value, error_class, transactions): every output
    # record, plus one row per dropped duplicate, so that they can be counted in one place.
    outputs = t_env.sql_query(f"""
      SELECT 'aggregates' AS kind, key, `value`, CAST(NULL AS STRING) AS error_class,
             txn_count AS transactions FROM ({aggregate})
      UNION ALL
      SELECT 'late', key, `value`, CAST(NULL AS STRING), CAST(1 AS BIGINT) FROM ({late})
      UNION ALL
      SELECT 'dlq', CAST(NULL AS STRING), `value`, error_class, CAST(1 AS BIGINT) FROM ({dlq})
      UNION ALL
      SELECT 'duplicate', CAST(NULL AS STRING), CAST(NULL AS STRING), CAST(NULL AS STRING),
             CAST(1 AS BIGINT)
      FROM routed WHERE outcome = '{semantics.DUPLICATE}'
    """)
    # One conversion to a DataStream (each to_data_stream() would read the topic again), for
    # the counters; the records go back to SQL for the Kafka sinks.
    tags = {kind: OutputTag(kind, SINK_ROW) for kind in OUTPUT_KINDS}
    counted = (t_env.to_data_stream(outputs)
               .process(CountOutputs(tags))
               .name("count-outputs").uid("count-outputs"))
    statements = t_env.create_statement_set()
    for kind in OUTPUT_KINDS:
        statements.add_insert(sinks[kind],
                              t_env.from_data_stream(counted.get_side_output(tags[kind])))
    return statements


def configure_fault_tolerance(env, cfg) -> None:
    env.enable_checkpointing(cfg.flink.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)


def main(argv=None) -> None:
    args = parse_job_args("transactions", __doc__.split("\n")[0],
                          argv if argv is not None else sys.argv[1:])
    cfg = config_mod.load(args.conf, args.set)
    args.group_id = args.group_id or JOB_NAME
    env = StreamExecutionEnvironment.get_execution_environment()
    configure_fault_tolerance(env, cfg)
    add_udf_jar(env, cfg)
    t_env = StreamTableEnvironment.create(env)
    configure_tables(t_env, cfg, JOB_NAME)
    t_env.execute_sql(source_ddl(cfg, args))
    sinks = create_sinks(t_env, cfg)
    statements = build_pipeline(t_env, "raw_transactions", sinks, cfg)
    # as a DataStream program: env.execute() behaves alike in attached and detached `flink run`
    statements.attach_as_datastream()
    handoff.execute(env, JOB_NAME)  # env.execute, or later under a prepared upgrade


if __name__ == "__main__":
    main()
