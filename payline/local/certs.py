"""Setting secure mode up (TLS + SASL/SCRAM on the broker, one principal per component).

``payline up --secure`` (or ``security.enabled = true``) does, under ``paths.run_dir``:

* :func:`prepare`: a password per principal (``<secrets_dir>/<principal>.password``, mode
  0600, generated when missing, kept when present), a CA, the broker's keystore, a PKCS12
  truststore for Java clients and the CA as PEM for the Python clients (keytool, with store
  passwords passed through the environment, never on a command line), the secrets files that
  Kafka's FileConfigProvider reads (the broker's, and one per Flink job), and a marker that
  makes every later command on this run dir secure;
* the broker's storage is formatted with every principal's SCRAM credential
  (:func:`storage_scram_args`, handed to the JVM in a mode-0600 argument file);
* the ACLs are ``payline.kafka_admin.apply_acls``'s; the clients' settings are
  ``runtime.kafka_clients``'.
"""

from __future__ import annotations

import os
import re
import secrets as secrets_mod
import subprocess
from pathlib import Path

from payline.jdk import jdk_tool
from runtime.kafka_clients import (
    COMPONENTS,
    FLINK_SHADED,
    MARKER,
    Files,
    Secret,
    SecurityError,
    files,
    password,
    principal,
    read_password,
    reveal,
)
from runtime.settings import Config

# --- secret files ------------------------------------------------------------------------------


def write_private(path: Path, text: str) -> None:
    """Create or replace ``path`` with mode 0600 from the start (never world-readable)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def ensure_password(path: Path) -> Secret:
    if not path.exists():
        write_private(path, secrets_mod.token_urlsafe(32) + "\n")
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
    keytool = str(jdk_tool("keytool"))
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
    store = ensure_password(f.store_password)
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
        ensure_password(f.password(principal(cfg, c)))
    if made:
        log(f"security: generated passwords for {', '.join(principal(cfg, c) for c in made)} "
            f"in {f.secrets} (mode 0600)")
    make_certificates(cfg, log)
    store = read_password(f.store_password)
    admin = principal(cfg, "admin")
    write_private(f.broker_properties, _properties_text({
        "sasl.jaas.config": jaas(admin, password(cfg, "admin")),
        "ssl.keystore.password": store, "ssl.truststore.password": store}))
    for c in ("transactions", "fraud"):
        name = principal(cfg, c)
        write_private(f.flink_properties(name), _properties_text({
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

    write_private(path, "".join(quote(a) + "\n" for a in args))


