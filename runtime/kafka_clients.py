"""Kafka client settings and secrets for every component: the plain settings, or in secure mode
(TLS + SASL/SCRAM, one principal per component) the login of the component's principal.

Clients get their settings from :func:`kafka_python_config`, :func:`librdkafka_config` and
:func:`flink_sql_options`. Passwords come only from the secrets dir (``PAYLINE_SECRETS_DIR``
overrides its place, for a mounted secret store): never from the command line, and a settings
dict never shows them in its repr. The Flink jobs carry no password at all: their Kafka
properties name the secrets file (``${file:...}``) and the Kafka client resolves it when it
starts on the TaskManager. Setting secure mode up (passwords, certificates, ACLs) is the
operator tool's (``payline.local.certs``, ``payline.kafka_admin``).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import PaylineError
from runtime.settings import Config

# the components that talk to Kafka, by the config key of their principal ([security])
COMPONENTS = ("admin", "generator", "transactions", "fraud", "archiver", "ops", "analyst")
PASSWORD_RE = re.compile(r"^[A-Za-z0-9_.~+/=-]{16,256}$")
SECRETS_ENV = "PAYLINE_SECRETS_DIR"
MARKER = "secure-mode"
# The Flink Kafka connector jar (flink-sql-connector-kafka) shades kafka-clients: its classes,
# the SCRAM login module and the config providers included, live under this prefix.
FLINK_SHADED = "org.apache.flink.kafka.shaded."
_SENSITIVE = ("password", "jaas")


class SecurityError(PaylineError):
    """Secure mode cannot be set up or used; str(error) is one line naming what to fix."""


class Secret(str):
    """A password: usable as a str by the clients, shown as ``<redacted>`` when printed,
    formatted or logged."""

    def __repr__(self) -> str:
        return "'<redacted>'"

    def __str__(self) -> str:
        return "<redacted>"

    def __format__(self, spec: str) -> str:
        return "<redacted>"


def reveal(secret: str) -> str:
    """The plain text of a :class:`Secret`, for the one place that must write it."""
    return str.__str__(secret)


class ClientSettings(dict):
    """Kafka client settings whose repr and str hide every password-like value."""

    def __repr__(self) -> str:
        return repr({k: ("<redacted>" if any(s in k.lower() for s in _SENSITIVE) else v)
                     for k, v in self.items()})

    __str__ = __repr__


# --- where things are ------------------------------------------------------------------------


def active(cfg: Config) -> bool:
    """Secure when configured so, or when ``payline up --secure`` set up this run dir."""
    return cfg.security.enabled or (cfg.paths.run_dir / "kafka" / MARKER).exists()


def bootstrap(cfg: Config) -> str:
    """The broker address clients use: the SASL_SSL listener in secure mode."""
    if os.environ.get("PAYLINE_KAFKA_BOOTSTRAP"):
        return os.environ["PAYLINE_KAFKA_BOOTSTRAP"]
    port = cfg.security.port if active(cfg) else cfg.kafka.port
    return f"{cfg.kafka.host}:{port}"


def principal(cfg: Config, component: str) -> str:
    if component not in COMPONENTS:
        raise SecurityError(f"security: no principal for component {component!r}")
    return getattr(cfg.security, f"{component}_principal")


def secrets_dir(cfg: Config) -> Path:
    env = os.environ.get(SECRETS_ENV)
    return Path(env) if env else cfg.paths.run_dir / cfg.security.secrets_dir


def certs_dir(cfg: Config) -> Path:
    return cfg.paths.run_dir / cfg.security.certs_dir


@dataclass(frozen=True)
class Files:
    secrets: Path
    certs: Path

    def password(self, name: str) -> Path:
        return self.secrets / f"{name}.password"

    def flink_properties(self, name: str) -> Path:
        """What a Flink job's Kafka clients read through FileConfigProvider."""
        return self.secrets / f"{name}.flink.properties"

    @property
    def broker_properties(self) -> Path:
        return self.secrets / "broker.properties"

    @property
    def store_password(self) -> Path:
        return self.secrets / "stores.password"

    @property
    def ca_keystore(self) -> Path:
        return self.secrets / "ca.p12"

    @property
    def ca_pem(self) -> Path:
        return self.certs / "ca.pem"

    @property
    def truststore(self) -> Path:
        return self.certs / "truststore.p12"

    @property
    def keystore(self) -> Path:
        return self.certs / "broker.p12"


