"""The transaction stream in Flink SQL, shared by the transactions and the fraud job: the raw
Kafka source with per-partition watermarks, validation (``udfs.contract.validate`` as a Python
scalar UDF: record by record for the fraud job, in Arrow batches for the transactions job), dedup
state and late routing (``udfs.semantics``, written as SQL), and Kafka sinks.

:func:`create_routed_view` leaves a view ``routed``: one row per raw record with its ``outcome``
(ACCEPTED, DUPLICATE or an error class), the validated fields, its source position, ``rowtime``,
the watermark at arrival and ``late``. Both jobs therefore decide accepted / duplicate / late
with the same SQL.
"""

from __future__ import annotations

import argparse

from pyflink.common import Row
from pyflink.table import DataTypes
from pyflink.table.udf import ScalarFunction, udf

from runtime import kafka_clients, registry
from runtime.settings import ROCKSDB_COMPRESSION, contract_rules
from udfs import semantics, windows
from udfs.contract import FIELD_NAMES, Rules, Valid, validate, validate_arrow

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
# records the vectorised validation's bundle may hold: far more than a checkpoint interval brings
# (the bundle's end is then the checkpoint's, see create_routed_view); in flight are only the
# Arrow batches the worker has not answered yet
PYTHON_BUNDLE_RECORDS = 5_000_000
RAW_FIELDS = ("raw_text", "raw_encoding")  # an invalid record's raw bytes as DLQ text
# the vectorised function's extra output field: its second argument, passed through
SOURCE_WATERMARK = "source_watermark"


class ValidateTransaction(ScalarFunction):
    """udfs.contract.validate as a SQL function, record by record (the fraud job; the
    transactions job validates in batches, :func:`validate_transactions`). An invalid record
    also gets its raw bytes as DLQ text (UTF-8, else base64).

    It is the full ``validate`` for every record: trying the one-pattern match of the common
    shape first (the fast path of ``udfs.contract.validate_arrow``, per record: 4x faster in
    Python alone) measured no gain (bench/RESULTS.md, 2026-11-26): per record, the task thread's
    conversions into Python and back cost more than the validation. Recognising the shape in
    SQL instead (the pattern in the JVM, the fields by ``SPLIT_INDEX``, only the other records
    through this function) made the job slower, 12 600 against 17 000 events/s
    (bench/RESULTS.md, 2026-11-27, commit ec8f9c9): Flink evaluates each field's expression anew
    wherever it is used. It would also split the plan into two branches before the stateful SQL
    operators, whose uids carry their plan node ids (``table.exec.uid.generation``), so a
    savepoint of the running version would no longer map onto the new one."""

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


def validate_transactions(rules: Rules):
    """:class:`ValidateTransaction` over a batch, as a vectorised (pandas) SQL function: a
    Series of raw values in, a DataFrame of VALIDATED_FIELDS out, row for row, the same values
    (``udfs.contract.validate_arrow``: the common valid shape checked over the whole batch,
    every other record through ``validate``). ``watermarks`` (the source's watermark when each
    record arrived) comes back unchanged as SOURCE_WATERMARK: see :func:`create_routed_view`.

    Flink runs a vectorised function in a Python worker process of its own, which it feeds
    Arrow batches (``python.fn-execution.arrow.batch.size``, 10 000 records; bundles: see
    :func:`create_routed_view`). For the transactions job, whose outputs are committed at
    checkpoints anyway, the wait is invisible, and the job was faster than with the per-record
    function in thread mode in 5 of 6 alternated pairs (bench/RESULTS.md, 2026-11-28, commit
    7fbc4d5): the task thread no longer converts every record into Python and back, and the
    validation runs beside it on the second core. The fraud job's LARGE_AMOUNT alerts cannot
    wait for a batch, so it keeps the per-record function."""
    def run(values, watermarks):
        # deferred: imported in the Python worker that runs the function, not by the client
        # that builds the job
        import numpy as np
        import pyarrow as pa

        raw = pa.array(values.tolist(), pa.binary())
        checked = validate_arrow(raw, rules)  # row order lost: "row" is the input's index
        checked = checked.take(np.argsort(checked.column("row").to_numpy(), kind="stable"))
        # integers stay exact: with nulls in a column, Python ints rather than float64
        out = checked.select([n for n, _ in VALIDATED_FIELDS if n not in RAW_FIELDS]).to_pandas(
            integer_object_nulls=True)
        texts, encodings = [None] * len(raw), [None] * len(raw)
        invalid = checked.column("error_class").is_valid().to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(invalid).tolist():
            texts[i], encodings[i] = semantics.raw_text(raw[i].as_py())
        at = [n for n, _ in VALIDATED_FIELDS].index(RAW_FIELDS[0])
        out.insert(at, RAW_FIELDS[0], texts)
        out.insert(at + 1, RAW_FIELDS[1], encodings)
        out[SOURCE_WATERMARK] = watermarks.reset_index(drop=True)
        return out
    return run


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


