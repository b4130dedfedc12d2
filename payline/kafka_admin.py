"""The one Kafka admin path, on kafka-python: the contract's topics (created from ``conf/``,
checked against it), the ACLs of secure mode, consumer lag, and reading a topic to its end.
In secure mode every call logs in as the principal of the component it acts for (the admin,
a super user, creates; the ops principal only reads and describes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ConfigResource,
    ConfigResourceType,
    NewTopic,
    ResourcePattern,
    ResourceType,
)
from kafka.errors import KafkaError, TopicAlreadyExistsError

from payline.errors import KafkaUnreachable, TopicReadError
from runtime import kafka_clients
from runtime.kafka_clients import SecurityError, principal
from runtime.registry import FRAUD, STREAMING_JOBS, TRANSACTIONS
from runtime.settings import Config

# --- clients -----------------------------------------------------------------------------------


def admin_client(cfg: Config, component: str = "admin", timeout_s: float = 30.0,
                 client_id: str = "payline-admin") -> KafkaAdminClient:
    """An admin client as ``component``'s principal, its requests bounded by ``timeout_s``;
    KafkaUnreachable when no broker answers at the bootstrap address within
    ``kafka.connect_timeout_s``."""
    connect_ms = int(min(timeout_s, cfg.kafka.connect_timeout_s) * 1000)
    try:
        return KafkaAdminClient(client_id=client_id, request_timeout_ms=int(timeout_s * 1000),
                                bootstrap_timeout_ms=connect_ms,
                                **kafka_clients.kafka_python_config(cfg, component))
    except (KafkaError, OSError) as exc:
        raise KafkaUnreachable(unreachable_message(cfg, exc)) from None


def unreachable_message(cfg: Config, exc: BaseException | None = None) -> str:
    """One line: which broker did not answer, and what to do about it."""
    why = f" ({type(exc).__name__})" if exc is not None else ""
    return (f"kafka: no broker answers at {kafka_clients.bootstrap(cfg)} within "
            f"{cfg.kafka.connect_timeout_s} s{why}; start it with `payline up`, or point "
            f"kafka.host/kafka.port (or PAYLINE_KAFKA_BOOTSTRAP) at a running one")


def require_broker(cfg: Config, component: str = "ops", timeout_s: float | None = None) -> None:
    """KafkaUnreachable (one line, within ``timeout_s``, default kafka.connect_timeout_s)
    unless a broker answers a metadata request: checked before a command starts work that
    would otherwise retry for minutes."""
    admin = admin_client(cfg, component, timeout_s or cfg.kafka.connect_timeout_s,
                         "payline-check")
    try:
        admin.describe_cluster()
    except (KafkaError, OSError, ValueError) as exc:
        raise KafkaUnreachable(unreachable_message(cfg, exc)) from None
    finally:
        admin.close()


def consumer(cfg: Config, component: str = "ops", **settings) -> KafkaConsumer:
    return KafkaConsumer(**kafka_clients.kafka_python_config(cfg, component), **settings)


def kafka_ready(cfg: Config, timeout_s: float = 5.0) -> bool:
    """True when the broker answers a metadata request (as the ops principal)."""
    try:
        require_broker(cfg, "ops", timeout_s)
    except (KafkaUnreachable, ValueError):
        return False
    return True


# --- topics ------------------------------------------------------------------------------------


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


# --- ACLs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AclSpec:
    principal: str
    resource: str       # TOPIC, GROUP, TRANSACTIONAL_ID
    name: str
    pattern: str        # LITERAL or PREFIXED
    operation: str      # READ, WRITE, DESCRIBE


def literal_prefix(pattern: str) -> str:
    """The fixed start of a regular expression (``^payments\\..*`` -> ``payments.``)."""
    out, i, text = [], 0, pattern.removeprefix("^")
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and not text[i + 1].isalnum():
            out.append(text[i + 1])
            i += 2
            continue
        if ch in ".^$*+?{}[]()|\\":
            if ch in "*?{" and out:  # the quantifier makes the previous character optional
                out.pop()
            break
        out.append(ch)
        i += 1
    return "".join(out)


def acl_specs(cfg: Config) -> list[AclSpec]:
    """Least privilege per component. admin is a super user (no ACL needed), analyst gets
    nothing. The jobs' topics, groups and transactional ids come from the job registry."""
    t = cfg.topics
    p = {c: principal(cfg, c) for c in kafka_clients.COMPONENTS}
    specs: list[AclSpec] = []

    def allow(who, resource, names, ops, pattern="LITERAL"):
        for name in names:
            for op in ops:
                specs.append(AclSpec(f"User:{p[who]}", resource, name, pattern, op))

    allow("generator", "TOPIC", [t.transactions, t.accounts], ["WRITE", "DESCRIBE"])
    # transactions job: reads the transactions, writes three exactly-once outputs
    # fraud job: reads transactions and profiles, writes alerts and (exactly once) the DLQ
    for job in (TRANSACTIONS, FRAUD):
        allow(job.component, "TOPIC", job.source_topics(cfg), ["READ", "DESCRIBE"])
        allow(job.component, "GROUP", [job.group_id(cfg)], ["READ"], "PREFIXED")
        allow(job.component, "TOPIC", job.sink_topics(cfg), ["WRITE", "DESCRIBE"])
        allow(job.component, "TRANSACTIONAL_ID", [f"{job.name}-"], ["WRITE", "DESCRIBE"],
              "PREFIXED")
    # archiver: every topic its pattern can match, read only
    prefix = archive_prefix(cfg)
    allow("archiver", "TOPIC", [prefix], ["READ", "DESCRIBE"], "PREFIXED")
    allow("archiver", "GROUP", [cfg.archiver.group_id], ["READ"])
    # ops: `payline status` (group offsets, end offsets) and reading outputs, no write
    allow("ops", "TOPIC", [prefix], ["READ", "DESCRIBE"], "PREFIXED")
    allow("ops", "GROUP", [j.group_id(cfg) for j in STREAMING_JOBS.values()], ["DESCRIBE"],
          "PREFIXED")
    allow("ops", "GROUP", [cfg.archiver.group_id], ["DESCRIBE"])
    return specs


