"""The transactions job: validate, dedup, per-account event-time aggregates, late data, DLQ.

Reads ``payments.transactions`` and writes, exactly once (Kafka transactions committed on
checkpoints):

* ``payments.dlq``: every record that fails validation (MALFORMED, SCHEMA_VIOLATION,
  INVALID_VALUE) and every CONFLICTING_DUPLICATE, with its source partition and offset;
* ``payments.late-transactions``: accepted transactions that arrive after the watermark has
  passed the end of their window, with ``watermark_ms`` and ``window_start_ms``;
* ``payments.account-aggregates``: one record per (account_id, currency, 60 s window).

Shape (CONTRACT.md §3-§5; semantics from ``udfs/``). Python runs once per record, in the
validation UDF (thread mode); everything else is Flink SQL on the JVM:

    Kafka source (per-partition watermarks, idleness)
      -> validate_txn (Python scalar UDF = udfs.contract.validate)
      -> dedup state: OVER (PARTITION BY txn_id ORDER BY proctime), first copy's fingerprint
         and event time (udfs.semantics.dedup_decision, written as SQL)
      -> outcome: invalid / CONFLICTING_DUPLICATE -> DLQ;  DUPLICATE -> counted, dropped;
         accepted behind CURRENT_WATERMARK -> late;  accepted on time ->
      -> tumbling window TVF aggregate                           -> aggregates

Dedup state is one row per txn_id (the first copy's fingerprint and event time), kept for the
dedup horizon (state TTL, ``contract.dedup_horizon_ms``) after the txn_id was last seen.

Submit (``payline submit transactions`` wraps this):

    FLINK_CONF_DIR=run/flink/conf .venv/lib/python3.11/site-packages/pyflink/bin/flink run -d \\
        --jarfile infra/flink/target/lib/flink-sql-connector-kafka-5.0.0-2.2.jar \\
        --python jobs/streaming/transactions.py [--conf FILE] [--set section.key=value ...] \\
        [--bounded] [--group-id ID]

Flags: ``--conf``/``--set`` as for ``payline``; ``--bounded`` reads up to the offsets current at
start and then finishes (tests, backfills); ``--starting-offsets earliest|committed``.
"""

from __future__ import annotations

import argparse
import sys
import time