def flink_instant_sql(epoch_ms: str) -> str:
    """A TIMESTAMP_LTZ(3), comparable with a watermark, from an epoch-ms expression (the
    ``to_time`` of udfs.windows.is_late_sql; laid out over two lines as the ``routed`` view has
    always had it)."""
    return f"TO_TIMESTAMP_LTZ({epoch_ms},\n{' ' * 44}3)"


def json_epoch_ms_sql(field: str) -> str:
    """SQL for a top-level JSON integer field of the raw `value` (NULL unless it is a JSON
    integer of at most 13 digits). JSON_QUERY keeps JSON types apart, JSON_VALUE does not:
    '[1767225600000]' for an integer, '["..."]' for a string."""
    return (f"CAST(REGEXP_EXTRACT(JSON_QUERY(CAST(`value` AS STRING), '$.{field}' "
            "WITH CONDITIONAL ARRAY WRAPPER), '^\\[([0-9]{1,13})\\]$', 1) AS BIGINT)")


def rowtime_sql(epoch_ms: str, cfg) -> str:
    """A row time from an epoch-ms expression: the value when it is in the contract's event-time
    range, else the epoch (such a record fails validation; it must not move the watermark)."""
    lo, hi = cfg.contract.min_event_time_ms, cfg.contract.max_event_time_ms
    return (f"TO_TIMESTAMP_LTZ(CASE WHEN {epoch_ms} BETWEEN {lo} AND {hi - 1} "
            f"THEN {epoch_ms} ELSE 0 END, 3)")


def kafka_source_options(cfg, topic: str, args, startup: str) -> str:
    """The WITH options both jobs' Kafka sources share (``startup``: the scan.startup lines)."""
    bounded = "'scan.bounded.mode' = 'latest-offset'," if args.bounded else ""
    return f"""
      'connector' = 'kafka',
      'topic' = '{topic}',
      'properties.bootstrap.servers' = '{kafka_clients.bootstrap(cfg)}',{
          kafka_clients.flink_sql_options(cfg, args.component)}
      'properties.group.id' = '{args.group_id}',
      'properties.isolation.level' = 'read_committed',
      {startup}
      {bounded}
      'scan.watermark.idle-timeout' = '{cfg.event_time.idleness_ms} ms',"""


def source_ddl(cfg, args) -> str:
    """The raw Kafka table. Event time comes from JSON with the type and range checked in
    SQL."""
    startup = ("'scan.startup.mode' = 'earliest-offset',"
               if args.starting_offsets == "earliest" else
               "'scan.startup.mode' = 'group-offsets', "
               "'properties.auto.offset.reset' = 'earliest',")
    event_time = json_epoch_ms_sql("event_time_ms")
    return f"""
    CREATE TEMPORARY TABLE raw_transactions (
      `value` BYTES,
      `partition` INT METADATA VIRTUAL,
      `offset` BIGINT METADATA VIRTUAL,
      `kafka_ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
      -- processing order, the order in which dedup decides which copy came first
      `proctime` AS PROCTIME(),
      -- computed columns cannot refer to each other, so the extraction appears twice
      `rowtime` AS {rowtime_sql(event_time, cfg)},
      WATERMARK FOR `rowtime` AS `rowtime` - {sql_interval(cfg.event_time.out_of_orderness_ms)}
    ) WITH ({kafka_source_options(cfg, cfg.topics.transactions, args, startup)}
      'format' = 'raw'
    )
    """


def sink_ddl(cfg, job_name: str, name: str, topic: str, columns: str, key_field: str,
             value_format: str, exactly_once: bool = True, extra: str = "") -> str:
    """A Kafka sink table. Exactly-once: transactional, committed on checkpoints (readers use
    read_committed); otherwise at-least-once, each record sent at once."""
    guarantee = ("'sink.delivery-guarantee' = 'exactly-once', "
                 f"'sink.transactional-id-prefix' = '{job_name}-{name}',"
                 if exactly_once else "'sink.delivery-guarantee' = 'at-least-once',")
    key = (f"'key.format' = 'raw', 'key.fields' = '{key_field}', "
           "'value.fields-include' = 'EXCEPT_KEY',")
    return f"""
    CREATE TEMPORARY TABLE {name} ({columns}) WITH (
      'connector' = 'kafka',
      'topic' = '{topic}',
      'properties.bootstrap.servers' = '{kafka_clients.bootstrap(cfg)}',{
          kafka_clients.flink_sql_options(cfg, registry.by_flink_name(job_name).component)}
      -- below the broker's transaction.max.timeout.ms; outlives any checkpoint
      'properties.transaction.timeout.ms' = '900000',
      {guarantee}
      {extra}
      {key}
      'value.format' = '{value_format}'
    )
    """


