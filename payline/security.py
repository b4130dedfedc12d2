"""Secure mode: TLS + SASL/SCRAM on the broker, one principal per component, ACLs.

``payline up --secure`` (or ``security.enabled = true``) does, under ``paths.run_dir``:

* :func:`prepare`: a password per principal (``<secrets_dir>/<principal>.password``, mode
  0600, generated when missing, kept when present), a CA, the broker's keystore, a PKCS12
  truststore for Java clients and the CA as PEM for the Python clients (keytool, with store
  passwords passed through the environment, never on a command line), the secrets files that
  Kafka's FileConfigProvider reads (the broker's, and one per Flink job), and a marker that
  makes every later command on this run dir secure;
* the broker's storage is formatted with every principal's SCRAM credential
  (:func:`storage_scram_args`, handed to the JVM in a mode-0600 argument file);
* :func:`apply_acls`: the ACLs of :func:`acl_specs`, created by the admin principal.

Clients get their settings from :func:`kafka_python_config`, :func:`librdkafka_config` and
:func:`flink_sql_options`. Passwords come only from the secrets dir (``PAYLINE_SECRETS_DIR``
overrides its place, for a mounted secret store): never from the command line, and a settings
dict never shows them in its repr. The Flink jobs carry no password at all: their Kafka
properties name the secrets file (``${file:...}``) and the Kafka client resolves it when it
starts on the TaskManager.
"""

from __future__ import annotations

import os
import re
import secrets as secrets_mod
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from payline.config import Config

# the components that talk to Kafka, by the config key of their principal ([security])
COMPONENTS = ("admin", "generator", "transactions", "fraud", "archiver", "ops", "analyst")
PASSWORD_RE = re.compile(r"^[A-Za-z0-9_.~+/=-]{16,256}$")
SECRETS_ENV = "PAYLINE_SECRETS_DIR"
MARKER = "secure-mode"
# The Flink Kafka connector jar (flink-sql-connector-kafka) shades kafka-clients: its classes,
# the SCRAM login module and the config providers included, live under this prefix.
FLINK_SHADED = "org.apache.flink.kafka.shaded."
_SENSITIVE = ("password", "jaas")


class SecurityError(RuntimeError):
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


# --- secret files ------------------------------------------------------------------------------