def archive_prefix(cfg: Config) -> str:
    prefix = literal_prefix(cfg.archiver.topic_pattern)
    if not prefix:
        raise SecurityError("security: archiver.topic_pattern must start with a literal topic "
                            "prefix in secure mode (the archiver's ACL is by prefix)")
    return prefix


def apply_acls(cfg: Config, log=print) -> int:
    """Create the ACLs of :func:`acl_specs` (as the admin principal); existing ones stay.
    Returns how many the broker has for the components."""
    specs = acl_specs(cfg)
    acls = [ACL(s.principal, "*", ACLOperation[s.operation], ACLPermissionType.ALLOW,
                ResourcePattern(ResourceType[s.resource], s.name,
                                ACLResourcePatternType[s.pattern])) for s in specs]
    admin = admin_client(cfg)
    try:
        result = admin.create_acls(acls)
    finally:
        admin.close()
    failed = result.get("failed", []) if isinstance(result, dict) else []
    if failed:
        acl, err = failed[0]
        raise SecurityError(f"security: creating the ACL {acl} failed: {err}")
    log(f"security: {len(specs)} ACLs in place for "
        f"{', '.join(sorted({s.principal for s in specs}))}; "
        f"{principal(cfg, 'analyst')} has none")
    return len(specs)


# --- reading and lag -------------------------------------------------------------------------


def read_topic(cfg: Config, topic: str, *, committed_only: bool = True,
               timeout_s: float = 60, component: str = "ops") -> list:
    """Every record of ``topic`` from the beginning to its current end, in (partition, offset)
    order; with ``committed_only`` as a read_committed consumer sees them. In secure mode as
    the principal of ``component`` (ops: may read, never write)."""
    reader = consumer(cfg, component, enable_auto_commit=False, client_id="payline-reader",
                      isolation_level="read_committed" if committed_only
                      else "read_uncommitted")
    try:
        parts = _partitions(reader, [topic])
        if not parts:
            return []
        reader.assign(parts)
        reader.seek_to_beginning(*parts)
        end = reader.end_offsets(parts)
        records = []
        deadline = time.monotonic() + timeout_s
        while any(reader.position(tp) < end[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise TopicReadError(f"reading {topic} did not reach its end offsets {end} "
                                     f"within {timeout_s} s")
            for batch in reader.poll(timeout_ms=500).values():
                records.extend(batch)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        reader.close()


def _partitions(client: KafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t in topics
            for p in sorted(client.partitions_for_topic(t) or ())]


def consumer_lag(cfg: Config, group: str, topics: list[str]) -> dict[str, int | None]:
    """End offset - committed offset per "topic/partition" (None: nothing committed)."""
    # in secure mode as the ops principal: describe groups, read offsets, nothing else
    admin = admin_client(cfg, "ops", 5.0, "payline-status")
    reader = consumer(cfg, "ops", request_timeout_ms=5000, client_id="payline-status")
    try:
        committed = {tp: meta.offset for tp, meta in
                     admin.list_group_offsets(group).get(group, {}).items()}
        parts = _partitions(reader, topics)
        ends = reader.end_offsets(parts)
    finally:
        reader.close()
        admin.close()
    out = {}
    for tp in parts:
        done = committed.get(tp)
        out[f"{tp.topic}/{tp.partition}"] = (ends[tp] - done if done is not None and done >= 0
                                             else None)
    return out


def end_offsets(cfg: Config, topic_names: list[str]) -> dict[str, int]:
    """The end offset of every partition of the topics, by "topic/partition"."""
    reader = consumer(cfg, "ops", client_id="payline-offsets")
    try:
        return {f"{tp.topic}/{tp.partition}": o
                for tp, o in reader.end_offsets(_partitions(reader, topic_names)).items()}
    finally:
        reader.close()


def offset_ranges(cfg: Config, topic: str) -> dict[int, tuple[int, int]]:
    """partition -> (first offset, end offset) of ``topic``: what it holds now."""
    reader = consumer(cfg, "ops", client_id="payline-offsets")
    try:
        parts = _partitions(reader, [topic])
        first, ends = reader.beginning_offsets(parts), reader.end_offsets(parts)
        return {tp.partition: (first[tp], ends[tp]) for tp in parts}
    finally:
        reader.close()
