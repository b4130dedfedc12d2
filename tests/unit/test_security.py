"""Secure mode without a broker: the [security] keys are validated by name, secret files are
private, client settings never show a password, the ACLs are least privilege, and the Flink
jobs' Kafka options carry no secret."""

from __future__ import annotations

import logging
import os
import stat
import string
from pathlib import Path

import pytest

from payline import kafka_admin
from payline.local import certs
from runtime import config, kafka_clients
from runtime.config import ConfigError


def _cfg(tmp_path: Path, *overrides: str) -> config.Config:
    return config.load(overrides=[f"paths.run_dir={tmp_path}", *overrides])


def _fake_secrets(cfg) -> kafka_clients.Files:
    """Password files as `up --secure` writes them, without keytool."""
    f = kafka_clients.files(cfg)
    f.secrets.mkdir(parents=True)
    os.chmod(f.secrets, 0o700)
    for c in kafka_clients.COMPONENTS:
        certs.ensure_password(f.password(kafka_clients.principal(cfg, c)))
    certs.ensure_password(f.store_password)
    return f


@pytest.mark.parametrize("override, message", [
    ("security.enabled=maybe", "conf: security.enabled must be true or false, got 'maybe'"),
    ("security.port=0", "conf: security.port must be an integer in 1..65535, got 0"),
    ("security.port=9092", "conf: security.port must differ from kafka.port"),
    ("security.mechanism=PLAIN",
     "conf: security.mechanism must be one of SCRAM-SHA-512, SCRAM-SHA-256, got 'PLAIN'"),
    ("security.secrets_dir=../elsewhere", "conf: security.secrets_dir must stay inside"),
    ("security.cert_validity_days=0", "conf: security.cert_validity_days must be an integer"),
    ("security.generator_principal=bad name!",
     "conf: security.generator_principal must be 1-64 characters"),
    ("security.analyst_principal=payline-admin",
     "conf: security.analyst_principal must differ from security.admin_principal"),
])
def test_bad_security_values_are_refused_by_key(override, message):
    with pytest.raises(ConfigError) as err:
        config.load(overrides=[override])
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_security_is_off_by_default_and_on_by_flag_or_run_dir_marker(tmp_path):
    cfg = _cfg(tmp_path)
    assert not kafka_clients.active(cfg)
    assert kafka_clients.bootstrap(cfg) == f"127.0.0.1:{cfg.kafka.port}"
    assert kafka_clients.kafka_python_config(cfg, "ops") == {
        "bootstrap_servers": f"127.0.0.1:{cfg.kafka.port}"}
    assert kafka_clients.flink_sql_options(cfg, "transactions") == ""
    assert kafka_clients.active(_cfg(tmp_path, "security.enabled=true"))
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / kafka_clients.MARKER).write_text("x")
    assert kafka_clients.active(cfg)
    assert kafka_clients.bootstrap(cfg) == f"127.0.0.1:{cfg.security.port}"


def test_passwords_are_generated_private_and_kept(tmp_path):
    cfg = _cfg(tmp_path, "security.enabled=true")
    f = _fake_secrets(cfg)
    path = f.password(cfg.security.generator_principal)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(f.secrets.stat().st_mode) == 0o700
    first = kafka_clients.reveal(kafka_clients.password(cfg, "generator"))
    certs.ensure_password(path)
    assert kafka_clients.reveal(kafka_clients.password(cfg, "generator")) == first
    assert len(first) >= 32


def test_a_secret_file_readable_by_others_is_refused(tmp_path):
    cfg = _cfg(tmp_path, "security.enabled=true")
    f = _fake_secrets(cfg)
    path = f.password(cfg.security.archiver_principal)
    os.chmod(path, 0o644)
    with pytest.raises(kafka_clients.SecurityError, match="readable by others .*chmod 600"):
        kafka_clients.password(cfg, "archiver")


def test_a_missing_or_malformed_password_is_named_by_file_not_content(tmp_path):
    cfg = _cfg(tmp_path, "security.enabled=true")
    f = _fake_secrets(cfg)
    path = f.password(cfg.security.ops_principal)
    path.unlink()
    with pytest.raises(kafka_clients.SecurityError, match="is missing"):
        kafka_clients.password(cfg, "ops")
    certs.write_private(path, "has,comma]and-is-long-enough\n")
    with pytest.raises(kafka_clients.SecurityError) as err:
        kafka_clients.password(cfg, "ops")
    assert str(path) in str(err.value) and "comma" not in str(err.value)


def test_secrets_dir_comes_from_the_environment_when_set(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, "security.enabled=true")
    monkeypatch.setenv(kafka_clients.SECRETS_ENV, str(tmp_path / "mounted"))
    assert kafka_clients.files(cfg).secrets == (tmp_path / "mounted").resolve()


