"""The configuration's schema: one frozen dataclass per section of ``conf/payline.toml``, each
field carrying its rule (kind, range, choices) in its metadata, which :mod:`runtime.config`
checks when it loads a file. Nothing here reads a file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from udfs.contract import Rules
from udfs.fraud import FraudParams

# --- field constructors: the rule travels with the field -------------------------------------


def _int(lo: int | None = None, hi: int | None = None):
    return field(metadata={"kind": "int", "lo": lo, "hi": hi})


def _float(lo: float, hi: float):
    return field(metadata={"kind": "float", "lo": lo, "hi": hi})


def _str(choices: tuple[str, ...] | None = None):
    return field(metadata={"kind": "str", "choices": choices})


def _path():
    return field(metadata={"kind": "path"})


def _address():
    """'' or host:port."""
    return field(metadata={"kind": "address"})


def _str_list():
    return field(metadata={"kind": "str_list"})


PORT = (1, 65535)

# flink.rocksdb_compression -> Flink's RocksDB compression type (one for every level); its keys
# are the setting's allowed values
ROCKSDB_COMPRESSION = {"none": "NO_COMPRESSION", "snappy": "SNAPPY_COMPRESSION"}


@dataclass(frozen=True)
class Paths:
    run_dir: Path = _path()
    data_dir: Path = _path()
    reports_dir: Path = _path()
    ops_dir: Path = _path()
    checkpoints_dir: Path = _path()

    @property
    def raw_dir(self) -> Path:
        """The raw log (docs/contract.md#raw-log): the archiver writes it, the batch layer
        reads it."""
        return self.data_dir / "raw"


@dataclass(frozen=True)
class Kafka:
    host: str = _str()
    port: int = _int(*PORT)
    controller_port: int = _int(*PORT)
    heap_mb: int = _int(128, 65536)
    transaction_max_timeout_ms: int = _int(60_000, 7 * 24 * 3600 * 1000)
    default_partitions: int = _int(1, 1000)
    start_timeout_s: int = _int(1, 3600)
    connect_timeout_s: int = _int(1, 300)
    jars_dir: Path = _path()

    @property
    def bootstrap(self) -> str:
        return os.environ.get("PAYLINE_KAFKA_BOOTSTRAP") or f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Flink:
    host: str = _str()
    rest_port: int = _int(*PORT)
    jobmanager_rpc_port: int = _int(*PORT)
    taskmanager_slots: int = _int(1, 256)
    jobmanager_memory_mb: int = _int(512, 65536)
    taskmanager_memory_mb: int = _int(1024, 65536)
    prometheus_port_first: int = _int(*PORT)
    prometheus_port_last: int = _int(*PORT)
    default_parallelism: int = _int(1, 256)
    checkpoint_interval_ms: int = _int(100, 3_600_000)
    checkpoint_timeout_ms: int = _int(1000, 3_600_000)
    min_pause_between_checkpoints_ms: int = _int(0, 3_600_000)
    restart_attempts: int = _int(0, 1_000_000)
    restart_interval_s: int = _int(1, 86_400)
    restart_delay_ms: int = _int(0, 3_600_000)
    tolerable_failed_checkpoints: int = _int(0, 1000)
    heartbeat_interval_ms: int = _int(100, 600_000)
    heartbeat_timeout_ms: int = _int(1000, 3_600_000)
    metrics_refresh_ms: int = _int(100, 600_000)
    python_execution_mode: str = _str(("thread", "process"))
    state_backend: str = _str(("rocksdb", "hashmap"))
    rocksdb_compression: str = _str(tuple(ROCKSDB_COMPRESSION))
    start_timeout_s: int = _int(1, 3600)
    connect_timeout_s: int = _int(1, 300)
    jars_dir: Path = _path()
    # the project's own Flink SQL functions (infra/flink-udfs), built by `payline up`
    udf_jar: Path = _path()
    # the REST address (host:port) of a remote JobManager that deploy, upgrade, rollback,
    # savepoint(s), status and submit use instead of the local cluster; '' for the local one
    jobmanager: str = _address()

    @property
    def rest_url(self) -> str:
        if os.environ.get("PAYLINE_FLINK_REST"):
            return os.environ["PAYLINE_FLINK_REST"]
        return f"http://{self.jobmanager or f'{self.host}:{self.rest_port}'}"

    def run_options(self) -> list[str]:
        """`flink run` options that point the client at the cluster (``-m`` for a remote one;
        the local one is in the rendered configuration)."""
        return ["-m", self.jobmanager] if self.jobmanager else []


@dataclass(frozen=True)
class Topics:
    transactions: str = _str()
    accounts: str = _str()
    aggregates: str = _str()
    late: str = _str()
    dlq: str = _str()
    alerts: str = _str()

    def by_key(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TopicSettings:
    transactions_partitions: int = _int(1, 1000)
    accounts_partitions: int = _int(1, 1000)
    aggregates_partitions: int = _int(1, 1000)
    late_partitions: int = _int(1, 1000)
    dlq_partitions: int = _int(1, 1000)
    alerts_partitions: int = _int(1, 1000)
    retention_ms: int = _int(-1, None)


@dataclass(frozen=True)
class Contract:
    currencies: tuple[str, ...] = _str_list()
    max_value_bytes: int = _int(1, None)
    min_amount_cents: int = _int(1, None)
    max_amount_cents: int = _int(1, None)
    min_event_time_ms: int = _int(0, None)
    max_event_time_ms: int = _int(0, None)
    dedup_horizon_ms: int = _int(1, None)


@dataclass(frozen=True)
class EventTime:
    out_of_orderness_ms: int = _int(0, None)
    idleness_ms: int = _int(0, None)
    window_ms: int = _int(1, None)
    allowed_lateness_ms: int = _int(0, None)


@dataclass(frozen=True)
class Generator:
    seed: int = _int(0, None)
    rate_per_s: int = _int(0, 10_000_000)
    count: int = _int(0, None)
    accounts: int = _int(1, 10_000_000)
    merchants: int = _int(1, 10_000_000)
    out_of_order_ms: int = _int(0, None)
    out_of_order_fraction: float = _float(0.0, 1.0)
    duplicate_fraction: float = _float(0.0, 1.0)
    conflicting_duplicate_fraction: float = _float(0.0, 1.0)
    late_fraction: float = _float(0.0, 1.0)
    late_by_ms: int = _int(0, None)
    late_after: int = _int(0, None)
    malformed_fraction: float = _float(0.0, 1.0)
    schema_violation_fraction: float = _float(0.0, 1.0)
    invalid_value_fraction: float = _float(0.0, 1.0)
    high_risk_account_fraction: float = _float(0.0, 1.0)
    large_amount_fraction: float = _float(0.0, 1.0)


@dataclass(frozen=True)
class Archiver:
    topic_pattern: str = _str()
    group_id: str = _str()
    flush_records: int = _int(1, 10_000_000)
    flush_interval_ms: int = _int(100, 3_600_000)
    session_timeout_ms: int = _int(6_000, 300_000)  # the broker's group.min/max.session.timeout


@dataclass(frozen=True)
class Batch:
    # the raw log a reconciliation of [start, end) reads, by arrival hour: from start minus
    # lookback (earlier copies of a txn_id within the dedup horizon) to end plus lookahead
    # (late arrivals)
    lookback_ms: int = _int(0, None)
    lookahead_ms: int = _int(0, None)
    # `payline schedule`: an interval is reconciled this long after its end (the stream's
    # allowed lateness, its last checkpoint and the archiver's flush fit in it)
    schedule_grace_ms: int = _int(0, None)
    # the Data Docs keep the validation pages of this many runs, the ones validated last
    data_docs_keep_runs: int = _int(1, 10_000)


@dataclass(frozen=True)
class Quality:
    # Great Expectations' run_rates suite: each run's rates must stay at or under these
    max_dlq_rate: float = _float(0.0, 1.0)
    max_duplicate_rate: float = _float(0.0, 1.0)
    max_late_rate: float = _float(0.0, 1.0)


@dataclass(frozen=True)
class Drift:
    # jobs/batch/drift.py: each reconciliation run against the last baseline_runs runs
    baseline_runs: int = _int(1, 1000)
    psi_threshold: float = _float(0.0, 100.0)
    amount_threshold: float = _float(0.0, 100.0)
    amount_min_count: int = _int(1, 10**9)
    rate_change: float = _float(0.0, 1000.0)
    rate_floor: float = _float(0.0, 1.0)


@dataclass(frozen=True)
class Ops:
    # payline.release: the newest savepoints of a job that are kept (and always the one the
    # last upgrade can roll back to); older ones are deleted when a new one is taken
    savepoints_retained: int = _int(1, 10_000)


@dataclass(frozen=True)
class Soak:
    # `payline soak` (payline.soak): traffic with spikes and faults at seeded moments
    duration_s: int = _int(30, 7 * 86_400)
    rate_per_s: int = _int(1, 1_000_000)
    seed: int = _int(0, None)
    faults: int = _int(0, 10_000)
    kinds: tuple[str, ...] = _str_list()
    spikes: int = _int(0, 1000)
    spike_factor: float = _float(1.0, 1000.0)
    spike_s: int = _int(1, 3600)
    warmup_s: int = _int(0, 86_400)
    cooldown_s: int = _int(0, 86_400)
    broker_down_s: int = _int(0, 3600)
    readonly_s: int = _int(1, 3600)
    standby_taskmanagers: int = _int(0, 8)
    recovery_timeout_s: int = _int(10, 3600)
    settle_timeout_s: int = _int(10, 86_400)


@dataclass(frozen=True)
class Security:
    # secure mode (runtime.kafka_clients, payline.local.certs): TLS + SASL/SCRAM, one
    # principal per component, ACLs
    enabled: bool = field(metadata={"kind": "bool"})
    port: int = _int(*PORT)
    mechanism: str = _str(("SCRAM-SHA-512", "SCRAM-SHA-256"))
    certs_dir: str = _str()
    secrets_dir: str = _str()
    cert_validity_days: int = _int(1, 3650)
    broker_principal: str = _str()
    admin_principal: str = _str()
    generator_principal: str = _str()
    transactions_principal: str = _str()
    fraud_principal: str = _str()
    archiver_principal: str = _str()
    ops_principal: str = _str()
    analyst_principal: str = _str()


@dataclass(frozen=True)
class Fraud:
    # the rules (docs/contract.md#rules); udfs.fraud.FraudParams
    large_amount_cents: int = _int(1, None)
    velocity_count: int = _int(1, None)
    velocity_window_ms: int = _int(1, None)
    velocity_silence_ms: int = _int(0, None)
    small_purchase_cents: int = _int(1, None)
    large_purchase_cents: int = _int(1, None)
    small_then_large_ms: int = _int(0, None)
    # the job
    timer_coalesce_ms: int = _int(2, 60_000)
    buffer_timeout_ms: int = _int(0, 10_000)
    medium_alerts_linger_ms: int = _int(0, 10_000)
    group_id: str = _str()

    def params(self) -> FraudParams:
        return FraudParams(**{f.name: getattr(self, f.name)
                              for f in dataclasses.fields(FraudParams)})


@dataclass(frozen=True)
class Config:
    paths: Paths
    kafka: Kafka
    flink: Flink
    topics: Topics
    topic_settings: TopicSettings
    contract: Contract
    event_time: EventTime
    generator: Generator
    archiver: Archiver
    fraud: Fraud
    batch: Batch
    quality: Quality
    drift: Drift
    ops: Ops
    soak: Soak
    security: Security
    root: Path

    def replace(self, **sections: Any) -> Config:
        return dataclasses.replace(self, **sections)


SECTIONS = {
    "paths": Paths, "kafka": Kafka, "flink": Flink, "topics": Topics,
    "topic_settings": TopicSettings, "contract": Contract, "event_time": EventTime,
    "generator": Generator, "archiver": Archiver, "fraud": Fraud,
    "batch": Batch, "quality": Quality, "drift": Drift, "ops": Ops, "soak": Soak,
    "security": Security,
}


def contract_rules(cfg: Config) -> Rules:
    """udfs.contract.Rules from the [contract] section."""
    c = cfg.contract
    return Rules(currencies=c.currencies, max_value_bytes=c.max_value_bytes,
                 min_amount_cents=c.min_amount_cents, max_amount_cents=c.max_amount_cents,
                 min_event_time_ms=c.min_event_time_ms, max_event_time_ms=c.max_event_time_ms)

