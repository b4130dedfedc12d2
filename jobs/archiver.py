"""The raw-log archiver: every record of every ``payments.*`` topic, exactly once, as Parquet
(docs/contract.md#raw-log), in its own process so that no upgrade of the business jobs touches the
master dataset.

Layout: ``<data_dir>/raw/<topic>/date=YYYY-MM-DD/hour=HH/part-<partition>-<first>-<last>.parquet``
by Kafka timestamp (UTC), columns ``topic, partition, offset, timestamp_ms, key, value``.

Exactly once, without a coordinator:

* The lake is the position. A file holds a *contiguous* run of one partition's records (in
  offset order; a run is cut where the hour changes), and its name carries its first and last
  offset. On assignment the consumer seeks each partition to one past the highest archived
  offset, so a crash at any point re-reads exactly what is not in a file yet.
* A file appears atomically: written under a temporary name, fsynced, renamed, directory
  fsynced. A crash leaves at most a temporary file, which is never read and is removed on
  start. Files are only added, never rewritten (a name that exists is an error).
* Kafka offsets are committed after the file is durable, for monitoring (consumer lag) only,
  asynchronously (a synchronous commit can hang after a broker restart); a failed commit (the
  broker away) is logged, and the next one covers it.
* ``isolation.level=read_committed``: records of aborted transactions never appear. Offsets of
  transaction markers and aborted records are simply absent from the lake.

Run: ``payline archiver run`` (foreground) or ``payline archiver start|stop`` (background).
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from runtime import kafka_clients
from runtime.errors import PaylineError
from runtime.settings import Config

SCHEMA = pa.schema([
    ("topic", pa.string()), ("partition", pa.int32()), ("offset", pa.int64()),
    ("timestamp_ms", pa.int64()), ("key", pa.binary()), ("value", pa.binary()),
])
_PART = re.compile(r"^part-(\d+)-(\d+)-(\d+)\.parquet$")
_TMP_PREFIX = ".tmp-"


class ArchiverError(PaylineError):
    """The archiver cannot go on; str(error) is one line for the operator."""


def hour_dir(root: Path, topic: str, timestamp_ms: int) -> Path:
    t = datetime.fromtimestamp(max(timestamp_ms, 0) / 1000, tz=UTC)
    return root / topic / f"date={t:%Y-%m-%d}" / f"hour={t:%H}"


def next_offsets(root: Path) -> dict[tuple[str, int], int]:
    """(topic, partition) -> one past the highest archived offset, read from the file names."""
    out: dict[tuple[str, int], int] = {}
    if not root.exists():
        return out
    for topic_dir in root.iterdir():
        if not topic_dir.is_dir():
            continue
        for f in topic_dir.glob("date=*/hour=*/part-*.parquet"):
            m = _PART.match(f.name)
            if m:
                key = (topic_dir.name, int(m.group(1)))
                out[key] = max(out.get(key, 0), int(m.group(3)) + 1)
    return out


def remove_temporary_files(root: Path) -> int:
    """Leftovers of a crash mid-write: never part of the lake."""
    n = 0
    if root.exists():
        for f in root.glob(f"*/date=*/hour=*/{_TMP_PREFIX}*"):
            f.unlink()
            n += 1
    return n


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_run(root: Path, records: list) -> Path:
    """One contiguous run of one partition, all in one hour, as an immutable Parquet file."""
    first, last = records[0], records[-1]
    topic, partition = first.topic, first.partition
    directory = hour_dir(root, topic, first.timestamp_ms)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"part-{partition}-{first.offset}-{last.offset}.parquet"
    if final.exists():
        raise ArchiverError(f"archiver: {final} exists; the lake is never rewritten")
    table = pa.table({
        "topic": pa.array([topic] * len(records), pa.string()),
        "partition": pa.array([partition] * len(records), pa.int32()),
        "offset": pa.array([r.offset for r in records], pa.int64()),
        "timestamp_ms": pa.array([r.timestamp_ms for r in records], pa.int64()),
        "key": pa.array([r.key for r in records], pa.binary()),
        "value": pa.array([r.value for r in records], pa.binary()),
    }, schema=SCHEMA)
    tmp = directory / f"{_TMP_PREFIX}{final.name}"
    with open(tmp, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(tmp, final)
    _fsync_dir(directory)
    return final


@dataclass(slots=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None


def hour_runs(records: list[RawRecord]) -> list[list[RawRecord]]:
    """Cut a partition's records (offset order) where the hour bucket changes."""
    runs: list[list[RawRecord]] = []
    current_hour = None
    for r in records:
        h = max(r.timestamp_ms, 0) // 3_600_000
        if h != current_hour:
            runs.append([])
            current_hour = h
        runs[-1].append(r)
    return runs


@dataclass
class Buffer:
    records: list = field(default_factory=list)
    since: float = 0.0


