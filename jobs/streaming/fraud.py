"""The fraud job: the rules of ``payments.alerts`` per account, with keyed state and event-time
timers, alerts at low latency.

Reads ``payments.transactions`` and the compacted ``payments.accounts``; writes
``payments.alerts`` (at-least-once, each alert sent at once; ``alert_id`` is deterministic, so
consumers drop redelivered copies by it) and, exactly once, bad ``payments.accounts`` records to
``payments.dlq``. Semantics: ``udfs.fraud`` (docs/contract.md#account-profiles, #rules).

Why it reads the raw topic and not the transactions job's output: the only accepted stream
would be an exactly-once topic, visible to ``read_committed`` readers one checkpoint (5 s)
later, far above the alert-latency budget. So this job decides accepted / duplicate / late with
the same SQL as the transactions job (``jobs.streaming.txn_sql``, from ``udfs/``) and keeps
its own dedup state.

Shape:

    transactions: Kafka -> validate_txn (Python UDF) -> dedup (process table function) -> accepted
                  (late ones only remembered: they take part in no rule)
    accounts:     Kafka -> validate_profile (Python UDF) -> profile versions | DLQ rows
      -> one stream of (account_id, record)
         -> LARGE_AMOUNT (SQL, udfs.fraud.large_amount_sql) on arrival -> alerts sink (on arrival)
         -> keyed by account_id -> evaluate-rules (Python, keyed state, timers)
           buffered until the watermark passes each txn:
             SMALL_THEN_LARGE, FOREIGN_HIGH_RISK (high)     -> main output  -> alerts sink (high)
             VELOCITY (medium)                              -> side output  -> alerts sink (medium)
           bad profiles                                     -> side output  -> DLQ (exactly-once)

Priority: high-severity alerts never queue behind medium ones. They are emitted first for a
record or timer, and they leave through their own Kafka sink (own producer, own buffers), so a
burst of VELOCITY alerts fills only the medium sink's queue. LARGE_AMOUNT, the one rule that
needs no history, does not pass the keyed Python operator at all: the JVM picks its
transactions out before the stream is keyed and sends the alerts through a third sink, so they
wait neither behind the operator's input queue nor behind its timers (bench/RESULTS.md,
2026-11-27 07:00). The operator sends a second copy (same alert_id) only when transactions
behind its watermark are near, to name them in ``details``.

Keyed state per account (typed, no pickles), and its way out:
  ``pending_slots``  transactions waiting for the watermark, by rule-timer slot
               -> each slot drained and removed by its rule timer (``pending``, the one list
                  of earlier versions, is drained by restored timers that find no slot)
  ``rules``    one value: the ordered rules' memory (the last look-back of transactions, the
               VELOCITY silence) and the profile versions
               -> the memory is emptied by an idle timer (``FraudParams.idle_after_ms`` after
                  the last transaction) once no on-time transaction can reach it; superseded
                  profile versions are dropped on every timer; the current one stays until a
                  newer one or a tombstone, as on the compacted topic itself
  ``behind``   transactions that came behind this job's watermark: late ones, and on-time
               ones whose turn had passed (a partition idle for 10 s no longer holds the
               watermark back, so when it wakes its records can be behind it: they meet the
               rules after later ones). Alerts within the rules' reach of one carry its id in
               ``details.behind_watermark_txn_ids``; the reconciliation explains by them what
               the batch replay, in true event-time order, decides differently.
               -> pruned by the idle timer, empty when the account's memory is
Python state access is the hot path, so the rules' memory is one value (one read, one write
per timer) and rule timers sit on a grid (``fraud.timer_coalesce_ms``).

Submit (``payline submit fraud`` wraps this):

    FLINK_CONF_DIR=run/flink/conf .venv/lib/python3.11/site-packages/pyflink/bin/flink run -d \\
        --jarfile infra/flink/target/lib/flink-sql-connector-kafka-5.0.0-2.2.jar \\
        --python jobs/streaming/fraud.py [--conf FILE] [--set section.key=value ...] \\
        [--bounded] [--starting-offsets earliest|committed] [--group-id ID]

It is longer than the project's other modules on purpose: it is one job, and its rules operator
(:class:`EvaluateRules`: the typed state, its timers and its restore) is one cohesive thing
that reads best whole, beside the pipeline that feeds it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time

from pyflink.common import Row, Types
from pyflink.datastream import (
    CheckpointingMode,
    KeyedProcessFunction,
    OutputTag,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from pyflink.datastream.data_stream import KeyedStream
from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor
from pyflink.java_gateway import get_gateway
from pyflink.table import DataTypes, StreamTableEnvironment
from pyflink.table.udf import ScalarFunction, udf

from jobs.streaming.txn_sql import (
    add_udf_jar,
    configure_tables,
    create_routed_view,
    epoch_ms_sql,
    json_epoch_ms_sql,
    kafka_source_options,
    parse_job_args,
    rowtime_sql,
    sink_ddl,
    source_ddl,
    sql_interval,
)
from runtime import config as config_mod
from runtime import handoff
from runtime.registry import ACCOUNTS_TABLE, FRAUD
from runtime.settings import contract_rules
from udfs import fraud, semantics
from udfs.contract import Invalid, Rules, Tombstone, validate_profile

JOB_NAME = FRAUD.name

# --- the accounts topic --------------------------------------------------------------------------

PROFILE_FIELDS = [
    ("error_class", DataTypes.STRING()), ("error", DataTypes.STRING()),
    ("raw_text", DataTypes.STRING()), ("raw_encoding", DataTypes.STRING()),
    ("deleted", DataTypes.BOOLEAN()), ("account_id", DataTypes.STRING()),
    ("home_country", DataTypes.STRING()), ("risk_tier", DataTypes.STRING()),
    ("valid_from_ms", DataTypes.BIGINT()),
]


class ValidateProfile(ScalarFunction):
    """udfs.contract.validate_profile as a SQL function (the accounts topic is small: one
    Python call per profile costs nothing)."""

    def __init__(self, rules: Rules):
        self.rules = rules

    def eval(self, key, value):
        result = validate_profile(value, key, self.rules)
        if isinstance(result, Tombstone):
            account = (key or b"").decode("utf-8", "replace")
            return Row(None, None, None, None, True, account, None, None, None)
        if isinstance(result, Invalid):
            text, encoding = semantics.raw_text(value)
            return Row(result.error_class, result.error, text, encoding, False, None, None,
                       None, None)
        p = result.profile
        return Row(None, None, None, None, False, p["account_id"], p["home_country"],
                   p["risk_tier"], p["valid_from_ms"])


def accounts_ddl(cfg, args) -> str:
    """The raw accounts table, read whole from the earliest offset (a compacted reference
    topic). Its row time is the profile's valid_from_ms, with the transactions' watermark
    rules: until the topic has been read to its end and has gone idle, its watermark holds
    the transactions' back, so no rule runs before the profiles it needs are in. Later
    updates never hold it back (an idle input that wakes up behind the watermark does not
    count until it catches up)."""
    valid_from = json_epoch_ms_sql("valid_from_ms")
    startup = "'scan.startup.mode' = 'earliest-offset',"
    return f"""
    CREATE TEMPORARY TABLE {ACCOUNTS_TABLE} (
      `key` BYTES,
      `value` BYTES,
      `partition` INT METADATA VIRTUAL,
      `offset` BIGINT METADATA VIRTUAL,
      `kafka_ts` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
      `rowtime` AS {rowtime_sql(valid_from, cfg)},
      WATERMARK FOR `rowtime` AS `rowtime` - {sql_interval(cfg.event_time.out_of_orderness_ms)}
    ) WITH ({kafka_source_options(cfg, cfg.topics.accounts, args, startup)}
      'key.format' = 'raw',
      'key.fields' = 'key',
      'value.format' = 'raw',
      'value.fields-include' = 'EXCEPT_KEY'
    )
    """


# --- the rules operator --------------------------------------------------------------------------

SINK_ROW = Types.ROW_NAMED(["key", "value"], [Types.STRING(), Types.STRING()])
PENDING_FIELDS = ("txn_id", "kind", "amount_cents", "currency", "event_time_ms", "country")
# The rules' state is String-typed: JSON with the layouts below. PyFlink's thread mode keeps a
# Row or List state value as a pickled byte array (pyflink/fn_execution/embedded/java_utils.py:
# only basic types, arrays and maps get a Java serializer), so a Row-typed state would be a
# Python pickle in every checkpoint. A String is typed on the Java side, readable without
# Python (e.g. by the State Processor API), and its layout is documented here:
#   pending_slots  slot (LONG) -> '[[txn_id, kind, amount_cents, currency, event_time_ms,
#                                    country], ...]'
#   rules          '{"silent_until_ms": .., "recent": [[event_time_ms, txn_id, kind,
#                    amount_cents], ..], "profiles": [[valid_from_ms, home_country,
#                    risk_tier], ..]}'
#   behind         txn_id (STRING) -> event_time_ms (LONG)
# Earlier versions kept "pending" (a list of PENDING_ROW) and "account" (ACCOUNT_ROW): both are
# still read, once, when restored from their savepoints.
PENDING_ROW = Types.ROW_NAMED(
    list(PENDING_FIELDS),
    [Types.STRING(), Types.STRING(), Types.LONG(), Types.STRING(), Types.LONG(),
     Types.STRING()])
RECENT_ROW = Types.ROW_NAMED(["event_time_ms", "txn_id", "kind", "amount_cents"],
                             [Types.LONG(), Types.STRING(), Types.STRING(), Types.LONG()])
VERSION_ROW = Types.ROW_NAMED(["valid_from_ms", "home_country", "risk_tier"],
                              [Types.LONG(), Types.STRING(), Types.STRING()])
ACCOUNT_ROW = Types.ROW_NAMED(["silent_until_ms", "recent", "profiles"],
                              [Types.LONG(), Types.LIST(RECENT_ROW), Types.LIST(VERSION_ROW)])

TXN, LATE_TXN, PROFILE, TOMBSTONE, BAD_PROFILE = "T", "L", "P", "X", "D"
# the columns of the operator's input, in order (build_pipeline's rule_input), with their types
RULE_INPUT_COLUMNS = (
    ("rec", Types.STRING()), ("account_id", Types.STRING()), ("txn_id", Types.STRING()),
    ("kind", Types.STRING()), ("amount_cents", Types.LONG()), ("currency", Types.STRING()),
    ("event_time_ms", Types.LONG()), ("country", Types.STRING()),
    ("home_country", Types.STRING()), ("risk_tier", Types.STRING()),
    ("dlq_value", Types.STRING()))
RULE_INPUT = tuple(name for name, _ in RULE_INPUT_COLUMNS)
RULE_INPUT_TYPES = [t for _, t in RULE_INPUT_COLUMNS]


class EvaluateRules(KeyedProcessFunction):
    """Per account: LARGE_AMOUNT on arrival; the ordered rules (``udfs.fraud.step``) when the
    watermark passes each transaction, in (event_time_ms, txn_id) order. ``clock`` gives
    detected_at_ms (the only wall-clock value; it decides nothing)."""

    def __init__(self, params: fraud.FraudParams, window_ms: int, coalesce_ms: int,
                 tags: dict, clock=time.time):
        self.params = params
        self.window_ms = window_ms
        self.coalesce_ms = coalesce_ms
        self.tags = tags
        self.clock = clock

    def open(self, runtime_context: RuntimeContext):
        # transactions waiting for the watermark, by the rule timer that drains them (one
        # grid slot each): a timer reads its own slot, not every waiting transaction, so an
        # account whose watermark is held back (a partition behind the others) costs linear
        # time, not quadratic, when it catches up
        self.slots = runtime_context.get_map_state(
            MapStateDescriptor("pending_slots", Types.LONG(), Types.STRING()))
        # Everything the ordered rules remember, in one value: one read and one write per
        # timer instead of one per piece (Python state access is the job's hot path).
        self.rules = runtime_context.get_state(ValueStateDescriptor("rules", Types.STRING()))
        # the layouts of earlier versions (pickled rows): read only when restored from them
        self.pending = runtime_context.get_list_state(
            ListStateDescriptor("pending", PENDING_ROW))
        self.account = runtime_context.get_state(ValueStateDescriptor("account", ACCOUNT_ROW))
        # transactions that reached this job behind its watermark (txn_id -> event time): late
        # ones (no rule) and ones it could not put in event-time order (idleness let the
        # watermark pass them). Alerts within the rules' reach of one name it, so the batch
        # layer can tell an order the stream could not keep from a loss. Pruned by the idle
        # timer; empty when the account is.
        self.behind = runtime_context.get_map_state(
            MapStateDescriptor("behind", Types.STRING(), Types.LONG()))
        group = runtime_context.get_metrics_group().add_group("payline")
        self.alerts = {rule: group.add_group("rule", rule).counter("alerts")
                       for rule in fraud.RULES}
        self.profile_versions = group.counter("profile_versions")
        self.behind_watermark = group.counter("behind_watermark")
        self.bad_profiles = group.counter("bad_profiles")

    def _grid(self, t: int) -> int:
        """Rule timers sit on the coalescing grid; idle timers 1 ms after it, which tells
        them apart."""
        g = self.coalesce_ms
        return -(-t // g) * g

    def _arm_idle_timer(self, ctx, watermark: int) -> None:
        # the memory of transactions up to the watermark is gone idle_after_ms later; one
        # still newer re-arms the timer when it fires
        ctx.timer_service().register_event_time_timer(
            self._grid(watermark + self.params.idle_after_ms(self.window_ms)) + 1)

    def _load(self) -> tuple[fraud.RuleState, dict[int, fraud.Profile]]:
        text = self.rules.value()
        if text is not None:
            d = json.loads(text)
            return (fraud.RuleState([tuple(r) for r in d["recent"]], d["silent_until_ms"]),
                    {v[0]: fraud.Profile(*v) for v in d["profiles"]})
        acc = self.account.value()  # restored from a version before the String layout
        if acc is None:
            return fraud.RuleState(), {}
        self.account.clear()
        return (fraud.RuleState([tuple(r) for r in acc[1]], acc[0]),
                {v[0]: fraud.Profile(*v) for v in acc[2]})

    def _store(self, state: fraud.RuleState, versions: dict[int, fraud.Profile]) -> None:
        if state.is_empty() and not versions:
            self.rules.clear()
            return
        self.rules.update(json.dumps(
            {"silent_until_ms": state.silent_until_ms, "recent": state.recent,
             "profiles": [[v.valid_from_ms, v.home_country, v.risk_tier]
                          for v in versions.values()]}, separators=(",", ":")))

    def _behind_near(self, alerts):
        """The alerts, those within reach of a transaction that came behind the watermark
        naming it in their details (fraud.BEHIND_KEY)."""
        if not alerts or self.behind.is_empty():
            return alerts
        behind, reach = list(self.behind.items()), self.params.reach_ms
        out = []
        for a in alerts:
            near = sorted(t for t, ms in behind if abs(ms - a.event_time_ms) <= reach)
            out.append(dataclasses.replace(a, details={**a.details, fraud.BEHIND_KEY: near})
                       if near else a)
        return out

    def _emit(self, alerts):
        for alert in alerts:
            self.alerts[alert.rule].inc()
        yield from self._send(self._behind_near(alerts))

    def _send(self, alerts):
        now = int(self.clock() * 1000)
        for alert in sorted(alerts, key=lambda a: a.severity != fraud.HIGH):
            out = Row(alert.account_id, alert.record(now))
            if alert.severity == fraud.HIGH:
                yield out
            else:
                yield self.tags["medium"], out

    def process_element(self, row, ctx: KeyedProcessFunction.Context):
        # positional access (RULE_INPUT order): a Row looks names up one by one
        rec = row[0]
        if rec == LATE_TXN:  # takes part in no rule; remembered for the alerts near it
            self.behind_watermark.inc()
            self.behind.put(row[2], row[6])
            ctx.timer_service().register_event_time_timer(
                self._grid(row[6] + self.params.idle_after_ms(self.window_ms)) + 1)
        elif rec == TXN:
            txn_id, kind, amount, currency, t, country = row[2:8]
            if t <= ctx.timer_service().current_watermark():
                # its turn has passed: it meets the rules after transactions later than it
                self.behind_watermark.inc()
                self.behind.put(txn_id, t)
            if amount >= self.params.large_amount_cents:
                # sent already, from SQL (large_amount_alerts); a second copy, same alert_id,
                # only to name transactions behind the watermark near it (for the
                # reconciliation's explanations, which read every copy)
                alert = fraud.large_amount(
                    {"txn_id": txn_id, "account_id": row[1], "amount_cents": amount,
                     "currency": currency, "event_time_ms": t}, self.params)
                self.alerts[fraud.LARGE_AMOUNT].inc()
                [named] = self._behind_near([alert])
                if named is not alert:
                    yield from self._send([named])
            slot = self._grid(t)
            waiting = self.slots.get(slot)
            entry = json.dumps([txn_id, kind, amount, currency, t, country],
                               separators=(",", ":"))
            # appended as text: the slot is parsed only when its timer fires
            self.slots.put(slot, f"[{entry}]" if waiting is None else f"{waiting[:-1]},{entry}]")
            ctx.timer_service().register_event_time_timer(slot)
        elif rec == PROFILE:
            self.profile_versions.inc()
            state, versions = self._load()
            versions[row[6]] = fraud.Profile(row[6], row[8], row[9])
            self._store(state, versions)
        elif rec == TOMBSTONE:
            state, _ = self._load()
            self._store(state, {})
        else:
            self.bad_profiles.inc()
            yield self.tags["dlq"], Row(None, row[10])

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        # Everything is decided as of this timer's own event time, not the watermark: when the
        # watermark jumps, the timers up to it fire one by one in order, and the slots of the
        # later ones still need the memory that the jump alone would expire.
        watermark = timestamp
        state, versions = self._load()
        alerts = []
        if timestamp % self.coalesce_ms == 0:  # a rule timer: its slot's turn
            account = ctx.get_current_key()
            was_idle = state.is_empty()
            slot = self.slots.get(timestamp)
            if slot is not None:
                # every transaction of the slot is at or before its timer; later slots have
                # their own timers, which fire after this one
                self.slots.remove(timestamp)
                alerts, _ = fraud.advance(
                    state, [dict(zip(PENDING_FIELDS, p, strict=True), account_id=account)
                            for p in json.loads(slot)],
                    versions, timestamp, self.window_ms, self.params)
            else:  # a timer restored with the earlier layout: drain its list as it did
                pending = [dict(zip(PENDING_FIELDS, p, strict=True), account_id=account)
                           for p in self.pending.get()]
                alerts, waiting = fraud.advance(state, pending, versions, watermark,
                                                self.window_ms, self.params)
                if len(waiting) < len(pending):
                    if waiting:
                        self.pending.update([Row(*(p[n] for n in PENDING_FIELDS))
                                             for p in waiting])
                    else:
                        self.pending.clear()
            if was_idle and not state.is_empty():  # one idle timer per active spell
                self._arm_idle_timer(ctx, watermark)
        else:  # the idle timer: empty now, or again later
            fraud.expire(state, watermark, self.window_ms, self.params)
            last = fraud.last_event_ms(state, self.params)
            kept = [] if last is None else [last]  # event times of what is still remembered
            if not self.behind.is_empty():
                horizon = watermark - self.params.idle_after_ms(self.window_ms)
                for t, ms in list(self.behind.items()):
                    if ms < horizon:
                        self.behind.remove(t)
                    else:
                        kept.append(ms)
            if kept:
                # again once the newest of it can go, not one idle period after this timer:
                # the idle timer of a late transaction from years back would otherwise walk
                # to the present one idle period (2 min) at a time, millions of timers that
                # hold the operator for minutes (found by bench/fraud_latency.py)
                self._arm_idle_timer(ctx, max(kept))
        for v in fraud.superseded_versions(versions, watermark, self.window_ms):
            del versions[v]
        self._store(state, versions)
        yield from self._emit(alerts)


# --- wiring --------------------------------------------------------------------------------------


def key_by_account(t_env, rule_input):
    """``rule_input`` as a stream keyed by account_id, with no Python on the way, and the
    ``(account_id, record)`` stream before it is keyed.

    PyFlink's ``key_by`` puts a Python operator in front of the keyed one that only turns each
    record into ``Row(key, record)`` (the shape its keyed operators take), then keys that by
    field 0 in the JVM. On this job it was a second Python call per record, 50-65 % busy. Here
    SQL builds ``(account_id, record)`` and the JVM keys it with the same key selector
    (``KeyByKeySelector``) and key type (``ROW<STRING>``) as ``key_by(..., Types.STRING())``,
    so the keyed state and timers are laid out as before. The keyed Python operator needs
    a ``RowTypeInfo`` input, which the typed ``to_append_stream`` gives (``to_data_stream``
    gives the table's external type)."""
    record_type = Types.ROW(RULE_INPUT_TYPES)
    t_env.create_temporary_view("rule_input", rule_input)
    pairs = t_env.sql_query(f"SELECT account_id, ROW({', '.join(RULE_INPUT)}) FROM rule_input")
    stream = t_env.to_append_stream(pairs, Types.ROW([Types.STRING(), record_type]))
    jvm = get_gateway().jvm
    keyed = stream._j_data_stream.keyBy(
        jvm.org.apache.flink.streaming.api.functions.python.KeyByKeySelector(),
        Types.ROW([Types.STRING()]).get_java_type_info())
    return KeyedStream(keyed, record_type, stream), stream


def large_amount_alerts(t_env, pairs, cfg):
    """LARGE_AMOUNT, from the ``(account_id, record)`` pairs before they are keyed, in SQL
    (``udfs.fraud.large_amount_sql``): the JVM picks the accepted on-time transactions at or
    above the threshold out of the stream and builds their alerts, so they wait neither in
    the keyed operator's input queue nor behind its timers (1 % of the transactions; the rest
    never meet Python on this path)."""
    t_env.create_temporary_view("rule_pairs", t_env.from_data_stream(pairs))
    columns = ", ".join(f"f1.f{RULE_INPUT.index(n)} AS {n}" for n in
                        ("rec", "txn_id", "account_id", "amount_cents", "currency",
                         "event_time_ms"))
    condition, record = fraud.large_amount_sql(cfg.fraud.params(),
                                               epoch_ms_sql("CURRENT_TIMESTAMP"))
    return t_env.sql_query(f"""
      SELECT account_id AS key, {record} AS `value`
      FROM (SELECT {columns} FROM rule_pairs)
      WHERE rec = '{TXN}' AND {condition}
    """)


def build_pipeline(t_env, transactions: str, accounts: str, sinks: dict[str, str], cfg):
    """Wire the rules from the raw ``transactions`` and ``accounts`` tables into the ``sinks``
    tables (by output: high, medium, dlq, on_arrival). Creates no connector; returns the
    statement set."""
    routed = create_routed_view(t_env, transactions, cfg)
    t_env.create_temporary_function("validate_profile", udf(
        ValidateProfile(contract_rules(cfg)),
        result_type=DataTypes.ROW([DataTypes.FIELD(n, t) for n, t in PROFILE_FIELDS])))
    fields = ", ".join(f"v.{name} AS {name}" for name, _ in PROFILE_FIELDS)
    t_env.execute_sql(f"""
      CREATE TEMPORARY VIEW profiles AS
      SELECT {fields}, r.`partition` AS src_partition, r.`offset` AS src_offset,
             r.kafka_ts AS src_timestamp, r.rowtime
      FROM (SELECT validate_profile(`key`, `value`) AS v, * FROM {accounts}) AS r
    """)
    null = "CAST(NULL AS STRING)"
    dlq = f"""JSON_OBJECT(
               'error_class' VALUE error_class, 'error' VALUE error, 'raw' VALUE raw_text,
               'raw_encoding' VALUE raw_encoding, 'source_topic' VALUE '{cfg.topics.accounts}',
               'source_partition' VALUE src_partition, 'source_offset' VALUE src_offset,
               'source_timestamp_ms' VALUE {epoch_ms_sql("src_timestamp")})"""
    # One stream for the keyed operator: accepted on-time transactions, profile versions,
    # tombstones and bad profiles (one to_data_stream: each would read the topics again).
    rule_input = t_env.sql_query(f"""
      SELECT CASE WHEN late THEN '{LATE_TXN}' ELSE '{TXN}' END AS rec, account_id, txn_id,
             kind, amount_cents, currency, event_time_ms,
             country, {null} AS home_country, {null} AS risk_tier, {null} AS dlq_value
      FROM {routed} WHERE outcome = '{semantics.ACCEPTED}'
      UNION ALL
      SELECT CASE WHEN error_class IS NOT NULL THEN '{BAD_PROFILE}'
                  WHEN deleted THEN '{TOMBSTONE}' ELSE '{PROFILE}' END,
             CASE WHEN error_class IS NOT NULL
                  THEN CONCAT('#', CAST(src_partition AS STRING)) ELSE account_id END,
             {null}, {null}, CAST(NULL AS BIGINT), {null}, valid_from_ms, {null},
             home_country, risk_tier,
             CASE WHEN error_class IS NOT NULL THEN {dlq} END
      FROM profiles
    """)
    assert tuple(rule_input.get_schema().get_field_names()) == RULE_INPUT
    tags = {"medium": OutputTag("medium", SINK_ROW), "dlq": OutputTag("dlq", SINK_ROW)}
    keyed, pairs = key_by_account(t_env, rule_input)
    high = (keyed
            .process(EvaluateRules(cfg.fraud.params(), cfg.event_time.window_ms,
                                   cfg.fraud.timer_coalesce_ms, tags), output_type=SINK_ROW)
            .name("evaluate-rules").uid("evaluate-rules"))
    statements = t_env.create_statement_set()
    statements.add_insert(sinks["high"], t_env.from_data_stream(high))
    statements.add_insert(sinks["medium"], t_env.from_data_stream(
        high.get_side_output(tags["medium"])))
    statements.add_insert(sinks["dlq"], t_env.from_data_stream(
        high.get_side_output(tags["dlq"])))
    # last: the plan nodes above keep their ids, and with them their uids
    statements.add_insert(sinks["on_arrival"], large_amount_alerts(t_env, pairs, cfg))
    return statements


def create_sinks(t_env, cfg) -> dict[str, str]:
    """Three at-least-once alert sinks (the keyed operator's one per severity, so high never
    waits behind medium, and LARGE_AMOUNT's on arrival) and the exactly-once DLQ sink for bad
    profiles; returns their table names by output."""
    columns = "key STRING, `value` STRING"
    # high and on arrival: each alert at once (Kafka 4's producer waits 5 ms); medium: batched
    # a little (fraud.medium_alerts_linger_ms), fewer requests for the broker on the same
    # machine
    linger = {"alerts_high": 0, "alerts_medium": cfg.fraud.medium_alerts_linger_ms,
              "alerts_on_arrival": 0}
    for name, ms in linger.items():
        t_env.execute_sql(sink_ddl(cfg, JOB_NAME, name, cfg.topics.alerts, columns, "key",
                                   "raw", exactly_once=False,
                                   extra=f"'properties.linger.ms' = '{ms}',"))
    t_env.execute_sql(sink_ddl(cfg, JOB_NAME, "profile_dead_letters", cfg.topics.dlq, columns,
                               "key", "raw"))
    return {"high": "alerts_high", "medium": "alerts_medium", "dlq": "profile_dead_letters",
            "on_arrival": "alerts_on_arrival"}


def configure_fault_tolerance(env, cfg) -> None:
    # exactly-once checkpoints keep the keyed state and the DLQ consistent; the alert sinks
    # are at-least-once by choice (latency), made idempotent by alert_id
    env.enable_checkpointing(cfg.flink.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)


def main(argv=None) -> None:
    args = parse_job_args("fraud", __doc__.split("\n")[0],
                          argv if argv is not None else sys.argv[1:])
    cfg = config_mod.load(args.conf, args.set)
    args.group_id = args.group_id or cfg.fraud.group_id
    env = StreamExecutionEnvironment.get_execution_environment()
    configure_fault_tolerance(env, cfg)
    env.set_buffer_timeout(cfg.fraud.buffer_timeout_ms)
    add_udf_jar(env, cfg)
    t_env = StreamTableEnvironment.create(env)
    configure_tables(t_env, cfg, JOB_NAME)
    t_env.execute_sql(source_ddl(cfg, args))
    t_env.execute_sql(accounts_ddl(cfg, args))
    sinks = create_sinks(t_env, cfg)
    statements = build_pipeline(t_env, "raw_transactions", ACCOUNTS_TABLE, sinks, cfg)
    statements.attach_as_datastream()
    handoff.execute(env, JOB_NAME)  # env.execute, or later under a prepared upgrade


if __name__ == "__main__":
    main()
