"""JVM-only baseline for the transactions benchmark: the same Kafka source, JSON parse, validity
filter and tumbling per-(account, currency) aggregate as the transactions job, written as plain
Flink SQL with an exactly-once Kafka sink. This Python file only builds the SQL; no Python runs
per record. It does not dedup, route late data or keep a DLQ: it is the floor the real job is
compared against, not a second implementation of the contract.

    FLINK_CONF_DIR=run/flink/conf .venv/lib/python3.11/site-packages/pyflink/bin/flink run -d \\
        --jarfile infra/flink/target/lib/flink-sql-connector-kafka-5.0.0-2.2.jar \\
        --python bench/baseline_job.py --source TOPIC --sink TOPIC [--conf FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyflink.table import EnvironmentSettings, TableEnvironment  # noqa: E402

from jobs.streaming.txn_sql import configure_rocksdb  # noqa: E402
from runtime import config as config_mod  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="baseline_job")
    p.add_argument("--conf")
    p.add_argument("--source", required=True)
    p.add_argument("--sink", required=True)
    p.add_argument("--group-id", default="payline-bench-baseline")
    args = p.parse_args(argv)
    cfg = config_mod.load(args.conf, [])
    t = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    c = t.get_config()
    c.set("pipeline.name", "payline-bench-baseline")
    c.set("table.local-time-zone", "UTC")
    c.set("execution.checkpointing.interval", f"{cfg.flink.checkpoint_interval_ms} ms")
    c.set("execution.checkpointing.mode", "EXACTLY_ONCE")
    # the same state settings as the transactions job, so the ratio compares like with like
    configure_rocksdb(c, cfg)
    w, ooo = cfg.event_time.window_ms // 1000, cfg.event_time.out_of_orderness_ms // 1000
    currencies = ", ".join(f"'{c}'" for c in cfg.contract.currencies)
    t.execute_sql(f"""
      CREATE TEMPORARY TABLE src (
        `value` STRING,
        event_time_ms AS TRY_CAST(JSON_VALUE(`value`, '$.event_time_ms') AS BIGINT),
        rowtime AS TO_TIMESTAMP_LTZ(
          COALESCE(TRY_CAST(JSON_VALUE(`value`, '$.event_time_ms') AS BIGINT), 0), 3),
        WATERMARK FOR rowtime AS rowtime - INTERVAL '{ooo}' SECOND
      ) WITH (
        'connector' = 'kafka', 'topic' = '{args.source}',
        'properties.bootstrap.servers' = '{cfg.kafka.bootstrap}',
        'properties.group.id' = '{args.group_id}',
        'properties.isolation.level' = 'read_committed',
        'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset',
        'scan.watermark.idle-timeout' = '{cfg.event_time.idleness_ms} ms',
        'format' = 'raw')
    """)
    t.execute_sql(f"""
      CREATE TEMPORARY TABLE snk (
        agg_key STRING, account_id STRING, currency STRING, window_start_ms BIGINT,
        txn_count BIGINT, purchase_cents BIGINT, refund_cents BIGINT, max_amount_cents BIGINT
      ) WITH (
        'connector' = 'kafka', 'topic' = '{args.sink}',
        'properties.bootstrap.servers' = '{cfg.kafka.bootstrap}',
        'properties.transaction.timeout.ms' = '900000',
        'sink.delivery-guarantee' = 'exactly-once',
        'sink.transactional-id-prefix' = 'payline-bench-baseline',
        'key.format' = 'raw', 'key.fields' = 'agg_key', 'value.format' = 'json',
        'value.fields-include' = 'EXCEPT_KEY')
    """)
    t.execute_sql("""
      CREATE TEMPORARY VIEW parsed AS
      SELECT JSON_VALUE(`value`, '$.account_id') AS account_id,
             JSON_VALUE(`value`, '$.currency') AS currency,
             JSON_VALUE(`value`, '$.kind') AS kind,
             TRY_CAST(JSON_VALUE(`value`, '$.amount_cents') AS BIGINT) AS amount_cents,
             event_time_ms, rowtime
      FROM src
    """)
    t.execute_sql(f"""
      INSERT INTO snk
      SELECT CONCAT(account_id, '|', currency, '|',
                    CAST(MIN(event_time_ms - MOD(event_time_ms, {w * 1000})) AS STRING)),
             account_id, currency, MIN(event_time_ms - MOD(event_time_ms, {w * 1000})),
             COUNT(*),
             SUM(CASE WHEN kind = 'purchase' THEN amount_cents ELSE 0 END),
             SUM(CASE WHEN kind = 'refund' THEN amount_cents ELSE 0 END),
             MAX(amount_cents)
      FROM TABLE(TUMBLE(TABLE parsed, DESCRIPTOR(rowtime), INTERVAL '{w}' SECOND))
      WHERE account_id IS NOT NULL AND currency IN ({currencies})
        AND kind IN ('purchase', 'refund') AND amount_cents BETWEEN 1 AND 1000000000000
      GROUP BY account_id, currency, window_start, window_end
    """)


if __name__ == "__main__":
    main()
