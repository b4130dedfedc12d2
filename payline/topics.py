"""Create the contract's topics (CONTRACT.md §1, §2, §5) from conf/ with kafka-python's admin
client. Idempotent: existing topics are left as they are and checked against the configuration.
"""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

from payline import security
from payline.config import Config


def topic_specs(cfg: Config) -> dict[str, dict]:
    """topic name -> {partitions, configs} for every topic of the contract."""
    ts = cfg.topic_settings
    specs = {}
    for key, name in cfg.topics.by_key().items():
        configs = {"retention.ms": str(ts.retention_ms), "cleanup.policy": "delete"}
        if key == "accounts":
            # Reference data: the latest profile version per account is kept forever.
            configs = {"cleanup.policy": "compact", "retention.ms": "-1"}
        specs[name] = {"partitions": getattr(ts, f"{key}_partitions"), "configs": configs}
    return specs


def admin_client(cfg: Config, client_id: str = "payline-admin") -> KafkaAdminClient:
    """In secure mode, as the admin principal (a super user)."""
    return KafkaAdminClient(client_id=client_id, request_timeout_ms=30000,
                            **security.kafka_python_config(cfg, "admin"))


def create_topics(cfg: Config, log=print) -> None:
    specs = topic_specs(cfg)
    admin = admin_client(cfg)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, spec["partitions"], 1, topic_configs=spec["configs"])
            for name, spec in specs.items() if name not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing, timeout_ms=30000)
            except TopicAlreadyExistsError:
                pass  # a concurrent `payline topics`; the check below still holds
            log(f"topics: created {', '.join(t.name for t in missing)}")
        described = describe(cfg, admin)
        for name, spec in specs.items():
            got = described[name]["partitions"]
            if got != spec["partitions"]:
                log(f"topics: warning: {name} has {got} partitions, conf says "
                    f"{spec['partitions']} (partitions are never reduced automatically)")
        if not missing:
            log(f"topics: all {len(specs)} exist")
    finally:
        admin.close()


def describe(cfg: Config, admin: KafkaAdminClient | None = None) -> dict[str, dict]:
    """name -> {partitions, cleanup.policy, retention.ms} for the contract's topics."""
    own = admin is None
    admin = admin or admin_client(cfg)
    try:
        names = list(topic_specs(cfg))
        out = {t["name"]: {"partitions": len(t["partitions"])}
               for t in admin.describe_topics(names)}
        resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        # kafka-python 3: {"topic": {name: {config: {"value": ...}, ...}}}
        for name, conf in admin.describe_configs(resources).get("topic", {}).items():
            out.setdefault(name, {}).update(
                {k: (conf.get(k) or {}).get("value") for k in ("cleanup.policy", "retention.ms")}
            )
        return out
    finally:
        if own:
            admin.close()


class TopicReadError(RuntimeError):
    """A topic could not be read to its end in time; the message names the topic."""


def read_topic(cfg: Config, topic: str, *, committed_only: bool = True,
               timeout_s: float = 60, component: str = "ops") -> list:
    """Every record of ``topic`` from the beginning to its current end, in (partition, offset)
    order; with ``committed_only`` as a read_committed consumer sees them. In secure mode as
    the principal of ``component`` (ops: may read, never write)."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        enable_auto_commit=False,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
        client_id="payline-reader", **security.kafka_python_config(cfg, component),
    )
    try:
        parts = [TopicPartition(topic, p)
                 for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not parts:
            return []
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        records = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise TopicReadError(f"reading {topic} did not reach its end offsets {end} "
                                     f"within {timeout_s} s")
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()
