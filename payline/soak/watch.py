"""A read_committed consumer of the output topics, in a thread, from their current end: when
each topic last received a record (the soak's measure of a fault's recovery)."""

from __future__ import annotations

import threading
import time

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from runtime import kafka_clients
from runtime.settings import Config


class OutputWatch:
    """A read_committed consumer of the output topics from their current end, in a thread:
    when each topic last received a record."""

    def __init__(self, cfg: Config, topics: list[str]):
        self._consumer = Consumer({
            **kafka_clients.librdkafka_config(cfg, "ops"), "group.id": "payline-soak-watch",
            "enable.auto.commit": False, "isolation.level": "read_committed",
            "log_level": 0,
        })
        meta = self._consumer.list_topics(timeout=30)
        self._consumer.assign([TopicPartition(t, p, OFFSET_END)
                               for t in topics for p in meta.topics[t].partitions])
        self.arrivals: dict[str, list[float]] = {t: [] for t in topics}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msgs = self._consumer.consume(num_messages=10_000, timeout=0.5)
            now = time.time()
            with self._lock:
                for m in msgs:
                    if m.error() is None:
                        self.arrivals[m.topic()].append(now)

    def first_after(self, topics: list[str], t: float) -> float | None:
        """The first time after ``t`` a record of any of ``topics`` arrived, or None."""
        with self._lock:
            found = [next((a for a in self.arrivals[x] if a > t), None) for x in topics]
        found = [f for f in found if f is not None]
        return min(found) if found else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()