def files(cfg: Config) -> Files:
    return Files(secrets_dir(cfg).resolve(), certs_dir(cfg).resolve())


def check_private(path: Path) -> None:
    """A secret file must exist and be readable by its owner only."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SecurityError(f"security: {path} is missing; `payline up --secure` creates it, "
                            f"or put it in {SECRETS_ENV}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecurityError(f"security: {path} is readable by others (mode "
                            f"{stat.S_IMODE(mode):04o}); chmod 600 it")


def read_password(path: Path) -> Secret:
    check_private(path)
    value = path.read_text().strip()
    if not PASSWORD_RE.match(value):
        raise SecurityError(f"security: the password in {path} must be 16-256 characters of "
                            f"A-Z a-z 0-9 _ . ~ + / = -")
    return Secret(value)


def password(cfg: Config, component: str) -> Secret:
    return read_password(files(cfg).password(principal(cfg, component)))


# --- clients -----------------------------------------------------------------------------------


def kafka_python_config(cfg: Config, component: str) -> ClientSettings:
    """kafka-python keyword arguments (KafkaAdminClient, KafkaConsumer, KafkaProducer)."""
    out = ClientSettings(bootstrap_servers=bootstrap(cfg))
    if active(cfg):
        f = files(cfg)
        out.update(security_protocol="SASL_SSL", sasl_mechanism=cfg.security.mechanism,
                   sasl_plain_username=principal(cfg, component),
                   sasl_plain_password=password(cfg, component),
                   ssl_cafile=str(f.ca_pem), ssl_check_hostname=True)
    return out


def librdkafka_config(cfg: Config, component: str) -> ClientSettings:
    """confluent-kafka (librdkafka) settings."""
    out = ClientSettings({"bootstrap.servers": bootstrap(cfg)})
    if active(cfg):
        f = files(cfg)
        out.update({"security.protocol": "SASL_SSL", "sasl.mechanism": cfg.security.mechanism,
                    "sasl.username": principal(cfg, component),
                    # librdkafka takes str() of a value, which a Secret hides: the plain
                    # text, in a dict whose repr still hides it
                    "sasl.password": reveal(password(cfg, component)),
                    "ssl.ca.location": str(f.ca_pem),
                    "ssl.endpoint.identification.algorithm": "https"})
    return out


def flink_kafka_properties(cfg: Config, component: str) -> dict[str, str]:
    """The Kafka client properties of a Flink job, without any secret: the SCRAM login and
    the truststore password are read on the TaskManager from the job's secrets file by the
    (shaded) FileConfigProvider. Empty when not secure."""
    if not active(cfg):
        return {}
    f = files(cfg)
    secret_file = f.flink_properties(principal(cfg, component))
    check_private(secret_file)
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": cfg.security.mechanism,
        "ssl.truststore.type": "PKCS12",
        "ssl.truststore.location": str(f.truststore),
        "config.providers": "file",
        "config.providers.file.class":
            FLINK_SHADED + "org.apache.kafka.common.config.provider.FileConfigProvider",
        "sasl.jaas.config": f"${{file:{secret_file}:sasl.jaas.config}}",
        "ssl.truststore.password": f"${{file:{secret_file}:ssl.truststore.password}}",
    }


def flink_sql_options(cfg: Config, component: str) -> str:
    """:func:`flink_kafka_properties` as ``'properties.*'`` lines of a Kafka table's WITH."""
    return "".join(f"\n      'properties.{k}' = '{v}',"
                   for k, v in flink_kafka_properties(cfg, component).items())


