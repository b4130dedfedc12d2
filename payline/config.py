"""One configuration path: conf/payline.toml -> optional overlay file -> --set overrides -> frozen
dataclasses. Environment variables only for endpoints (PAYLINE_KAFKA_BOOTSTRAP,
PAYLINE_FLINK_REST).

Every bad value raises ConfigError with one line that names the key, e.g.
``conf: kafka.port must be an integer in 1..65535, got 'abc'``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SOURCE_ROOT = Path(__file__).resolve().parent.parent
# In a checkout, relative paths in the configuration are relative to it. Shipped as a zip
# (spark-submit --py-files, payline/pyfiles.py), the code has no conf/ next to it: the defaults
# travel inside the zip and relative paths are relative to the working directory.
PROJECT_ROOT = _SOURCE_ROOT if (_SOURCE_ROOT / "conf" / "payline.toml").is_file() else Path.cwd()
DEFAULTS_IN_ZIP = "payline/defaults.toml"


class ConfigError(ValueError):
    """A bad configuration value; str(error) is the one-line message for the user."""


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
        """The raw log (CONTRACT.md §6): the archiver writes it, the batch layer reads it."""
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
    python_execution_mode: str = _str(("thread", "process"))
    state_backend: str = _str(("rocksdb", "hashmap"))
    rocksdb_compression: str = _str(tuple(ROCKSDB_COMPRESSION))
    start_timeout_s: int = _int(1, 3600)
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
    # payline/ops.py: the newest savepoints of a job that are kept (and always the one the
    # last upgrade can roll back to); older ones are deleted when a new one is taken
    savepoints_retained: int = _int(1, 10_000)


@dataclass(frozen=True)
class Soak:
    # `payline soak` (payline/soak.py): traffic with spikes and faults at seeded moments
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
    # payline/security.py: TLS + SASL/SCRAM, one principal per component, ACLs
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
    # the rules (CONTRACT.md §5 payments.alerts); udfs.fraud.FraudParams
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

    def params(self):
        from udfs.fraud import FraudParams

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
    root: Path = PROJECT_ROOT

    def replace(self, **sections: Any) -> Config:
        return dataclasses.replace(self, **sections)


_SECTIONS = {
    "paths": Paths, "kafka": Kafka, "flink": Flink, "topics": Topics,
    "topic_settings": TopicSettings, "contract": Contract, "event_time": EventTime,
    "generator": Generator, "archiver": Archiver, "fraud": Fraud,
    "batch": Batch, "quality": Quality, "drift": Drift, "ops": Ops, "soak": Soak,
    "security": Security,
}


def contract_rules(cfg: Config):
    """udfs.contract.Rules from the [contract] section."""
    from udfs.contract import Rules

    c = cfg.contract
    return Rules(currencies=c.currencies, max_value_bytes=c.max_value_bytes,
                 min_amount_cents=c.min_amount_cents, max_amount_cents=c.max_amount_cents,
                 min_event_time_ms=c.min_event_time_ms, max_event_time_ms=c.max_event_time_ms)


# --- loading -----------------------------------------------------------------------------------


def _coerce(key: str, raw: Any, meta: dict, root: Path) -> Any:
    kind = meta["kind"]
    if kind == "int":
        if isinstance(raw, str):
            try:
                raw = int(raw.replace("_", ""))
            except ValueError:
                pass
        lo, hi = meta["lo"], meta["hi"]
        ok = isinstance(raw, int) and not isinstance(raw, bool)
        if not ok or (lo is not None and raw < lo) or (hi is not None and raw > hi):
            rng = f" in {lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
            raise ConfigError(f"conf: {key} must be an integer{rng}, got {raw!r}")
        return raw
    if kind == "float":
        if isinstance(raw, str):
            try:
                raw = float(raw)
            except ValueError:
                pass
        ok = isinstance(raw, (int, float)) and not isinstance(raw, bool)
        if not ok or not (meta["lo"] <= raw <= meta["hi"]):
            raise ConfigError(
                f"conf: {key} must be a number in {meta['lo']}..{meta['hi']}, got {raw!r}"
            )
        return float(raw)
    if kind == "str":
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"conf: {key} must be a non-empty string, got {raw!r}")
        if meta["choices"] and raw not in meta["choices"]:
            raise ConfigError(
                f"conf: {key} must be one of {', '.join(meta['choices'])}, got {raw!r}"
            )
        return raw
    if kind == "path":
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"conf: {key} must be a path string, got {raw!r}")
        p = Path(raw)
        return p if p.is_absolute() else root / p
    if kind == "address":
        return parse_address(key, raw)
    if kind == "bool":
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            raw = raw.lower() == "true"
        if not isinstance(raw, bool):
            raise ConfigError(f"conf: {key} must be true or false, got {raw!r}")
        return raw
    if kind == "str_list":
        if isinstance(raw, str):
            raw = [s for s in raw.replace(",", " ").split() if s]
        if not isinstance(raw, list) or not raw or not all(isinstance(s, str) and s for s in raw):
            raise ConfigError(f"conf: {key} must be a non-empty list of strings, got {raw!r}")
        return tuple(raw)
    raise AssertionError(kind)


def parse_address(name: str, raw: Any) -> str:
    """'' or 'host:port' (a port in 1..65535), else ConfigError naming ``name``."""
    if raw == "":
        return raw
    host, sep, port = raw.rpartition(":") if isinstance(raw, str) else ("", "", "")
    if (not sep or not host or "/" in raw or any(c.isspace() for c in raw)
            or not port.isdigit() or not 1 <= int(port) <= 65535):
        raise ConfigError(f"conf: {name} must be host:port (port 1..65535) or empty, "
                          f"got {raw!r}")
    return raw


def _zipped_defaults() -> str | None:
    """conf/payline.toml as shipped inside the batch zip (payline/pyfiles.py), if running from
    one."""
    import importlib.resources

    entry = importlib.resources.files("payline").joinpath(DEFAULTS_IN_ZIP.split("/", 1)[1])
    return entry.read_text() if entry.is_file() else None


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"conf: file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"conf: {path} is not valid TOML: {exc}") from None


def _merge(base: dict, overlay: dict, where: str) -> None:
    for section, values in overlay.items():
        if section not in _SECTIONS:
            raise ConfigError(f"conf: unknown section '{section}' in {where}")
        if not isinstance(values, dict):
            raise ConfigError(f"conf: '{section}' in {where} must be a table")
        base.setdefault(section, {}).update(values)


def parse_override(text: str) -> tuple[str, str, str]:
    """'section.key=value' -> (section, key, value); a malformed one raises ConfigError."""
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ConfigError(f"--set: expected section.key=value, got {text!r}")
    return section, key.strip(), value.strip()


def load(
    conf_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    root: Path = PROJECT_ROOT,
) -> Config:
    """Load the defaults, merge an optional overlay file and --set overrides, validate all."""
    defaults = root / "conf" / "payline.toml"
    if defaults.is_file() or not _zipped_defaults():
        data = _read_toml(defaults)
    else:
        data = tomllib.loads(_zipped_defaults())
    overlay_file = conf_file or os.environ.get("PAYLINE_CONF")
    if overlay_file:
        _merge(data, _read_toml(Path(overlay_file)), str(overlay_file))
    for text in overrides:
        section, key, value = parse_override(text)
        _merge(data, {section: {key: value}}, "--set")
    sections = {}
    for name, cls in _SECTIONS.items():
        values = dict(data.get(name, {}))
        kwargs = {}
        for f in dataclasses.fields(cls):
            key = f"{name}.{f.name}"
            if f.name not in values:
                raise ConfigError(f"conf: missing key {key}")
            kwargs[f.name] = _coerce(key, values.pop(f.name), f.metadata, root)
        if values:
            raise ConfigError(f"conf: unknown key {name}.{sorted(values)[0]}")
        sections[name] = cls(**kwargs)
    cfg = Config(root=root, **sections)
    _check_relations(cfg)
    return cfg


def _check_relations(cfg: Config) -> None:
    """Rules that span keys; each message still names the key to change."""
    f, k, c = cfg.flink, cfg.kafka, cfg.contract
    if f.prometheus_port_last < f.prometheus_port_first:
        raise ConfigError("conf: flink.prometheus_port_last must be >= flink.prometheus_port_first")
    if k.port == k.controller_port:
        raise ConfigError("conf: kafka.controller_port must differ from kafka.port")
    if c.max_amount_cents < c.min_amount_cents:
        raise ConfigError("conf: contract.max_amount_cents must be >= contract.min_amount_cents")
    if c.max_event_time_ms <= c.min_event_time_ms:
        raise ConfigError("conf: contract.max_event_time_ms must be > contract.min_event_time_ms")
    for cur in c.currencies:
        if len(cur) != 3 or not cur.isalpha() or not cur.isupper():
            raise ConfigError(f"conf: contract.currencies has {cur!r}, expected a 3-letter code")
    for key in ("out_of_orderness_ms", "window_ms", "idleness_ms"):
        if getattr(cfg.event_time, key) % 1000:
            raise ConfigError(f"conf: event_time.{key} must be whole seconds (a multiple of "
                              f"1000), got {getattr(cfg.event_time, key)}")
    _check_security(cfg)
    g = cfg.generator
    bad = (
        g.duplicate_fraction
        + g.conflicting_duplicate_fraction
        + g.late_fraction
        + g.malformed_fraction
        + g.schema_violation_fraction
        + g.invalid_value_fraction
    )
    if bad >= 1.0:
        raise ConfigError("conf: generator.*_fraction values must add up to less than 1")


_PRINCIPAL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _check_security(cfg: Config) -> None:
    s, k = cfg.security, cfg.kafka
    if s.port in (k.port, k.controller_port):
        raise ConfigError("conf: security.port must differ from kafka.port and "
                          "kafka.controller_port")
    for key in ("certs_dir", "secrets_dir"):
        value = getattr(s, key)
        if ".." in Path(value).parts:
            raise ConfigError(f"conf: security.{key} must stay inside paths.run_dir (a path "
                              f"relative to it, or absolute), got {value!r}")
    seen: dict[str, str] = {}
    for f in dataclasses.fields(Security):
        if not f.name.endswith("_principal"):
            continue
        name = getattr(s, f.name)
        if not _PRINCIPAL.match(name):
            raise ConfigError(f"conf: security.{f.name} must be 1-64 characters of "
                              f"A-Z a-z 0-9 . _ -, got {name!r}")
        if name in seen:
            raise ConfigError(f"conf: security.{f.name} must differ from "
                              f"security.{seen[name]} (one principal per component)")
        seen[name] = f.name
