"""The Flink SQL of the transactions job, character for character as releases before
udfs/windows.py ran it: its ``routed`` view (shared with the fraud job) and its output query.

A release upgrades from a savepoint of the running one only while the SQL plan is the same (the
stateful SQL operators' uids are their plan nodes', ``table.exec.uid.generation``), so the SQL
that jobs/streaming/txn_sql.py and transactions.py now generate from ``udfs.windows`` and
``udfs.semantics`` must be the text they always contained. The statements are captured from
``create_routed_view``/``build_pipeline`` on a stand-in table environment (no JVM) and compared
with the texts copied from the code before the change."""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

import pytest

from jobs.streaming import transactions, txn_sql
from udfs.contract import DEFAULT_RULES


class RecordingTableEnv:
    """Records the SQL a job hands to its table environment, in order."""

    def __init__(self):
        self.statements: list[tuple[str, str]] = []

    def execute_sql(self, sql):
        self.statements.append(("execute_sql", sql))

    def sql_query(self, sql):
        self.statements.append(("sql_query", sql))
        return mock.MagicMock()

    def create_temporary_function(self, name, fn):
        self.statements.append(("function", name))

    def get_config(self):
        return mock.MagicMock()

    def to_data_stream(self, table):
        return mock.MagicMock()

    def from_data_stream(self, stream):
        return mock.MagicMock()

    def create_statement_set(self):
        return mock.MagicMock()


def cfg(window_ms=60_000, allowed_lateness_ms=0):
    r = DEFAULT_RULES
    contract = SimpleNamespace(
        currencies=r.currencies, max_value_bytes=r.max_value_bytes,
        min_amount_cents=r.min_amount_cents, max_amount_cents=r.max_amount_cents,
        min_event_time_ms=r.min_event_time_ms, max_event_time_ms=r.max_event_time_ms,
        dedup_horizon_ms=86_400_000)
    return SimpleNamespace(
        event_time=SimpleNamespace(window_ms=window_ms, allowed_lateness_ms=allowed_lateness_ms),
        contract=contract, flink=SimpleNamespace(checkpoint_interval_ms=10_000),
        topics=SimpleNamespace(transactions="payments.transactions"))


def _lines(*lines: str) -> str:
    return "\n".join(lines)


def statement(statements, marker: str) -> str:
    (sql,) = [s for kind, s in statements if kind != "function" and marker in s]
    return sql


def views(statements) -> list[str]:
    return [s.split()[3] if kind == "execute_sql" else kind for kind, s in statements]


def test_the_routed_view_per_record_is_the_released_text():
    """The fraud job's (validation record by record)."""
    t_env = RecordingTableEnv()
    assert txn_sql.create_routed_view(t_env, "raw", cfg()) == "routed"
    assert views(t_env.statements) == ["function", "validated", "dedup_first_copy", "keyed", "seen",
                                       "routed"]
    assert statement(t_env.statements, "VIEW routed") == ROUTED_PER_RECORD


@pytest.mark.parametrize("window_ms, lateness, routed", [
    (60_000, 0, None), (120_000, 5_000, "ROUTED_VECTORISED_LATENESS")])
def test_the_transactions_jobs_sql_is_the_released_text(window_ms, lateness, routed):
    t_env = RecordingTableEnv()
    transactions.build_pipeline(t_env, "raw_transactions",
                                {"aggregates": "a", "late": "l", "dlq": "d"},
                                cfg(window_ms, lateness))
    assert views(t_env.statements) == ["function", "validated", "dedup_first_copy", "keyed", "seen",
                                       "routed", "sql_query"]
    if routed:
        assert statement(t_env.statements, "VIEW routed") == ROUTED_VECTORISED_LATENESS
    outputs = statement(t_env.statements, "UNION ALL")
    if window_ms == 60_000:
        assert outputs == OUTPUTS
    else:  # the same text with the window's length in it
        assert outputs == OUTPUTS.replace("60000", "120000").replace(
            "INTERVAL '1' MINUTE", "INTERVAL '2' MINUTE")


