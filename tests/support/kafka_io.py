"""Reading and writing whole topics in tests, with kafka-python."""

from __future__ import annotations

from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.partitioner.default import murmur2

from payline import kafka_admin
from runtime.settings import Config


def create_topic(cfg: Config, name: str, partitions: int = 3) -> None:
    admin = kafka_admin.admin_client(cfg)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def read_all(cfg: Config, topic: str, *, committed_only: bool = True,
             timeout_s: float = 60) -> list:
    """Every record of ``topic`` from the beginning to its current end, in partition order."""
    return kafka_admin.read_topic(cfg, topic, committed_only=committed_only, timeout_s=timeout_s)


def account_on(partition: int, tag: str, partitions: int = 3) -> str:
    """An account id whose key the Java partitioner puts on ``partition``."""
    for i in range(1000):
        name = f"acct-{tag}-{i}"
        if (murmur2(name.encode()) & 0x7FFFFFFF) % partitions == partition:
            return name
    raise AssertionError("no account id found")
