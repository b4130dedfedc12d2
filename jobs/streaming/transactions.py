"""The transactions job: validate, dedup, per-account event-time aggregates, late data, DLQ.

Reads ``payments.transactions`` and writes, exactly once (Kafka transactions committed on
checkpoints):

* ``payments.dlq``: every record that fails validation (MALFORMED, SCHEMA_VIOLATION,
  INVALID_VALUE) and every CONFLICTING_DUPLICATE, with its source partition and offset;
* ``payments.late-transactions``: accepted transactions that arrive after the watermark has
  passed the end of their window, with ``watermark_ms`` and ``window_start_ms``;
* ``payments.account-aggregates``: one record per (account_id, currency, 60 s window).

Shape (CONTRACT.md §3-§5; semantics from ``udfs/``):

    Kafka source (SQL; per-partition watermarks, idleness)
      -> validate (Python scalar UDF, udfs.contract.validate)      -> DLQ
      -> dedup + late routing (keyed by txn_id; typed state, timer) -> DLQ (conflicts), late
      -> tumbling window aggregate (Flink SQL window TVF)           -> aggregates

Event time is read in the source with pure SQL (the watermark must be generated per Kafka
partition, inside the source); a record without a well-typed, in-range ``event_time_ms`` gets
the epoch as its rowtime, which never advances a watermark.

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
from datetime import UTC, datetime

from pyflink.common import Row, Types
from pyflink.common.serialization import SimpleStringSchema
from pyflink.datastream import (
    CheckpointingMode,
    KeyedProcessFunction,
    OutputTag,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import KafkaRecordSerializationSchema, KafkaSink
from pyflink.datastream.state import ValueStateDescriptor
from pyflink.table import DataTypes, Schema, StreamTableEnvironment
from pyflink.table.udf import ScalarFunction, udf

from jobs.streaming import TRANSACTIONS_JOB_NAME
from payline import config as config_mod
from udfs import semantics
from udfs.contract import ERROR_CLASSES, FIELD_NAMES, Rules, Valid, validate

JOB_NAME = TRANSACTIONS_JOB_NAME

VALIDATED_FIELDS = [
    ("error_class", DataTypes.STRING()), ("error", DataTypes.STRING()),
    ("txn_id", DataTypes.STRING()), ("account_id", DataTypes.STRING()),
    ("merchant_id", DataTypes.STRING()), ("amount_cents", DataTypes.BIGINT()),
    ("currency", DataTypes.STRING()), ("kind", DataTypes.STRING()),
    ("event_time_ms", DataTypes.BIGINT()), ("channel", DataTypes.STRING()),
    ("country", DataTypes.STRING()),
]

# What reaches the window aggregate: an accepted, on-time transaction.
ACCEPTED_ROW = Types.ROW_NAMED(
    list(FIELD_NAMES),
    [Types.STRING(), Types.STRING(), Types.STRING(), Types.LONG(), Types.STRING(),
     Types.STRING(), Types.LONG(), Types.STRING(), Types.STRING()],
)


def routing_key(row) -> str:
    """txn_id for a valid record (dedup state); the source position for an invalid one, which
    touches no state and only needs to reach the DLQ output."""
    if row["error_class"] is None:
        return row["txn_id"]
    return f"\x00{row['src_partition']}:{row['src_offset']}"


class ValidateTransaction(ScalarFunction):
    """udfs.contract.validate as a SQL function (counted downstream, in RouteTransactions)."""

    def __init__(self, rules: Rules):
        self.rules = rules

    def eval(self, value):
        result = validate(value, self.rules)
        if isinstance(result, Valid):
            t = result.txn
            return Row(None, None, t["txn_id"], t["account_id"], t["merchant_id"],
                       t["amount_cents"], t["currency"], t["kind"], t["event_time_ms"],
                       t["channel"], t["country"])
        return Row(result.error_class, result.error, None, None, None, None, None, None, None,
                   None, None)


class RouteTransactions(KeyedProcessFunction):
    """Invalid records go to the DLQ output as they are. Valid ones are keyed by txn_id: the
    first accepted copy's fingerprint stays in typed state until the watermark passes its
    event time + the dedup horizon (an event-time timer clears it).
    A repeat with equal fields is a duplicate (counted, dropped); with other fields, a
    CONFLICTING_DUPLICATE for the DLQ. An accepted transaction whose window the watermark has
    passed goes to the late output; the others go on to the window aggregate."""

    def __init__(self, topic: str, horizon_ms: int, window_ms: int, lateness_ms: int,
                 late_tag: OutputTag, dlq_tag: OutputTag):
        self.topic = topic
        self.horizon_ms = horizon_ms
        self.window_ms = window_ms
        self.lateness_ms = lateness_ms
        self.late_tag = late_tag
        self.dlq_tag = dlq_tag

    def open(self, runtime_context: RuntimeContext):
        self.first = runtime_context.get_state(
            ValueStateDescriptor("first_fingerprint", Types.STRING()))
        group = runtime_context.get_metrics_group().add_group("payline")
        self.accepted = group.counter("accepted")
        self.duplicates = group.counter("duplicates")
        self.dlq = {cls: group.add_group("error_class", cls).counter("dlq")
                    for cls in ERROR_CLASSES}
        self.late = group.counter("late")
        self.watermark_ms = None
        # wall clock only for the lag metric, never for a decision
        group.gauge("event_time_lag_ms", lambda: int(
            time.time() * 1000 - self.watermark_ms) if self.watermark_ms else 0)

    def process_element(self, row, ctx: KeyedProcessFunction.Context):
        if row["error_class"] is not None:
            self.dlq[row["error_class"]].inc()
            yield self.dlq_tag, semantics.dlq_record(
                row["error_class"], row["error"], row["raw_value"], self.topic,
                row["src_partition"], row["src_offset"], epoch_ms(row["src_timestamp"]))
            return
        txn = {name: row[name] for name in FIELD_NAMES}
        decision = semantics.dedup_decision(self.first.value(), txn)
        if decision == semantics.DUPLICATE:
            self.duplicates.inc()
            return
        if decision != semantics.ACCEPTED:
            self.dlq[decision].inc()
            yield self.dlq_tag, semantics.conflict_dlq_record(
                txn, row["raw_value"], self.topic, row["src_partition"],
                row["src_offset"], epoch_ms(row["src_timestamp"]))
            return
        self.accepted.inc()
        self.first.update(semantics.fingerprint(txn))
        ctx.timer_service().register_event_time_timer(
            semantics.dedup_state_expires_at(txn["event_time_ms"], self.horizon_ms))
        watermark = ctx.timer_service().current_watermark()
        self.watermark_ms = watermark if watermark > -(2**62) else None
        if semantics.is_late(txn["event_time_ms"], self.watermark_ms, self.window_ms,
                             self.lateness_ms):
            self.late.inc()
            yield self.late_tag, semantics.late_record(txn, watermark, self.window_ms)
            return
        yield Row(*(txn[name] for name in FIELD_NAMES))

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        self.first.clear()


def sql_interval(ms: int) -> str:
    """A Flink SQL interval literal for ``ms`` (whole seconds; Flink takes no precision
    above the default 2 digits, so the unit is chosen to keep the number below 100)."""
    for unit, size in (("DAY", 86_400_000), ("HOUR", 3_600_000), ("MINUTE", 60_000),
                       ("SECOND", 1000)):
        if ms % size == 0 and ms // size < 100:
            return f"INTERVAL '{ms // size}' {unit}"
    raise ValueError(f"{ms} ms cannot be written as a Flink SQL interval below 100 of one unit")


def epoch_ms(text: str | None) -> int:
    """'yyyy-MM-dd HH:mm:ss.SSS' in UTC (the job's SQL session time zone) -> epoch ms."""
    if not text:
        return -1
    dt = datetime.fromisoformat(text.replace(" ", "T")).replace(tzinfo=UTC)
    return int(dt.replace(microsecond=0).timestamp()) * 1000 + dt.microsecond // 1000


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


def sink_ddl(cfg, name: str, topic: str, columns: str, key_field: str) -> str:
    return f"""
    CREATE TEMPORARY TABLE {name} ({columns}) WITH (
      'connector' = 'kafka',
      'topic' = '{topic}',
      'properties.bootstrap.servers' = '{cfg.kafka.bootstrap}',
      'properties.transaction.timeout.ms' = '900000',
      'sink.delivery-guarantee' = 'exactly-once',
      'sink.transactional-id-prefix' = '{JOB_NAME}-{name}',
      'key.format' = 'raw',
      'key.fields' = '{key_field}',
      'value.format' = 'json',
      'value.fields-include' = 'EXCEPT_KEY'
    )
    """


def kafka_string_sink(cfg, topic: str, prefix: str) -> KafkaSink:
    return (
        KafkaSink.builder()
        .set_bootstrap_servers(cfg.kafka.bootstrap)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(topic)
            .set_value_serialization_schema(SimpleStringSchema())
            .build())
        .set_delivery_guarantee(DeliveryGuarantee.EXACTLY_ONCE)
        .set_transactional_id_prefix(f"{JOB_NAME}-{prefix}")
        # below the broker's transaction.max.timeout.ms; outlives any checkpoint
        .set_property("transaction.timeout.ms", "900000")
        .build()
    )