DEDUP_FUNCTION = "dedup_first_copy"
DEDUP_CLASS = "dev.payline.flink.DedupFirstCopy"
DEDUP_UID = "dedup"


def add_udf_jar(env, cfg) -> None:
    """The project's Java functions (``flink.udf_jar``, built by `payline up` from
    infra/flink-udfs) for this job: in the client's class loader and shipped with the job,
    next to the connector jar of `flink run --jarfile`."""
    jar = cfg.flink.udf_jar
    if not jar.is_file():
        raise SystemExit(f"flink.udf_jar: {jar} does not exist; `payline up` builds it from "
                         f"infra/flink-udfs")
    env.add_jars(jar.as_uri())


def register_dedup_function(t_env) -> None:
    """DEDUP_FUNCTION, from the jar :func:`add_udf_jar` added."""
    t_env.execute_sql(f"CREATE TEMPORARY FUNCTION {DEDUP_FUNCTION} AS '{DEDUP_CLASS}' "
                      "LANGUAGE JAVA")


def create_routed_view(t_env, source: str, cfg, vectorised: bool = False) -> str:
    """Register ``validate_txn``, ``dedup_first_copy`` and the views ``validated``, ``keyed``,
    ``seen`` and ``routed`` over the raw ``source`` table; returns "routed". ``vectorised``:
    validate in batches (:func:`validate_transactions`) instead of record by record
    (:class:`ValidateTransaction`); the outcome is the same, only when it comes and what it
    costs differ. The jar of ``dedup_first_copy`` must have been added (:func:`add_udf_jar`)."""
    et, w = cfg.event_time, cfg.event_time.window_ms
    rules = contract_rules(cfg)
    fields = [DataTypes.FIELD(n, t) for n, t in VALIDATED_FIELDS]
    t_env.create_temporary_function(
        "validate_txn",
        udf(validate_transactions(rules), func_type="pandas", result_type=DataTypes.ROW(
            [*fields, DataTypes.FIELD(SOURCE_WATERMARK, DataTypes.TIMESTAMP(3))]))
        if vectorised else udf(ValidateTransaction(rules), result_type=DataTypes.ROW(fields)))
    # The watermark a record is judged late against is the source's when the record arrived.
    # Read after a synchronous Python function (thread mode), CURRENT_WATERMARK is that one. The
    # vectorised function's operator instead holds the watermark back until its bundle ends, so
    # after it a whole burst of records would be judged against the watermark from before the
    # burst, and its late ones taken as on time (found by the end-to-end test: 6 000 records
    # sent at once, no late output). Its watermark is therefore read before the function,
    # passed through it, and used in its place.
    if vectorised:
        call = "validate_txn(`value`, CAST(CURRENT_WATERMARK(rowtime) AS TIMESTAMP(3)))"
        arrival = f"CAST(v.{SOURCE_WATERMARK} AS TIMESTAMP_LTZ(3)) AS {SOURCE_WATERMARK}, "
        watermark = SOURCE_WATERMARK
        # The Python worker's results come back asynchronously; the operator holds the
        # watermark back until its bundle is finished, and each bundle's end waits for every
        # record in it. A checkpoint ends the bundle anyway (before its barrier goes on), so a
        # bundle as long as the checkpoint interval adds no wait of its own, and what a window
        # emits on the released watermark still lands in the transaction of that checkpoint
        # (with Flink's defaults, 1 s or 100 000 records, the job ran 19 700-24 800 events/s,
        # with these 22 400-32 900: bench/RESULTS.md, 2026-11-28, commit 7fbc4d5).
        conf = t_env.get_config()
        conf.set("python.fn-execution.bundle.time", str(cfg.flink.checkpoint_interval_ms))
        conf.set("python.fn-execution.bundle.size", str(PYTHON_BUNDLE_RECORDS))
    else:
        call, arrival, watermark = "validate_txn(`value`)", "", "CURRENT_WATERMARK(rowtime)"

    columns = ", ".join(f"v.{name} AS {name}" for name, _ in VALIDATED_FIELDS)
    t_env.execute_sql(f"""
      CREATE TEMPORARY VIEW validated AS
      SELECT {columns}, {arrival}r.`value` AS raw_value, r.`partition` AS src_partition,
             r.`offset` AS src_offset, r.kafka_ts AS src_timestamp,
             r.rowtime, r.proctime
      FROM (SELECT {call} AS v, * FROM {source}) AS r
    """)
    # Dedup state: per txn_id the count of valid copies so far (processing order) and the
    # first one's fingerprint and event time, kept by the process table function
    # dev.payline.flink.DedupFirstCopy (infra/flink-udfs, Java) and cleared by its event-time
    # timer once the watermark passes the first copy's event time plus the dedup horizon
    # (docs/contract.md#deduplication: the horizon is event time). Invalid records are keyed by
    # their source partition ('#' is in no txn_id) and touch no state. The function passes every
    # column through (`rowtime` stays the event-time attribute) except `proctime`, which is taken
    # anew.
    register_dedup_function(t_env)
    fingerprint = semantics.fingerprint_sql()
    t_env.execute_sql(f"""
      CREATE TEMPORARY VIEW keyed AS
      SELECT *,
             CASE WHEN error_class IS NULL THEN txn_id
                  ELSE CONCAT('#', CAST(src_partition AS STRING)) END AS dedup_key,
             CASE WHEN error_class IS NULL THEN {fingerprint} END AS fingerprint
      FROM validated
    """)
    t_env.execute_sql(f"""
      CREATE TEMPORARY VIEW seen AS
      SELECT *, PROCTIME() AS proctime
      FROM {DEDUP_FUNCTION}(input => TABLE keyed PARTITION BY dedup_key,
                            horizon_ms => CAST({cfg.contract.dedup_horizon_ms} AS BIGINT),
                            uid => '{DEDUP_UID}')
    """)
    # udfs.semantics.dedup_decision and is_late, as SQL (udfs.semantics.dedup_decision_sql,
    # udfs.windows.is_late_sql; the text is the plan a savepoint maps onto: keep it as it is).
    # The watermark a record is judged against is the highest CURRENT_WATERMARK seen so far on
    # its Kafka partition, kept in keyed state (the MAX OVER below). While the job runs, that is
    # CURRENT_WATERMARK itself (watermarks only rise). After a restore, CURRENT_WATERMARK
    # starts again from nothing, while the window aggregate restores its progress
    # (FLINK-24501) and silently drops what is behind it: a late record replayed before the
    # new watermark caught up was routed "on time" and then dropped, and so lost (found by
    # `payline soak`). The restored maximum routes it to payments.late-transactions.
    horizon = cfg.contract.dedup_horizon_ms
    late = windows.is_late_sql(windows.EVENT_TIME, "arrival_watermark", w,
                               et.allowed_lateness_ms, to_time=flink_instant_sql,
                               and_="\n" + " " * 23 + "AND ")
    t_env.execute_sql(f"""
      CREATE TEMPORARY VIEW routed AS
      SELECT *,
             CASE WHEN outcome = '{semantics.ACCEPTED}' AND {late}
                  THEN TRUE ELSE FALSE END AS late
      FROM (SELECT *,
                   CASE WHEN error_class IS NOT NULL THEN error_class
                        ELSE {semantics.dedup_decision_sql(
                          horizon, "copies", "first_event_time_ms",
                          semantics.same_fingerprint_sql("first_fingerprint"))}
                   END AS outcome,
                   MAX(current_watermark) OVER (
                     PARTITION BY src_partition ORDER BY proctime
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS arrival_watermark
            FROM (SELECT *, {watermark} AS current_watermark FROM seen))
    """)
    return "routed"