from pyflink.common import Row, Types
from pyflink.datastream import (
    CheckpointingMode,
    OutputTag,
    ProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from pyflink.table import DataTypes, StreamTableEnvironment
from pyflink.table.udf import ScalarFunction, udf

from jobs.streaming import TRANSACTIONS_JOB_NAME
from payline import config as config_mod
from udfs import semantics
from udfs.contract import (
    CONFLICTING_DUPLICATE,
    ERROR_CLASSES,
    FIELD_NAMES,
    Rules,
    Valid,
    validate,
)

JOB_NAME = TRANSACTIONS_JOB_NAME

VALIDATED_FIELDS = [
    ("error_class", DataTypes.STRING()), ("error", DataTypes.STRING()),
    ("raw_text", DataTypes.STRING()), ("raw_encoding", DataTypes.STRING()),
    ("txn_id", DataTypes.STRING()), ("account_id", DataTypes.STRING()),
    ("merchant_id", DataTypes.STRING()), ("amount_cents", DataTypes.BIGINT()),
    ("currency", DataTypes.STRING()), ("kind", DataTypes.STRING()),
    ("event_time_ms", DataTypes.BIGINT()), ("channel", DataTypes.STRING()),
    ("country", DataTypes.STRING()),
]
_NO_TXN = (None,) * len(FIELD_NAMES)


class ValidateTransaction(ScalarFunction):
    """udfs.contract.validate as a SQL function. An invalid record also gets its raw bytes as
    DLQ text (UTF-8, else base64)."""

    def __init__(self, rules: Rules):
        self.rules = rules

    def eval(self, value):
        result = validate(value, self.rules)
        if isinstance(result, Valid):
            t = result.txn
            return Row(None, None, None, None, t["txn_id"], t["account_id"], t["merchant_id"],
                       t["amount_cents"], t["currency"], t["kind"], t["event_time_ms"],
                       t["channel"], t["country"])
        text, encoding = semantics.raw_text(value)
        return Row(result.error_class, result.error, text, encoding, *_NO_TXN)


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
    ``payline.error_class.<CLASS>.dlq``; gauge ``payline.event_time_lag_ms`` = wall clock
    (monitoring only) minus the watermark."""

    def __init__(self, tags: dict):
        self.tags = tags

    def open(self, runtime_context: RuntimeContext):
        group = runtime_context.get_metrics_group().add_group("payline")
        self.accepted = group.counter("accepted")
        self.duplicates = group.counter("duplicates")
        self.late = group.counter("late")
        self.dlq = {cls: group.add_group("error_class", cls).counter("dlq")
                    for cls in ERROR_CLASSES}
        self.watermark_ms = None
        group.gauge("event_time_lag_ms", lambda: int(
            time.time() * 1000 - self.watermark_ms) if self.watermark_ms else 0)

    def process_element(self, row, ctx: ProcessFunction.Context):
        watermark = ctx.timer_service().current_watermark()
        if watermark > 0:
            self.watermark_ms = watermark
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


def sql_interval(ms: int) -> str:
    """A Flink SQL interval literal for ``ms`` (whole seconds; Flink takes no precision
    above the default 2 digits, so the unit is chosen to keep the number below 100)."""
    for unit, size in (("DAY", 86_400_000), ("HOUR", 3_600_000), ("MINUTE", 60_000),
                       ("SECOND", 1000)):
        if ms % size == 0 and ms // size < 100:
            return f"INTERVAL '{ms // size}' {unit}"
    raise ValueError(f"{ms} ms cannot be written as a Flink SQL interval below 100 of one unit")


def epoch_ms_sql(column: str) -> str:
    """SQL for the epoch milliseconds of a TIMESTAMP_LTZ(3) (Flink casts it to no number);
    the job's session time zone is UTC."""
    return (f"(UNIX_TIMESTAMP(DATE_FORMAT({column}, 'yyyy-MM-dd HH:mm:ss')) * 1000"
            f" + CAST(DATE_FORMAT({column}, 'SSS') AS BIGINT))")


def source_ddl(cfg, args) -> str:
    """The raw Kafka table. Event time comes from JSON with the type and range checked in SQL
    (JSON_QUERY keeps JSON types apart, JSON_VALUE does not)."""
    et = cfg.event_time
    lo, hi = cfg.contract.min_event_time_ms, cfg.contract.max_event_time_ms
    bounded = "'scan.bounded.mode' = 'latest-offset'," if args.bounded else ""
    startup = ("'scan.startup.mode' = 'earliest-offset',"
               if args.starting_offsets == "earliest" else
               "'scan.startup.mode' = 'group-offsets', "
               "'properties.auto.offset.reset' = 'earliest',")
    # '[1767225600000]' for a JSON integer, '["..."]' for a string: the type is kept apart
    event_time = (
        "CAST(REGEXP_EXTRACT(JSON_QUERY(CAST(`value` AS STRING), '$.event_time_ms' "
        "WITH CONDITIONAL ARRAY WRAPPER), '^\\[([0-9]{1,13})\\]$', 1) AS BIGINT)"
    )
    return f"""
    CREATE TEMPORARY TABLE raw_transactions (
      `value` BYTES,
      `partition` INT METADATA VIRTUAL,
      `offset` BIGINT METADATA VIRTUAL,
      `kafka_ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
      -- processing order, the order in which dedup decides which copy came first
      `proctime` AS PROCTIME(),
      -- computed columns cannot refer to each other, so the extraction appears twice
      `rowtime` AS TO_TIMESTAMP_LTZ(
          CASE WHEN {event_time} BETWEEN {lo} AND {hi - 1} THEN {event_time} ELSE 0 END, 3),
      WATERMARK FOR `rowtime` AS `rowtime` - {sql_interval(et.out_of_orderness_ms)}
    ) WITH (
      'connector' = 'kafka',
      'topic' = '{cfg.topics.transactions}',
      'properties.bootstrap.servers' = '{cfg.kafka.bootstrap}',
      'properties.group.id' = '{args.group_id}',
      'properties.isolation.level' = 'read_committed',
      {startup}
      {bounded}
      'scan.watermark.idle-timeout' = '{et.idleness_ms} ms',
      'format' = 'raw'
    )
    """


def sink_ddl(cfg, name: str, topic: str, columns: str, key_field: str,
             value_format: str) -> str:
    key = (f"'key.format' = 'raw', 'key.fields' = '{key_field}', "
           "'value.fields-include' = 'EXCEPT_KEY',")
    return f"""
    CREATE TEMPORARY TABLE {name} ({columns}) WITH (
      'connector' = 'kafka',
      'topic' = '{topic}',
      'properties.bootstrap.servers' = '{cfg.kafka.bootstrap}',
      -- below the broker's transaction.max.timeout.ms; outlives any checkpoint
      'properties.transaction.timeout.ms' = '900000',
      'sink.delivery-guarantee' = 'exactly-once',
      'sink.transactional-id-prefix' = '{JOB_NAME}-{name}',
      {key}
      'value.format' = '{value_format}'
    )
    """


def create_sinks(t_env, cfg) -> dict[str, str]:
    """The three exactly-once Kafka sinks (key, value as raw UTF-8), by output; returns their
    table names."""
    names = {"aggregates": ("account_aggregates", cfg.topics.aggregates),
             "late": ("late_transactions", cfg.topics.late),
             "dlq": ("dead_letters", cfg.topics.dlq)}
    for name, topic in names.values():
        t_env.execute_sql(sink_ddl(cfg, name, topic, "key STRING, `value` STRING", "key",
                                   "raw"))
    return {kind: name for kind, (name, _) in names.items()}


def rules_of(cfg) -> Rules:
    c = cfg.contract
    return Rules(currencies=c.currencies, max_value_bytes=c.max_value_bytes,
                 min_amount_cents=c.min_amount_cents, max_amount_cents=c.max_amount_cents,
                 min_event_time_ms=c.min_event_time_ms, max_event_time_ms=c.max_event_time_ms)


def build_pipeline(t_env, source: str, sinks: dict[str, str], cfg):
    """Wire validation, dedup, late routing and the window aggregate from the ``source`` table
    into the ``sinks`` tables (by output: aggregates, late, dlq). Creates no connector;
    returns the statement set to execute."""
    et, w = cfg.event_time, cfg.event_time.window_ms
    topic = cfg.topics.transactions
    fn = t_env.create_temporary_function
    fn("validate_txn", udf(ValidateTransaction(rules_of(cfg)), result_type=DataTypes.ROW(
        [DataTypes.FIELD(n, t) for n, t in VALIDATED_FIELDS])))

    fields = ", ".join(f"v.{name} AS {name}" for name, _ in VALIDATED_FIELDS)
    t_env.execute_sql(f"""
      CREATE TEMPORARY VIEW validated AS
      SELECT {fields}, r.`value` AS raw_value, r.`partition` AS src_partition,
             r.`offset` AS src_offset, r.kafka_ts AS src_timestamp,
             r.rowtime, r.proctime
      FROM (SELECT validate_txn(`value`) AS v, * FROM {source}) AS r
    """)
    # Dedup state, in SQL: per txn_id the count of valid copies so far (processing order) and
    # the first one's fingerprint and event time. Invalid records are keyed by their source
    # partition ('#' is in no txn_id), so they share a handful of keys and hold no state.
    fingerprint = f"CONCAT_WS('{semantics.FINGERPRINT_SEPARATOR}', " + ", ".join(
        f"CAST({n} AS STRING)" if n in ("amount_cents", "event_time_ms") else n
        for n in FIELD_NAMES) + ")"
    t_env.execute_sql(f"""
      CREATE TEMPORARY VIEW seen AS
      SELECT *, COUNT(*) OVER w AS copies, FIRST_VALUE(fingerprint) OVER w AS first_fingerprint,
             FIRST_VALUE(event_time_ms) OVER w AS first_event_time_ms
      FROM (SELECT *,
                   CASE WHEN error_class IS NULL THEN txn_id
                        ELSE CONCAT('#', CAST(src_partition AS STRING)) END AS dedup_key,
                   CASE WHEN error_class IS NULL THEN {fingerprint} END AS fingerprint
            FROM validated)
      WINDOW w AS (PARTITION BY dedup_key ORDER BY proctime
                   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    """)
    # udfs.semantics.dedup_decision and is_late, as SQL
    horizon = cfg.contract.dedup_horizon_ms
    window_start = f"(event_time_ms - MOD(event_time_ms, {w}))"
    t_env.execute_sql(f"""
      CREATE TEMPORARY VIEW routed AS
      SELECT *,
             CASE WHEN outcome = '{semantics.ACCEPTED}' AND arrival_watermark IS NOT NULL
                       AND TO_TIMESTAMP_LTZ({window_start} + {w - 1 + et.allowed_lateness_ms},
                                            3) <= arrival_watermark
                  THEN TRUE ELSE FALSE END AS late
      FROM (SELECT *,
                   CASE WHEN error_class IS NOT NULL THEN error_class
                        WHEN copies = 1
                          OR ABS(event_time_ms - first_event_time_ms) >= {horizon}
                          THEN '{semantics.ACCEPTED}'
                        WHEN fingerprint = first_fingerprint THEN '{semantics.DUPLICATE}'
                        ELSE '{CONFLICTING_DUPLICATE}' END AS outcome,
                   CURRENT_WATERMARK(rowtime) AS arrival_watermark
            FROM seen)
    """)
    # start computed from event_time_ms as udfs.semantics.window_start does (epoch-aligned);
    # every row of a window has the same value
    start = f"MIN({window_start})"
    aggregate = f"""
      SELECT CONCAT(account_id, '|', currency, '|', CAST(window_start_ms AS STRING)) AS key,
             JSON_OBJECT('account_id' VALUE account_id, 'currency' VALUE currency,
                         'window_start_ms' VALUE window_start_ms,
                         'window_end_ms' VALUE window_start_ms + {w},
                         'txn_count' VALUE txn_count, 'purchase_count' VALUE purchase_count,
                         'refund_count' VALUE refund_count,
                         'purchase_cents' VALUE purchase_cents, 'refund_cents' VALUE refund_cents,
                         'net_cents' VALUE purchase_cents - refund_cents,
                         'max_amount_cents' VALUE max_amount_cents) AS `value`,
             txn_count
      FROM (
        SELECT account_id, currency, {start} AS window_start_ms, COUNT(*) AS txn_count,
               SUM(CASE WHEN kind = 'purchase' THEN 1 ELSE 0 END) AS purchase_count,
               SUM(CASE WHEN kind = 'refund' THEN 1 ELSE 0 END) AS refund_count,
               SUM(CASE WHEN kind = 'purchase' THEN amount_cents ELSE 0 END) AS purchase_cents,
               SUM(CASE WHEN kind = 'refund' THEN amount_cents ELSE 0 END) AS refund_cents,
               MAX(amount_cents) AS max_amount_cents
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


def parse_args(argv):
    p = argparse.ArgumentParser(prog="transactions", description=__doc__.split("\n")[0])
    p.add_argument("--conf")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--bounded", action="store_true")
    p.add_argument("--starting-offsets", choices=("earliest", "committed"), default="committed")
    p.add_argument("--group-id", default=JOB_NAME)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv if argv is not None else sys.argv[1:])
    cfg = config_mod.load(args.conf, args.set)
    env = StreamExecutionEnvironment.get_execution_environment()
    configure_fault_tolerance(env, cfg)
    t_env = StreamTableEnvironment.create(env)
    conf = t_env.get_config()
    conf.set("pipeline.name", JOB_NAME)
    conf.set("python.execution-mode", cfg.flink.python_execution_mode)
    conf.set("table.local-time-zone", "UTC")
    # every SQL operator gets a uid from its plan node ("<id>_<transformation>"), the same on
    # every submission of this program, so checkpoints and savepoints map back to it
    conf.set("table.exec.uid.generation", "ALWAYS")
    # the dedup state of a txn_id goes once it has not been seen for the horizon
    conf.set("table.exec.state.ttl", f"{cfg.contract.dedup_horizon_ms} ms")
    t_env.execute_sql(source_ddl(cfg, args))
    sinks = create_sinks(t_env, cfg)
    statements = build_pipeline(t_env, "raw_transactions", sinks, cfg)
    # as a DataStream program: env.execute() behaves alike in attached and detached `flink run`
    statements.attach_as_datastream()
    env.execute(JOB_NAME)


if __name__ == "__main__":
    main()
