"""The archiver's file rules, without a broker: runs cut by hour, names by offset range, the
lake as the position, no rewrite, crash leftovers ignored."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from jobs import archiver as a
from runtime import config

HOUR = 3_600_000
T = 1767225600000  # 2026-01-01T00:00:00Z


def rec(offset, ts, topic="payments.dlq", partition=2, key=b"k", value=b"v"):
    return a.RawRecord(topic, partition, offset, ts, key, value)


def test_runs_are_cut_where_the_hour_changes_and_stay_in_offset_order():
    records = [rec(10, T), rec(11, T + 1), rec(12, T + HOUR), rec(13, T + 5), rec(14, T + 6)]
    runs = a.hour_runs(records)
    assert [[r.offset for r in run] for run in runs] == [[10, 11], [12], [13, 14]]


def test_a_run_is_written_under_its_hour_named_by_its_offset_range(tmp_path):
    path = a.write_run(tmp_path, [rec(5, T + 2 * HOUR + 1), rec(7, T + 2 * HOUR + 9,
                                                                   key=None, value=None)])
    assert path == (tmp_path / "payments.dlq" / "date=2026-01-01" / "hour=02"
                    / "part-2-5-7.parquet")
    table = pq.read_table(path)
    assert table.schema.equals(a.SCHEMA)
    assert table.to_pylist() == [
        {"topic": "payments.dlq", "partition": 2, "offset": 5, "timestamp_ms": T + 2 * HOUR + 1,
         "key": b"k", "value": b"v"},
        {"topic": "payments.dlq", "partition": 2, "offset": 7, "timestamp_ms": T + 2 * HOUR + 9,
         "key": None, "value": None}]


def test_an_existing_file_is_never_rewritten(tmp_path):
    a.write_run(tmp_path, [rec(1, T)])
    with pytest.raises(a.ArchiverError, match="never rewritten"):
        a.write_run(tmp_path, [rec(1, T)])


def test_the_position_is_one_past_the_highest_archived_offset_per_partition(tmp_path):
    a.write_run(tmp_path, [rec(0, T), rec(3, T)])
    a.write_run(tmp_path, [rec(4, T + HOUR), rec(9, T + HOUR)])
    a.write_run(tmp_path, [rec(0, T, partition=0)])
    a.write_run(tmp_path, [rec(41, T, topic="payments.alerts")])
    assert a.next_offsets(tmp_path) == {("payments.dlq", 2): 10, ("payments.dlq", 0): 1,
                                        ("payments.alerts", 2): 42}


def test_temporary_files_of_a_crash_are_removed_and_never_count(tmp_path):
    a.write_run(tmp_path, [rec(0, T)])
    leftover = tmp_path / "payments.dlq/date=2026-01-01/hour=00/.tmp-part-2-1-99.parquet"
    leftover.write_bytes(b"half")
    assert a.next_offsets(tmp_path) == {("payments.dlq", 2): 1}
    assert a.remove_temporary_files(tmp_path) == 1
    assert not leftover.exists()


def test_a_failed_offset_commit_keeps_the_file_and_the_archiver(tmp_path):
    """The broker away at the commit after a durable file (seen in the chaos soak: the archiver
    died on `Waiting for coordinator`): the file stays, the archiver goes on, the next commit
    covers the offsets."""
    from confluent_kafka import KafkaError, KafkaException

    class Away:
        commits = 0

        def commit(self, asynchronous, **_):
            # never a synchronous commit: one hung for good after a broker restart
            assert asynchronous is True
            self.commits += 1
            raise KafkaException(KafkaError(KafkaError._WAIT_COORD, "Waiting for coordinator"))

    said = []
    arch = a.Archiver(config.load(None, [f"paths.data_dir={tmp_path}"]), log=said.append)
    arch.buffers = {("payments.dlq", 2): a.Buffer([rec(0, T), rec(1, T + 1)])}
    consumer = Away()
    arch.flush(consumer, ("payments.dlq", 2))
    assert consumer.commits == 1
    assert a.next_offsets(arch.root) == {("payments.dlq", 2): 2}
    assert arch.records_written == 2 and not arch.buffers
    assert len(said) == 1 and "offset commit of payments.dlq/2 failed" in said[0]


def test_a_failed_asynchronous_commit_is_logged_by_its_callback():
    from confluent_kafka import KafkaError, TopicPartition

    said = []
    arch = a.Archiver(config.load(), log=said.append)
    arch.on_commit(None, [TopicPartition("payments.dlq", 2, 5)])
    assert said == []
    arch.on_commit(KafkaError(KafkaError._WAIT_COORD, "Waiting for coordinator"),
                    [TopicPartition("payments.dlq", 2, 5)])
    assert len(said) == 1 and "offset commit of payments.dlq/2 failed" in said[0]
