"""Sending the generator's plan to Kafka (librdkafka): paced to its schedule or as fast as it
can, every record acknowledged or the run fails, optionally a manifest of where each landed."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field

from confluent_kafka import Producer

from payline.errors import SendError
from payline.generator.plan import CATEGORIES, Options, Record, plan


class Progress:
    """A one-line progress bar on a terminal; silent when stderr is not a TTY."""

    def __init__(self, total: int | None, stream):
        self.total, self.stream = total, stream
        self.enabled = stream.isatty()
        self.last = 0.0

    def update(self, done: int, elapsed: float, force: bool = False) -> None:
        if not self.enabled or (not force and time.monotonic() - self.last < 0.2):
            return
        self.last = time.monotonic()
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.total:
            width = 30
            filled = int(width * done / self.total)
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {100 * done / self.total:5.1f}%"
            text = f"{bar} {done}/{self.total}"
        else:
            text = f"{done} sent"
        self.stream.write(f"\r{text}  {rate:,.0f} records/s  ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


@dataclass
class SendReport:
    counts: dict
    sent: int
    elapsed_s: float
    last_schedule_s: float = 0.0  # the last record's place in the schedule (its event time)

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0

    def summary(self) -> str:
        lines = ["category                 records"]
        for cat in CATEGORIES:
            if self.counts.get(cat):
                lines.append(f"{cat:<24} {self.counts[cat]:>8}")
        lines.append(f"{'total':<24} {self.sent:>8}")
        lines.append(f"sent in {self.elapsed_s:.1f} s: {self.rate:,.0f} records/s")
        return "\n".join(lines)


# librdkafka's own log lines (a refused connection is logged on every retry: hundreds a minute)
# go here and nowhere; what matters reaches the operator as one line through BrokerErrors
_LIBRDKAFKA_LOG = logging.getLogger("payline.generator.librdkafka")
_LIBRDKAFKA_LOG.addHandler(logging.NullHandler())
_LIBRDKAFKA_LOG.propagate = False


@dataclass
class BrokerErrors:
    """The producer's client-level errors (librdkafka's error_cb): kept, not printed, so that
    a failed run can name the last one."""

    seen: list = field(default_factory=list)

    def record(self, err) -> None:
        self.seen.append(err.str() if hasattr(err, "str") else str(err))

    @property
    def last(self) -> str | None:
        return self.seen[-1] if self.seen else None


def producer(bootstrap, errors: BrokerErrors | None = None, **overrides):
    """librdkafka producer: idempotent, acks=all, batched; ~240k small records/s here.
    ``bootstrap``: a broker address, or the settings of runtime.kafka_clients.librdkafka_config
    (address and, in secure mode, TLS and the generator's SCRAM login)."""
    settings = {
        **(bootstrap if isinstance(bootstrap, dict) else {"bootstrap.servers": bootstrap}),
        "enable.idempotence": True,  # a retry inside the client never writes a record twice
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "message.max.bytes": 2 * 1024 * 1024,  # the oversize test records are > 64 KiB
        "queue.buffering.max.messages": 1_000_000,
        "client.id": "payline-generator",
        # the Java client's partitioner: a key lands where any Kafka client would put it
        "partitioner": "murmur2_random",
        # librdkafka logs retried start-up conditions (e.g. "coordinator load in progress") as
        # warnings; delivery failures still surface through the delivery callbacks.
        "log_level": 3,
        "logger": _LIBRDKAFKA_LOG,
    }
    if errors is not None:
        settings["error_cb"] = errors.record
    settings.update(overrides)
    return Producer(settings)


# how long the records still queued at the end may take to be acknowledged
FLUSH_TIMEOUT_S = 120


def _produce(prod, rec: Record, on_delivery) -> None:
    while True:
        try:
            prod.produce(rec.topic, value=rec.value, key=rec.key, on_delivery=on_delivery)
            return
        except BufferError:  # local queue full: let librdkafka drain it
            prod.poll(0.05)


def send(bootstrap, opts: Options, *, max_speed: bool = False,
         manifest: str | None = None, stream=None, stop=None, hold=None) -> SendReport:
    """Send ``plan(opts)`` to Kafka, paced to the schedule unless ``max_speed``; ``stop`` (a
    threading.Event) ends it early, after the records sent so far are acknowledged. ``hold``
    (``hold(record, producer)``) is called before each record is produced; it may flush the
    producer and wait, e.g. until a job has a watermark before the first late record.

    With ``manifest``, every record is written as one JSON line with its partition and offset:
    the ground truth for tests. Raises SendError when any record was not acknowledged.
    """
    stream = stream or sys.stderr
    broker_errors = BrokerErrors()
    prod = producer(bootstrap, broker_errors)
    where = bootstrap["bootstrap.servers"] if isinstance(bootstrap, dict) else bootstrap
    counts: dict[str, int] = {}
    failures: list[str] = []
    entries: list[dict] = []

    def delivered(rec: Record):  # with a manifest: each record's partition and offset
        def callback(err, msg):
            if err is not None:
                failures.append(f"seq {rec.seq}: {err}")
                return
            entry = rec.manifest_entry()
            entry["partition"], entry["offset"] = msg.partition(), msg.offset()
            entries.append(entry)
        return callback

    def count_failure(err, msg):
        if err is not None:
            failures.append(str(err))

    progress = Progress(opts.count + opts.accounts if opts.count is not None else None, stream)
    started = time.monotonic()
    sent = 0
    last_schedule_s = 0.0
    for rec in plan(opts):
        if stop is not None and stop.is_set():
            break
        if not max_speed:
            ahead = rec.schedule_s - (time.monotonic() - started)
            if ahead > 0.005:
                prod.poll(0)
                time.sleep(ahead)
        if hold is not None:
            hold(rec, prod)
        _produce(prod, rec, delivered(rec) if manifest else count_failure)
        last_schedule_s = rec.schedule_s
        counts[rec.category] = counts.get(rec.category, 0) + 1
        sent += 1
        if sent % 5000 == 0:
            prod.poll(0)
            progress.update(sent, time.monotonic() - started)
    left = prod.flush(FLUSH_TIMEOUT_S)
    elapsed = time.monotonic() - started
    progress.update(sent, elapsed, force=True)
    progress.close()
    if left or failures:
        why = "; ".join(failures[:3]) or broker_errors.last or "no error reported"
        raise SendError(f"generate: {left + len(failures)} of {sent} records were not "
                        f"acknowledged by the broker at {where} ({left} still queued after "
                        f"{FLUSH_TIMEOUT_S} s, {len(failures)} refused; last error: {why})")
    if manifest:
        entries.sort(key=lambda e: e["seq"])
        with open(manifest, "w") as out:
            for entry in entries:
                out.write(json.dumps(entry) + "\n")
    return SendReport(counts, sent, elapsed, last_schedule_s)
