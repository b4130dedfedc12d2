"""The fraud rules in the batch layer: the replay of ``udfs.fraud`` over an interval's accepted
on-time transactions, the rule state carried from interval to interval, and the classification
of every alert by ``alert_id`` against what the stream raised (``udfs.reconcile``).
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import functions as F

from jobs.batch.recompute import between, read_raw, window_start_of
from runtime import times
from runtime.settings import contract_rules
from udfs import contract, fraud, reconcile, semantics

ALERT_OUTPUT = ("kind STRING, alert_id STRING, rule STRING, account_id STRING, "
                "txn_ids STRING, event_time_ms LONG, state STRING")
# what the silence chain needs of a classified alert (udfs.reconcile.follow_velocity_silence)
CHAIN_FIELDS = ["alert_id", "account_id", "event_time_ms", "in_stream", "in_batch",
                "reconciliation_class"]


# --- the replay (on the executors) ---------------------------------------------------------------


def groups_across_batches(frames, column: str):
    """(value, rows) per run of equal ``column`` values in frames sorted by it; a run may
    span Arrow batches."""
    current, rows = None, []
    for df in frames:
        names = list(df.columns)
        # column by column: DataFrame.to_dict("records") boxes value by value, about 3x slower
        for values in zip(*(df[n].tolist() for n in names), strict=True):
            r = dict(zip(names, values, strict=True))
            if rows and r[column] != current:
                yield current, rows
                rows = []
            current = r[column]
            rows.append(r)
    if rows:
        yield current, rows


def alerts_sorted(profiles: dict, params: fraud.FraudParams, states: dict[str, str],
                  end_ms: int, stream_velocity: frozenset = frozenset()):
    """Over accepted on-time rows sorted by account: every alert (udfs.fraud.alerts_of),
    continuing from the account's rule state at the start (``states``: JSON by account), and
    the account's rule state at ``end_ms`` (rows of kind "state"). Rows of kind "silenced":
    the VELOCITY alerts of ``stream_velocity`` (alert_ids the stream raised) that the batch
    computed too but held back by its silence only."""
    columns = ["kind", "alert_id", "rule", "account_id", "txn_ids", "event_time_ms", "state"]

    def run(frames):
        # deferred: pandas takes half a second to import, and this runs on the executors only
        # (the operator tool imports this job for its commands)
        import pandas as pd

        out = []
        for account, txns in groups_across_batches(frames, "account_id"):
            start = states.get(account)
            state = fraud.state_from_json(start) if start else fraud.RuleState()
            silenced = []
            for a in fraud.alerts_of(txns, {account: profiles.get(account, {})}, params,
                                     {account: state}, silenced):
                out.append(("alert", a.alert_id, a.rule, a.account_id, ",".join(a.txn_ids),
                            int(a.event_time_ms), None))
            out.extend(("silenced", a.alert_id, a.rule, a.account_id, None,
                        int(a.event_time_ms), None)
                       for a in silenced if a.alert_id in stream_velocity)
            at_end = state_at(state, end_ms, params)
            if at_end is not None:
                out.append(("state", None, None, account, None, None, at_end))
            if len(out) >= 10_000:
                yield pd.DataFrame(out, columns=columns)
                out = []
        yield pd.DataFrame(out, columns=columns)
    return run


def state_at(state: fraud.RuleState, end_ms: int, params: fraud.FraudParams) -> str | None:
    """An account's rule state as the next interval (from ``end_ms``) needs it, as JSON; None
    when nothing is left."""
    fraud.expire(state, end_ms, 0, params)
    return None if state.is_empty() else fraud.state_to_json(state)


# --- rule state and profiles ---------------------------------------------------------------------


def rule_state_path(cfg, at_ms: int):
    """The batch's fraud-rule state per account at an interval boundary: written by the run
    that ends there, read by the run that starts there."""
    return cfg.paths.data_dir / "reconciliation" / "rule_state" / f"at={at_ms}.parquet"


def read_rule_state(cfg, at_ms: int) -> dict[str, str] | None:
    path = rule_state_path(cfg, at_ms)
    if not path.is_file():
        return None
    table = pq.read_table(path)
    return dict(zip(table.column("account_id").to_pylist(), table.column("state").to_pylist(),
                    strict=True))


def write_rule_state(cfg, at_ms: int, states: dict[str, str]) -> None:
    path = rule_state_path(cfg, at_ms)
    path.parent.mkdir(parents=True, exist_ok=True)
    accounts = sorted(states)
    tmp = path.with_name("." + path.name)
    pq.write_table(pa.table({"account_id": pa.array(accounts, pa.string()),
                             "state": pa.array([states[a] for a in accounts], pa.string())}),
                   tmp, compression="zstd")
    os.replace(tmp, path)


def load_profiles(spark, cfg) -> dict[str, dict[int, fraud.Profile]]:
    """Every valid profile version of the raw accounts log, in (partition, offset) order
    (a small reference topic: collected to the driver and shipped with the rules)."""
    raw = read_raw(spark, cfg, cfg.topics.accounts, None)
    out: dict[str, dict[int, fraud.Profile]] = {}
    if raw is None:
        return out
    rules = contract_rules(cfg)
    for r in raw.orderBy("partition", "offset").select("key", "value").collect():
        v = contract.validate_profile(r["value"], r["key"], rules)
        if isinstance(v, contract.ValidProfile):
            p = v.profile
            out.setdefault(p["account_id"], {})[p["valid_from_ms"]] = fraud.Profile(
                p["valid_from_ms"], p["home_country"], p["risk_tier"])
        elif isinstance(v, contract.Tombstone) and r["key"] is not None:
            out.pop(bytes(r["key"]).decode("utf-8", "replace"), None)
    return out


# --- the interval's alerts, replayed and classified ---------------------------------------------


def in_windows_of(window_ms: int, start_ms: int, end_ms: int):
    """An alert's scope: its event time's window starts in [start, end)."""
    return between(window_start_of("event_time_ms", window_ms), start_ms, end_ms)


def replay(spark, cfg, wide, late_all, stream_alerts, states_in: dict[str, str] | None,
           start_ms: int, end_ms: int):
    """The rules replayed over the accepted transactions of ``wide`` (from
    jobs.batch.recompute) the stream did not send to late (late ones take part in no rule),
    continuing from ``states_in``. Returns (the replay's rows, ALERT_OUTPUT, cached; the rule
    state per account at ``end_ms``, JSON)."""
    w = cfg.event_time.window_ms
    profiles = load_profiles(spark, cfg)
    params = cfg.fraud.params()
    late_ids = late_all.select("txn_id").distinct()
    on_time = (wide.where(F.col("outcome") == semantics.ACCEPTED)
               .join(late_ids, "txn_id", "left_anti"))
    alert_scope = in_windows_of(w, start_ms, end_ms)
    stream_velocity = frozenset(r[0] for r in stream_alerts.where(
        alert_scope & (F.col("rule") == fraud.VELOCITY)).select("alert_id").distinct().collect())
    # by account: over ``wide``'s cache (partitioned so) adaptive execution can drop this
    # exchange when the anti-join is broadcast; kept, so that each account's rows meet in one
    # partition whatever the plan above it
    replayed = (on_time.select(*fraud.TXN_FIELDS).repartition("account_id")
                .sortWithinPartitions("account_id", "event_time_ms", "txn_id")
                .mapInPandas(alerts_sorted(profiles, params, states_in or {}, end_ms,
                                           stream_velocity),
                             ALERT_OUTPUT).cache())
    states_out = dict(replayed.where(F.col("kind") == "state")
                      .select("account_id", "state").collect())
    for account, text in (states_in or {}).items():  # accounts idle in this interval
        if account not in states_out:
            at_end = state_at(fraud.state_from_json(text), end_ms, params)
            if at_end is not None:
                states_out[account] = at_end
    return replayed, states_out


def classify(spark, cfg, replayed, stream_alerts, wide, late_all, start_ms: int,
             end_ms: int):
    """Every alert of the interval's windows on either side, by ``alert_id``, with its
    ``reconciliation_class`` (udfs.reconcile.classify_alert, then the silence chain of
    :func:`follow_velocity_silence`)."""
    w = cfg.event_time.window_ms
    params = cfg.fraud.params()
    alert_scope = in_windows_of(w, start_ms, end_ms)
    batch_alerts = replayed.where(F.col("kind") == "alert")
    cross_ids = wide.where("cross_partition").select("txn_id").distinct()
    b = batch_alerts.where(alert_scope).select("alert_id", "rule", "account_id", "txn_ids",
                                               "event_time_ms", F.lit(True).alias("in_batch"))
    s = (stream_alerts.where(alert_scope).select("alert_id", F.col("rule").alias("s_rule"),
                                                 F.col("account_id").alias("s_account"),
                                                 F.col("event_time_ms").alias("s_time"))
         .distinct().withColumn("in_stream", F.lit(True)))
    alerts = (b.join(s, "alert_id", "full_outer")
              .select("alert_id", F.coalesce("rule", "s_rule").alias("rule"),
                      F.coalesce("account_id", "s_account").alias("account_id"), "txn_ids",
                      F.coalesce("event_time_ms", "s_time").alias("event_time_ms"),
                      F.coalesce("in_batch", F.lit(False)).alias("in_batch"),
                      F.coalesce("in_stream", F.lit(False)).alias("in_stream")))
    dependent = (alerts.select("alert_id", F.explode(F.split("txn_ids", ",")).alias("txn_id"))
                 .join(cross_ids, "txn_id").select("alert_id").distinct()
                 .withColumn("order_dependent", F.lit(True)))
    # a late transaction of the account within the rules' reach (look-back and silence), or
    # one the fraud job named as come behind its watermark (an order the stream could not keep:
    # jobs/streaming/fraud.py, state ``behind``)
    behind_ids = (stream_alerts.select(F.explode(f"details.{fraud.BEHIND_KEY}")
                                       .alias("txn_id")).distinct())
    behind = (wide.where(F.col("outcome") == semantics.ACCEPTED)
              .select("txn_id", "account_id", "event_time_ms").join(behind_ids, "txn_id"))
    explaining = (late_all.select("account_id", "event_time_ms")
                  .unionByName(behind.select("account_id", "event_time_ms")))
    late_near = (alerts.select("alert_id", "account_id", "event_time_ms").alias("a")
                 .join(explaining.select("account_id", F.col("event_time_ms").alias("late_ms"))
                       .alias("l"), "account_id")
                 .where(F.abs(F.col("a.event_time_ms") - F.col("late_ms")) <= params.reach_ms)
                 .select("alert_id").distinct().withColumn("late_dependent", F.lit(True)))
    alerts = (alerts.join(dependent, "alert_id", "left").join(late_near, "alert_id", "left")
              .fillna({"order_dependent": False, "late_dependent": False}))
    classify_alert = F.udf(lambda s_, b_, o_, l_: reconcile.classify_alert(s_, b_, o_, l_),
                           "string")
    alerts = alerts.withColumn("reconciliation_class", classify_alert(
        "in_stream", "in_batch", "order_dependent", "late_dependent")).cache()
    return follow_velocity_silence(spark, cfg, alerts, replayed, start_ms)


def follow_velocity_silence(spark, cfg, alerts, replayed, start_ms: int):
    """``alerts`` with the VELOCITY differences that follow through the silence from an
    explained one (udfs.reconcile.follow_velocity_silence) classed as that one. The chain may
    start in the previous interval: its run's classes are read from its results."""
    velocity = alerts.where(F.col("rule") == fraud.VELOCITY)
    accounts = [r[0] for r in velocity.where(
        F.col("reconciliation_class").isin(*reconcile.UNEXPLAINED))
        .select("account_id").distinct().collect()]
    if not accounts:
        return alerts
    silenced = {r[0] for r in replayed.where(F.col("kind") == "silenced")
                .where(F.col("account_id").isin(accounts)).select("alert_id").collect()}
    by_account: dict[str, list[dict]] = {}
    for r in velocity.where(F.col("account_id").isin(accounts)).select(*CHAIN_FIELDS).collect():
        by_account.setdefault(r["account_id"], []).append(
            {**r.asDict(), "silenced": r["alert_id"] in silenced})
    for r in previous_velocity_alerts(cfg, start_ms, accounts):
        by_account.setdefault(r["account_id"], []).append({**r, "silenced": False})
    silence_ms = cfg.fraud.params().velocity_silence_ms
    found = {}
    for rows in by_account.values():
        found.update(reconcile.follow_velocity_silence(rows, silence_ms))
    if not found:
        return alerts
    chained = spark.createDataFrame(list(found.items()),
                                    "alert_id STRING, chained_class STRING")
    return (alerts.join(F.broadcast(chained), "alert_id", "left")
            .withColumn("reconciliation_class",
                        F.coalesce("chained_class", "reconciliation_class"))
            .drop("chained_class"))


def previous_velocity_alerts(cfg, start_ms: int, accounts: list[str]) -> list[dict]:
    """The VELOCITY alerts of ``accounts`` as the run of the interval that ended at
    ``start_ms`` classed them (none when that run left no results)."""
    root = cfg.paths.data_dir / "reconciliation"
    paths = [p / "alerts.parquet" for p in root.glob(f"interval=*_{times.iso_for_path(start_ms)}")
             if (p / "alerts.parquet").is_file()]
    if not paths:
        return []
    # deferred: pyarrow.dataset imports pandas (half a second), and only a VELOCITY chain
    # that reaches into the previous interval reads it
    import pyarrow.dataset as ds

    table = ds.dataset(paths, format="parquet").to_table(
        columns=CHAIN_FIELDS, filter=(ds.field("rule") == fraud.VELOCITY)
        & ds.field("account_id").isin(accounts))
    return table.to_pylist()