def build_pipeline(env, t_env, cfg, sinks):
    """Wire validation, dedup, late routing and the window aggregate from the registered
    ``raw_transactions`` table: DLQ and late records into the given DataStream ``sinks``;
    returns the aggregate table for the caller to insert into its sink. Creates no connector."""
    rules = Rules(currencies=cfg.contract.currencies, max_value_bytes=cfg.contract.max_value_bytes,
                  min_amount_cents=cfg.contract.min_amount_cents,
                  max_amount_cents=cfg.contract.max_amount_cents,
                  min_event_time_ms=cfg.contract.min_event_time_ms,
                  max_event_time_ms=cfg.contract.max_event_time_ms)
    t_env.create_temporary_function(
        "validate_txn",
        udf(ValidateTransaction(rules), result_type=DataTypes.ROW(
            [DataTypes.FIELD(n, t) for n, t in VALIDATED_FIELDS])))
    t_env.execute_sql("""
      CREATE TEMPORARY VIEW validated AS
      SELECT r.v.error_class AS error_class, r.v.error AS error,
             r.v.txn_id AS txn_id, r.v.account_id AS account_id, r.v.merchant_id AS merchant_id,
             r.v.amount_cents AS amount_cents, r.v.currency AS currency, r.v.kind AS kind,
             r.v.event_time_ms AS event_time_ms, r.v.channel AS channel, r.v.country AS country,
             r.`value` AS raw_value, r.`partition` AS src_partition, r.`offset` AS src_offset,
             DATE_FORMAT(r.kafka_ts, 'yyyy-MM-dd HH:mm:ss.SSS') AS src_timestamp
      FROM (SELECT validate_txn(`value`) AS v, * FROM raw_transactions) AS r
    """)
    topic = cfg.topics.transactions
    late_tag = OutputTag("late", Types.STRING())
    dlq_tag = OutputTag("dlq", Types.STRING())
    et = cfg.event_time
    # One conversion to a DataStream: each to_data_stream() would read the topic again.
    routed = (
        t_env.to_data_stream(t_env.from_path("validated"))
        .key_by(routing_key, key_type=Types.STRING())
        .process(RouteTransactions(topic, cfg.contract.dedup_horizon_ms, et.window_ms,
                                   et.allowed_lateness_ms, late_tag, dlq_tag),
                 output_type=ACCEPTED_ROW)
        .name("route-transactions").uid("route-transactions")
    )
    routed.get_side_output(dlq_tag).sink_to(sinks["dlq"]).name("dlq-sink").uid("dlq-sink")
    routed.get_side_output(late_tag).sink_to(sinks["late"]).name("late-sink").uid("late-sink")

    accepted = t_env.from_data_stream(
        routed,
        Schema.new_builder()
        # PyFlink's Python operators emit records without a timestamp: event time is derived
        # from the row again, while the watermarks stay the source's (per Kafka partition).
        .column_by_expression("rowtime", "TO_TIMESTAMP_LTZ(event_time_ms, 3)")
        .watermark("rowtime", "SOURCE_WATERMARK()")
        .build())
    t_env.create_temporary_view("accepted", accepted)
    w = et.window_ms
    # window_start_ms is computed from event_time_ms exactly as udfs.semantics.window_start
    # does (epoch-aligned); every row of a window has the same value.
    start = f"MIN(event_time_ms - MOD(event_time_ms, {w}))"
    return t_env.sql_query(f"""
      SELECT CONCAT(account_id, '|', currency, '|', CAST({start} AS STRING)) AS agg_key,
             account_id, currency,
             {start} AS window_start_ms,
             {start} + {w} AS window_end_ms,
             COUNT(*) AS txn_count,
             SUM(CASE WHEN kind = 'purchase' THEN 1 ELSE 0 END) AS purchase_count,
             SUM(CASE WHEN kind = 'refund' THEN 1 ELSE 0 END) AS refund_count,
             SUM(CASE WHEN kind = 'purchase' THEN amount_cents ELSE 0 END) AS purchase_cents,
             SUM(CASE WHEN kind = 'refund' THEN amount_cents ELSE 0 END) AS refund_cents,
             SUM(CASE WHEN kind = 'purchase' THEN amount_cents ELSE -amount_cents END)
               AS net_cents,
             MAX(amount_cents) AS max_amount_cents
      FROM TABLE(TUMBLE(TABLE accepted, DESCRIPTOR(rowtime), {sql_interval(w)}))
      GROUP BY account_id, currency, window_start, window_end
    """)


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
    # a stateful Python operator keeps its own uid: no fusing with the operators around it
    conf.set("python.operator-chaining.enabled", "false")
    conf.set("table.local-time-zone", "UTC")
    t_env.execute_sql(source_ddl(cfg, args))
    t_env.execute_sql(sink_ddl(
        cfg, "account_aggregates", cfg.topics.aggregates,
        "agg_key STRING, account_id STRING, currency STRING, window_start_ms BIGINT, "
        "window_end_ms BIGINT, txn_count BIGINT, purchase_count INT, refund_count INT, "
        "purchase_cents BIGINT, refund_cents BIGINT, net_cents BIGINT, max_amount_cents BIGINT",
        "agg_key"))
    sinks = {"dlq": kafka_string_sink(cfg, cfg.topics.dlq, "dlq"),
             "late": kafka_string_sink(cfg, cfg.topics.late, "late")}
    aggregates = build_pipeline(env, t_env, cfg, sinks)
    statements = t_env.create_statement_set()
    statements.add_insert("account_aggregates", aggregates)
    statements.attach_as_datastream()
    env.execute(JOB_NAME)


if __name__ == "__main__":
    main()