# --- the released texts (copied from jobs/streaming/ before udfs/windows.py) ------------------

ROUTED_PER_RECORD = _lines(
    '',
    '      CREATE TEMPORARY VIEW routed AS',
    '      SELECT *,',
    "             CASE WHEN outcome = 'ACCEPTED' AND arrival_watermark IS NOT NULL",
    '                       AND TO_TIMESTAMP_LTZ((event_time_ms - MOD(event_time_ms, '
    '60000)) + 59999,',
    '                                            3) <= arrival_watermark',
    '                  THEN TRUE ELSE FALSE END AS late',
    '      FROM (SELECT *,',
    '                   CASE WHEN error_class IS NOT NULL THEN error_class',
    '                        ELSE CASE WHEN copies = 1 OR ABS(event_time_ms - first_e'
    "vent_time_ms) >= 86400000 THEN 'ACCEPTED' WHEN fingerprint = first_fingerprint T"
    "HEN 'DUPLICATE' ELSE 'CONFLICTING_DUPLICATE' END",
    '                   END AS outcome,',
    '                   MAX(current_watermark) OVER (',
    '                     PARTITION BY src_partition ORDER BY proctime',
    '                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS arriva'
    'l_watermark',
    '            FROM (SELECT *, CURRENT_WATERMARK(rowtime) AS current_watermark FROM'
    ' seen))',
    '    ',
)

ROUTED_VECTORISED_LATENESS = _lines(
    '',
    '      CREATE TEMPORARY VIEW routed AS',
    '      SELECT *,',
    "             CASE WHEN outcome = 'ACCEPTED' AND arrival_watermark IS NOT NULL",
    '                       AND TO_TIMESTAMP_LTZ((event_time_ms - MOD(event_time_ms, '
    '120000)) + 124999,',
    '                                            3) <= arrival_watermark',
    '                  THEN TRUE ELSE FALSE END AS late',
    '      FROM (SELECT *,',
    '                   CASE WHEN error_class IS NOT NULL THEN error_class',
    '                        ELSE CASE WHEN copies = 1 OR ABS(event_time_ms - first_e'
    "vent_time_ms) >= 86400000 THEN 'ACCEPTED' WHEN fingerprint = first_fingerprint T"
    "HEN 'DUPLICATE' ELSE 'CONFLICTING_DUPLICATE' END",
    '                   END AS outcome,',
    '                   MAX(current_watermark) OVER (',
    '                     PARTITION BY src_partition ORDER BY proctime',
    '                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS arriva'
    'l_watermark',
    '            FROM (SELECT *, source_watermark AS current_watermark FROM seen))',
    '    ',
)

