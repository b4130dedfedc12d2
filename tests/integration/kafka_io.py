"""Reading and writing whole topics in tests, with kafka-python."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from payline import topics
from payline.config import Config


def create_topic(cfg: Config, name: str, partitions: int = 3) -> None:
    admin = topics.admin_client(cfg)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def read_all(cfg: Config, topic: str, *, committed_only: bool = True,
             timeout_s: float = 60) -> list:
    """Every record of ``topic`` from the beginning to its current end, in partition order."""
    consumer = KafkaConsumer(
        bootstrap_servers=cfg.kafka.bootstrap, enable_auto_commit=False,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
        consumer_timeout_ms=1000, client_id="payline-test-reader",
    )
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        records = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise AssertionError(f"reading {topic} did not reach its end offsets {end}")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()