def _write_private(path: Path, text: str) -> None:
    """Create or replace ``path`` with mode 0600 from the start (never world-readable)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


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


def _ensure_password(path: Path) -> Secret:
    if not path.exists():
        _write_private(path, secrets_mod.token_urlsafe(32) + "\n")
    return read_password(path)


def jaas(user: str, secret: str, shaded: bool = False) -> str:
    module = (FLINK_SHADED if shaded else "") + \
        "org.apache.kafka.common.security.scram.ScramLoginModule"
    return f'{module} required username="{user}" password="{reveal(secret)}";'


def _properties_text(values: dict[str, str]) -> str:
    def esc(v: str) -> str:  # java.util.Properties escaping of what our values can hold
        return v.replace("\\", "\\\\").replace("\n", "\\n")

    return "".join(f"{k}={esc(v)}\n" for k, v in values.items())


# --- certificates (keytool) ------------------------------------------------------------------


def _keytool(args: list[str], env_secrets: dict[str, str]) -> None:
    from payline.stack import java_bin

    keytool = str(Path(java_bin()).resolve().parent / "keytool")
    env = {**os.environ, **env_secrets}
    proc = subprocess.run([keytool, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip().splitlines()
        raise SecurityError(f"security: keytool {args[0]} failed: {out[-1] if out else '?'}")


def make_certificates(cfg: Config, log=print) -> None:
    """A CA, the broker's keystore (signed by the CA, for the configured host and loopback),
    a PKCS12 truststore and the CA as PEM. Kept when present."""
    f = files(cfg)
    if f.keystore.exists() and f.truststore.exists() and f.ca_pem.exists():
        return
    store = _ensure_password(f.store_password)
    env = {"PAYLINE_STOREPASS": reveal(store)}
    sp = ["-storepass:env", "PAYLINE_STOREPASS"]
    days = str(cfg.security.cert_validity_days)
    host = cfg.kafka.host
    san = "SAN=dns:localhost,ip:127.0.0.1" + (
        f",ip:{host}" if re.match(r"^[0-9.]+$", host) and host != "127.0.0.1"
        else ("" if host in ("localhost", "127.0.0.1") else f",dns:{host}"))
    for p in (f.ca_keystore, f.keystore, f.truststore, f.ca_pem):
        p.unlink(missing_ok=True)
    csr, crt = f.secrets / "broker.csr", f.secrets / "broker.crt"
    try:
        _keytool(["-genkeypair", "-alias", "ca", "-dname", "CN=payline-ca,O=payline",
                  "-keyalg", "RSA", "-keysize", "2048", "-validity", days, "-ext", "bc:c",
                  "-storetype", "PKCS12", "-keystore", str(f.ca_keystore), *sp], env)
        _keytool(["-exportcert", "-rfc", "-alias", "ca", "-keystore", str(f.ca_keystore),
                  "-file", str(f.ca_pem), *sp], env)
        _keytool(["-genkeypair", "-alias", "broker",
                  "-dname", f"CN={cfg.security.broker_principal},O=payline",
                  "-keyalg", "RSA", "-keysize", "2048", "-validity", days,
                  "-storetype", "PKCS12", "-keystore", str(f.keystore), *sp], env)
        _keytool(["-certreq", "-alias", "broker", "-keystore", str(f.keystore),
                  "-file", str(csr), *sp], env)
        _keytool(["-gencert", "-alias", "ca", "-keystore", str(f.ca_keystore), "-rfc",
                  "-infile", str(csr), "-outfile", str(crt), "-validity", days, "-ext", san,
                  "-ext", "ku:c=digitalSignature,keyEncipherment",
                  "-ext", "eku=serverAuth,clientAuth", *sp], env)
        _keytool(["-importcert", "-noprompt", "-alias", "ca", "-file", str(f.ca_pem),
                  "-keystore", str(f.keystore), *sp], env)
        _keytool(["-importcert", "-noprompt", "-alias", "broker", "-file", str(crt),
                  "-keystore", str(f.keystore), *sp], env)
        _keytool(["-importcert", "-noprompt", "-alias", "ca", "-file", str(f.ca_pem),
                  "-storetype", "PKCS12", "-keystore", str(f.truststore), *sp], env)
    finally:
        csr.unlink(missing_ok=True)
        crt.unlink(missing_ok=True)
    for p in (f.ca_keystore, f.keystore):
        os.chmod(p, 0o600)
    for p in (f.truststore, f.ca_pem):  # public: certificates only
        os.chmod(p, 0o644)
    log(f"security: made a CA and the broker's certificate in {f.certs}")


# --- setting up a run dir --------------------------------------------------------------------


def prepare(cfg: Config, log=print) -> Files:
    """Everything secure mode needs on disk; idempotent. Returns where it is."""
    f = files(cfg)
    for d in (f.secrets, f.certs):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(f.secrets, 0o700)
    made = [c for c in COMPONENTS if not f.password(principal(cfg, c)).exists()]
    for c in COMPONENTS:
        _ensure_password(f.password(principal(cfg, c)))
    if made:
        log(f"security: generated passwords for {', '.join(principal(cfg, c) for c in made)} "
            f"in {f.secrets} (mode 0600)")
    make_certificates(cfg, log)
    store = read_password(f.store_password)
    admin = principal(cfg, "admin")
    _write_private(f.broker_properties, _properties_text({
        "sasl.jaas.config": jaas(admin, password(cfg, "admin")),
        "ssl.keystore.password": store, "ssl.truststore.password": store}))
    for c in ("transactions", "fraud"):
        name = principal(cfg, c)
        _write_private(f.flink_properties(name), _properties_text({
            "sasl.jaas.config": jaas(name, password(cfg, c), shaded=True),
            "ssl.truststore.password": store}))
    marker = cfg.paths.run_dir / "kafka" / MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("payline up --secure set this run dir up; every command on it uses "
                      "TLS + SASL/SCRAM\n")
    return f


def broker_values(cfg: Config) -> dict:
    """The placeholders of conf/kafka/server-secure.properties."""
    f = files(cfg)
    s = cfg.security
    return {"host": cfg.kafka.host, "secure_port": s.port,
            "controller_port": cfg.kafka.controller_port, "mechanism": s.mechanism,
            "mechanism_lower": s.mechanism.lower(), "broker_secrets": f.broker_properties,
            "keystore": f.keystore, "truststore": f.truststore,
            "admin_principal": s.admin_principal, "broker_principal": s.broker_principal}


def merge_properties(base: str, overlay: str) -> str:
    """``base`` without the keys that ``overlay`` sets, then ``overlay``."""
    keys = {line.split("=", 1)[0].strip() for line in overlay.splitlines()
            if "=" in line and not line.lstrip().startswith("#")}
    kept = [line for line in base.splitlines()
            if line.lstrip().startswith("#") or "=" not in line
            or line.split("=", 1)[0].strip() not in keys]
    return "\n".join(kept) + "\n\n" + overlay


def storage_scram_args(cfg: Config) -> list[str]:
    """kafka-storage format's --add-scram arguments: every principal's credential (they hold
    passwords: they go into a mode-0600 argument file, see stack.kafka_up)."""
    out = []
    for c in COMPONENTS:
        out += ["--add-scram", f"{cfg.security.mechanism}=[name={principal(cfg, c)},"
                               f"password={reveal(password(cfg, c))}]"]
    return out


def java_argfile(path: Path, args: list[str]) -> None:
    """A `java @file` argument file (mode 0600): one quoted argument a line."""
    def quote(a: str) -> str:
        return '"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"'

    _write_private(path, "".join(quote(a) + "\n" for a in args))


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


# --- ACLs --------------------------------------------------------------------------------------


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
    nothing."""
    from jobs.streaming import FRAUD_JOB_NAME, TRANSACTIONS_JOB_NAME

    t = cfg.topics
    p = {c: principal(cfg, c) for c in COMPONENTS}
    specs: list[AclSpec] = []

    def allow(who, resource, names, ops, pattern="LITERAL"):
        for name in names:
            for op in ops:
                specs.append(AclSpec(f"User:{p[who]}", resource, name, pattern, op))

    allow("generator", "TOPIC", [t.transactions, t.accounts], ["WRITE", "DESCRIBE"])
    # transactions job: reads the transactions, writes three exactly-once outputs
    allow("transactions", "TOPIC", [t.transactions], ["READ", "DESCRIBE"])
    allow("transactions", "GROUP", [TRANSACTIONS_JOB_NAME], ["READ"], "PREFIXED")
    allow("transactions", "TOPIC", [t.aggregates, t.late, t.dlq], ["WRITE", "DESCRIBE"])
    allow("transactions", "TRANSACTIONAL_ID", [f"{TRANSACTIONS_JOB_NAME}-"],
          ["WRITE", "DESCRIBE"], "PREFIXED")
    # fraud job: reads transactions and profiles, writes alerts and (exactly once) the DLQ
    allow("fraud", "TOPIC", [t.transactions, t.accounts], ["READ", "DESCRIBE"])
    allow("fraud", "GROUP", [cfg.fraud.group_id], ["READ"], "PREFIXED")
    allow("fraud", "TOPIC", [t.alerts, t.dlq], ["WRITE", "DESCRIBE"])
    allow("fraud", "TRANSACTIONAL_ID", [f"{FRAUD_JOB_NAME}-"], ["WRITE", "DESCRIBE"],
          "PREFIXED")
    # archiver: every topic its pattern can match, read only
    prefix = archive_prefix(cfg)
    allow("archiver", "TOPIC", [prefix], ["READ", "DESCRIBE"], "PREFIXED")
    allow("archiver", "GROUP", [cfg.archiver.group_id], ["READ"])
    # ops: `payline status` (group offsets, end offsets) and reading outputs, no write
    allow("ops", "TOPIC", [prefix], ["READ", "DESCRIBE"], "PREFIXED")
    allow("ops", "GROUP", [TRANSACTIONS_JOB_NAME, cfg.fraud.group_id], ["DESCRIBE"],
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
    from kafka import KafkaAdminClient
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    specs = acl_specs(cfg)
    acls = [ACL(s.principal, "*", ACLOperation[s.operation], ACLPermissionType.ALLOW,
                ResourcePattern(ResourceType[s.resource], s.name,
                                ACLResourcePatternType[s.pattern])) for s in specs]
    admin = KafkaAdminClient(client_id="payline-admin", request_timeout_ms=30000,
                             **kafka_python_config(cfg, "admin"))
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