def test_client_settings_never_show_a_password(tmp_path, caplog, capsys):
    cfg = _cfg(tmp_path, "security.enabled=true")
    _fake_secrets(cfg)
    plain = kafka_clients.reveal(kafka_clients.password(cfg, "generator"))
    kp = kafka_clients.kafka_python_config(cfg, "generator")
    rd = kafka_clients.librdkafka_config(cfg, "generator")
    assert kp["security_protocol"] == "SASL_SSL" and kp["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kp["sasl_plain_username"] == "payline-generator"
    assert kp["sasl_plain_password"].encode() == plain.encode()  # what the client sends
    assert rd["sasl.password"] == plain
    logger = logging.getLogger("kafka.admin.client")
    with caplog.at_level(logging.DEBUG):
        # what kafka-python logs at DEBUG when a client starts, and what a careless caller does
        logger.debug("Starting KafkaAdminClient with configuration: %s", dict(kp))
        logger.info("settings %s %r", rd, kp)
        print(kp, rd, f"{kp['sasl_plain_password']}", str(kp["sasl_plain_password"]))
    shown = caplog.text + capsys.readouterr().out
    assert "<redacted>" in shown
    assert plain not in shown


def test_flink_options_name_the_secrets_file_but_hold_no_secret(tmp_path):
    cfg = _cfg(tmp_path, "security.enabled=true")
    f = _fake_secrets(cfg)
    with pytest.raises(kafka_clients.SecurityError, match="is missing"):
        kafka_clients.flink_kafka_properties(cfg, "fraud")  # prepare() has not written it
    secret_file = f.flink_properties(cfg.security.fraud_principal)
    certs.write_private(secret_file, "sasl.jaas.config=x\n")
    props = kafka_clients.flink_kafka_properties(cfg, "fraud")
    assert props["sasl.jaas.config"] == f"${{file:{secret_file}:sasl.jaas.config}}"
    assert props["ssl.truststore.password"].startswith("${file:")
    # the connector jar shades kafka-clients: the provider class must be the shaded one
    assert props["config.providers.file.class"] == (
        "org.apache.flink.kafka.shaded.org.apache.kafka.common.config.provider."
        "FileConfigProvider")
    sql = kafka_clients.flink_sql_options(cfg, "fraud")
    for c in kafka_clients.COMPONENTS:
        assert kafka_clients.reveal(kafka_clients.password(cfg, c)) not in sql
    assert "'properties.security.protocol' = 'SASL_SSL'," in sql


def test_the_jaas_line_for_flink_uses_the_shaded_login_module():
    line = certs.jaas("u", kafka_clients.Secret("p" * 20), shaded=True)
    assert line == ('org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.'
                    'ScramLoginModule required username="u" password="' + "p" * 20 + '";')


def test_storage_format_arguments_carry_every_principal(tmp_path):
    cfg = _cfg(tmp_path, "security.enabled=true")
    _fake_secrets(cfg)
    args = certs.storage_scram_args(cfg)
    names = [a.split("name=")[1].split(",")[0] for a in args if a.startswith("SCRAM")]
    assert sorted(names) == sorted(kafka_clients.principal(cfg, c)
                                  for c in kafka_clients.COMPONENTS)
    argfile = tmp_path / "args"
    certs.java_argfile(argfile, ["-cp", "x", *args])
    assert stat.S_IMODE(argfile.stat().st_mode) == 0o600


def test_secure_broker_properties_replace_the_plaintext_listener(tmp_path):
    cfg = _cfg(tmp_path, "security.enabled=true")
    base = (cfg.root / "conf" / "kafka" / "server.properties").read_text()

    overlay = string.Template(
        (cfg.root / "conf" / "kafka" / "server-secure.properties").read_text()
    ).substitute({k: str(v) for k, v in certs.broker_values(cfg).items()})
    merged = certs.merge_properties(base, overlay)
    keys = [line.split("=", 1)[0] for line in merged.splitlines()
            if "=" in line and not line.startswith("#")]
    assert len(keys) == len(set(keys))
    assert "listeners=SASL_SSL://${host}:9094,CONTROLLER://${host}:9093" not in merged
    assert "PLAINTEXT" not in "\n".join(line for line in merged.splitlines()
                                        if not line.startswith("#"))
    assert "allow.everyone.if.no.acl.found=false" in merged
    assert ("authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            in merged)
    assert "${file:" in merged and "password=" not in merged.replace(
        "password=${file:", "")
    assert "ssl.principal.mapping.rules=RULE:^CN=([A-Za-z0-9._-]+)(,.*)?$/$1/,DEFAULT" in merged


def test_acls_are_least_privilege(tmp_path):
    cfg = _cfg(tmp_path)
    specs = kafka_admin.acl_specs(cfg)

    def granted(who):
        return {(s.resource, s.name, s.pattern, s.operation) for s in specs
                if s.principal == f"User:payline-{who}"}

    assert granted("generator") == {
        ("TOPIC", t, "LITERAL", op) for t in ("payments.transactions", "payments.accounts")
        for op in ("WRITE", "DESCRIBE")}
    tx = granted("transactions")
    assert ("TOPIC", "payments.alerts", "LITERAL", "WRITE") not in tx
    assert ("TRANSACTIONAL_ID", "payline-transactions-", "PREFIXED", "WRITE") in tx
    assert ("GROUP", "payline-transactions", "PREFIXED", "READ") in tx
    fraud = granted("fraud")
    assert ("TOPIC", "payments.accounts", "LITERAL", "READ") in fraud
    assert ("TOPIC", "payments.account-aggregates", "LITERAL", "WRITE") not in fraud
    assert {s[3] for s in granted("archiver")} == {"READ", "DESCRIBE"}
    assert ("TOPIC", "payments.", "PREFIXED", "READ") in granted("archiver")
    assert {s[3] for s in granted("ops")} == {"READ", "DESCRIBE"}
    assert granted("analyst") == set()
    assert granted("admin") == set()  # a super user


@pytest.mark.parametrize("pattern, prefix", [
    (r"^payments\..*", "payments."), (r"payments\.", "payments."), (r"^pay.*", "pay"),
    (r"^payments-?x", "payments"), (r".*", ""),
])
def test_literal_prefix_of_the_archiver_pattern(pattern, prefix):
    assert kafka_admin.literal_prefix(pattern) == prefix