class Archiver:
    """The consume-buffer-write-commit loop. ``run()`` returns on SIGTERM/SIGINT or ``stop()``,
    after writing what it holds."""

    def __init__(self, cfg: Config, *, log=print):
        self.cfg = cfg
        self.root = cfg.paths.raw_dir
        self.log = log
        self.buffers: dict[tuple[str, int], Buffer] = {}
        self.files_written = 0
        self.records_written = 0
        self._stopping = False

    def stop(self, *_):
        self._stopping = True

    def on_assign(self, consumer, partitions):
        positions = next_offsets(self.root)
        for p in partitions:
            p.offset = positions.get((p.topic, p.partition), OFFSET_BEGINNING)
            self.buffers.pop((p.topic, p.partition), None)
        consumer.assign(partitions)
        self.log(f"archiver: assigned {len(partitions)} partitions, resuming from the lake")

    def on_revoke(self, consumer, partitions):
        # buffered records of a revoked partition are dropped, not written: whoever gets the
        # partition resumes from the lake and reads them again
        for p in partitions:
            self.buffers.pop((p.topic, p.partition), None)

    def flush(self, consumer, tp: tuple[str, int]) -> None:
        buf = self.buffers.pop(tp, None)
        if not buf or not buf.records:
            return
        for run in hour_runs(buf.records):
            write_run(self.root, run)
            self.files_written += 1
            self.records_written += len(run)
        # The lake is the position; the group's offsets only show the lag. So the commit is
        # asynchronous: a synchronous one hung for good after a broker restart in the full
        # chaos soak (the archiver alive, writing nothing). One that fails (the broker or the
        # group coordinator away) is logged by on_commit, and the next file's commit covers it.
        try:
            consumer.commit(offsets=[TopicPartition(tp[0], tp[1], buf.records[-1].offset + 1)],
                            asynchronous=True)
        except KafkaException as exc:
            self.commit_failed(f"{tp[0]}/{tp[1]}", exc.args[0].str() if exc.args else exc)

    def commit_failed(self, where: str, why) -> None:
        self.log(f"archiver: offset commit of {where} failed, the next one covers it ({why})")

    def on_commit(self, err, partitions) -> None:
        """librdkafka's report of an asynchronous commit (on the consuming thread)."""
        if err is not None:
            where = ", ".join(f"{p.topic}/{p.partition}" for p in partitions or []) or "?"
            self.commit_failed(where, err.str() if hasattr(err, "str") else err)

    def run(self) -> None:
        a = self.cfg.archiver
        try:
            re.compile(a.topic_pattern)
        except re.error as exc:
            raise ArchiverError(f"archiver.topic_pattern: not a regular expression ({exc})") \
                from None
        removed = remove_temporary_files(self.root)
        if removed:
            self.log(f"archiver: removed {removed} unfinished temporary files of a crash")
        consumer = Consumer({
            # in secure mode as the archiver principal: read payments.*, nothing else
            **kafka_clients.librdkafka_config(self.cfg, "archiver"),
            "group.id": a.group_id,
            "session.timeout.ms": a.session_timeout_ms,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 5000,
            "on_commit": self.on_commit,
            "log_level": 3,
        })
        pattern = a.topic_pattern if a.topic_pattern.startswith("^") else f"^{a.topic_pattern}"
        consumer.subscribe([pattern], on_assign=self.on_assign, on_revoke=self.on_revoke)
        interval_s = a.flush_interval_ms / 1000
        try:
            while not self._stopping:
                messages = consumer.consume(num_messages=10_000, timeout=0.5)
                now = time.monotonic()
                for m in messages:
                    err = m.error()
                    if err is not None:
                        if err.code() in (KafkaError._PARTITION_EOF,
                                          KafkaError.UNKNOWN_TOPIC_OR_PART):
                            continue
                        if err.fatal():
                            raise KafkaException(err)
                        self.log(f"archiver: {err}")
                        continue
                    tp = (m.topic(), m.partition())
                    buf = self.buffers.get(tp)
                    if buf is None:
                        buf = self.buffers[tp] = Buffer(since=now)
                    buf.records.append(RawRecord(m.topic(), m.partition(), m.offset(),
                                                 m.timestamp()[1], m.key(), m.value()))
                for tp in [tp for tp, b in self.buffers.items()
                           if len(b.records) >= a.flush_records or now - b.since >= interval_s]:
                    self.flush(consumer, tp)
            for tp in list(self.buffers):
                self.flush(consumer, tp)
        finally:
            consumer.close()


def run_forever(cfg: Config) -> None:
    archiver = Archiver(cfg, log=lambda msg: print(msg, flush=True))
    signal.signal(signal.SIGTERM, archiver.stop)
    signal.signal(signal.SIGINT, archiver.stop)
    print(f"archiver: {cfg.archiver.topic_pattern} -> {cfg.paths.raw_dir}", flush=True)
    archiver.run()
    print(f"archiver: stopped after {archiver.records_written} records in "
          f"{archiver.files_written} files", flush=True)


def read_lake(cfg: Config, topic: str | None = None) -> pa.Table:
    """Every archived row (optionally of one topic), for tests and the batch layer."""
    root = cfg.paths.raw_dir
    files = sorted((root / topic if topic else root).glob(
        ("" if topic else "*/") + "date=*/hour=*/part-*.parquet"))
    if not files:
        return SCHEMA.empty_table()
    return pa.concat_tables(pq.read_table(f, schema=SCHEMA) for f in files)