OUTPUTS = _lines(
    '',
    "      SELECT 'aggregates' AS kind, key, `value`, CAST(NULL AS STRING) AS error_c"
    'lass,',
    '             txn_count AS transactions FROM (',
    "      SELECT CONCAT(account_id, '|', currency, '|', CAST(window_start_ms AS STRI"
    'NG)) AS key,',
    "             JSON_OBJECT('account_id' VALUE account_id, 'currency' VALUE currenc"
    'y,',
    "                         'window_start_ms' VALUE window_start_ms,",
    "                         'window_end_ms' VALUE window_start_ms + 60000,",
    "                         'txn_count' VALUE txn_count, 'purchase_count' VALUE pur"
    'chase_count,',
    "                         'refund_count' VALUE refund_count,",
    "                         'purchase_cents' VALUE purchase_cents, 'refund_cents' V"
    'ALUE refund_cents,',
    "                         'net_cents' VALUE purchase_cents - refund_cents,",
    "                         'max_amount_cents' VALUE max_amount_cents) AS `value`,",
    '             txn_count',
    '      FROM (',
    '        SELECT account_id, currency, MIN((event_time_ms - MOD(event_time_ms, 600'
    '00))) AS window_start_ms, COUNT(*) AS txn_count,',
    "               SUM(CASE WHEN kind = 'purchase' THEN 1 ELSE 0 END) AS purchase_co"
    'unt,',
    "               SUM(CASE WHEN kind = 'refund' THEN 1 ELSE 0 END) AS refund_count,",
    "               SUM(CASE WHEN kind = 'purchase' THEN amount_cents ELSE 0 END) AS "
    'purchase_cents,',
    "               SUM(CASE WHEN kind = 'refund' THEN amount_cents ELSE 0 END) AS re"
    'fund_cents,',
    '               MAX(amount_cents) AS max_amount_cents',
    '        FROM TABLE(TUMBLE(',
    "          TABLE routed, DESCRIPTOR(rowtime), INTERVAL '1' MINUTE))",
    "        WHERE outcome = 'ACCEPTED' AND NOT late",
    '        GROUP BY account_id, currency, window_start, window_end))',
    '      UNION ALL',
    "      SELECT 'late', key, `value`, CAST(NULL AS STRING), CAST(1 AS BIGINT) FROM "
    '(',
    '      SELECT account_id AS key,',
    "             JSON_OBJECT('txn_id' VALUE txn_id, 'account_id' VALUE account_id, '"
    "merchant_id' VALUE merchant_id, 'amount_cents' VALUE amount_cents, 'currency' VA"
    "LUE currency, 'kind' VALUE kind, 'event_time_ms' VALUE event_time_ms, 'channel' "
    "VALUE channel, 'country' VALUE country,",
    "                         'watermark_ms' VALUE (UNIX_TIMESTAMP(DATE_FORMAT(arriva"
    "l_watermark, 'yyyy-MM-dd HH:mm:ss')) * 1000 + CAST(DATE_FORMAT(arrival_watermark"
    ", 'SSS') AS BIGINT)),",
    "                         'window_start_ms' VALUE (event_time_ms - MOD(event_time"
    '_ms, 60000))) AS `value`',
    '      FROM routed WHERE late)',
    '      UNION ALL',
    "      SELECT 'dlq', CAST(NULL AS STRING), `value`, error_class, CAST(1 AS BIGINT"
    ') FROM (',
    '      SELECT outcome AS error_class,',
    '             JSON_OBJECT(',
    "               'error_class' VALUE outcome,",
    "               'error' VALUE CASE WHEN error_class IS NULL",
    "                                  THEN CONCAT('txn_id: ', txn_id, ' was accepted"
    " earlier with other field values') ELSE error END,",
    "               'raw' VALUE CASE WHEN error_class IS NULL",
    '                                THEN CAST(raw_value AS STRING) ELSE raw_text END'
    ',',
    "               'raw_encoding' VALUE CASE WHEN error_class IS NULL",
    "                                         THEN 'utf8' ELSE raw_encoding END,",
    "               'source_topic' VALUE 'payments.transactions', 'source_partition' "
    'VALUE src_partition,',
    "               'source_offset' VALUE src_offset,",
    "               'source_timestamp_ms' VALUE (UNIX_TIMESTAMP(DATE_FORMAT(src_times"
    "tamp, 'yyyy-MM-dd HH:mm:ss')) * 1000 + CAST(DATE_FORMAT(src_timestamp, 'SSS') AS"
    ' BIGINT))) AS `value`',
    "      FROM routed WHERE outcome NOT IN ('ACCEPTED', 'DUPLICATE'))",
    '      UNION ALL',
    "      SELECT 'duplicate', CAST(NULL AS STRING), CAST(NULL AS STRING), CAST(NULL "
    'AS STRING),',
    '             CAST(1 AS BIGINT)',
    "      FROM routed WHERE outcome = 'DUPLICATE'",
    '    ',
)