# --- what both jobs' main() share --------------------------------------------------------------


def parse_job_args(prog: str, description: str, argv) -> argparse.Namespace:
    """The jobs' flags: ``--conf``/``--set`` as for ``payline``; ``--bounded`` reads up to the
    offsets current at start and then finishes; ``--starting-offsets``; ``--group-id``."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--conf")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--bounded", action="store_true")
    p.add_argument("--starting-offsets", choices=("earliest", "committed"), default="committed")
    p.add_argument("--group-id", default=None)
    args = p.parse_args(argv)
    args.component = prog  # whose Kafka login the job uses in secure mode (runtime.kafka_clients)
    return args


def configure_tables(t_env, cfg, job_name: str) -> None:
    """The table settings of both jobs."""
    conf = t_env.get_config()
    conf.set("pipeline.name", job_name)
    conf.set("python.execution-mode", cfg.flink.python_execution_mode)
    conf.set("table.local-time-zone", "UTC")
    # every SQL operator gets a uid from its plan node ("<id>_<transformation>"), the same on
    # every submission of this program, so checkpoints and savepoints map back to it
    conf.set("table.exec.uid.generation", "ALWAYS")
    configure_rocksdb(conf, cfg)


def configure_rocksdb(conf, cfg) -> None:
    """RocksDB's compression of the job's state files (``flink.rocksdb_compression``), set per
    job, so no cluster restart is needed to change it. Each checkpoint flushes the memtables,
    and the flush and the compaction after it compete for the 2 cores with the records:
    uncompressed they cost less (bench/RESULTS.md, 2026-11-27, commits 92643ef and ec8f9c9).
    No effect on heap state."""
    conf.set("state.backend.rocksdb.compression.per.level",
             ROCKSDB_COMPRESSION[cfg.flink.rocksdb_compression])
