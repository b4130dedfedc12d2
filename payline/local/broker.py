"""The local single-node KRaft Kafka broker (Maven Central's jars, ``conf/kafka/``): storage
formatted once, started in its own session, waited for until it answers its metadata, stopped
by pid. In secure mode its listener is TLS + SASL/SCRAM with the credentials of
:mod:`payline.local.certs`.
"""

from __future__ import annotations

import base64
import string
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from payline.assets import asset
from payline.errors import StackError
from payline.jdk import java_bin
from payline.kafka_admin import kafka_ready
from payline.local import certs
from payline.local.procs import (
    ours,
    pids_text,
    port_open,
    read_pid,
    stop_part,
    tail,
    wait_until,
)
from payline.templates import render
from runtime import kafka_clients, progress
from runtime.settings import Config


@dataclass(frozen=True)
class KafkaPaths:
    home: Path

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def log(self) -> Path:
        return self.logs / "server.log"

    @property
    def stdout(self) -> Path:
        return self.logs / "stdout.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"


def kafka_paths(cfg: Config) -> KafkaPaths:
    return KafkaPaths(cfg.paths.run_dir / "kafka")


def kafka_pids(cfg: Config) -> list[int]:
    kp = kafka_paths(cfg)
    return [p for p in read_pid(kp.pid_file) if ours(p, str(kp.properties))]


def storage_format_args(cluster_id: str, properties) -> list[str]:
    """kafka-storage format's arguments. The id is base64url and may start with '-', so it
    travels as one ``--cluster-id=`` token (as ``-t ID`` it was once read as an option)."""
    return ["format", "--standalone", f"--cluster-id={cluster_id}", "-c", str(properties)]


def kafka_up(cfg: Config, log=print) -> None:
    kc, kp = cfg.kafka, kafka_paths(cfg)
    secure = kafka_clients.active(cfg)
    progress.phase("kafka: starting the broker")
    answer = f"the broker at {kafka_clients.bootstrap(cfg)} to answer"
    if kafka_pids(cfg):
        if wait_until(lambda: kafka_ready(cfg), kc.start_timeout_s, lambda: kafka_pids(cfg),
                      answer):
            log(f"kafka: already running at {kafka_clients.bootstrap(cfg)}")
            return
        raise StackError(f"kafka: running ({pids_text('', kafka_pids(cfg))}) but not answering; "
                         f"see {kp.log}\n{tail(kp.log)}")
    client_port = ((cfg.security.port, "security.port") if secure else (kc.port, "kafka.port"))
    for port, key in (client_port, (kc.controller_port, "kafka.controller_port")):
        if port_open(kc.host, port):
            raise StackError(f"kafka: port {port} ({key}) is already in use by another process; "
                             f"stop it or set {key}")
    kp.logs.mkdir(parents=True, exist_ok=True)
    render(asset("conf/kafka/server.properties"), kp.properties, {
        "host": kc.host, "port": kc.port, "controller_port": kc.controller_port,
        "data_dir": kp.data, "default_partitions": kc.default_partitions,
        "transaction_max_timeout_ms": kc.transaction_max_timeout_ms,
    })
    if secure:  # TLS + SASL/SCRAM listener, mutual-TLS controller, StandardAuthorizer
        overlay = string.Template(
            asset("conf/kafka/server-secure.properties").read_text()
        ).substitute({k: str(v) for k, v in certs.broker_values(cfg).items()})
        kp.properties.write_text(certs.merge_properties(kp.properties.read_text(), overlay))
    java = java_bin()
    classpath = f"{kc.jars_dir}/*"
    jvm = [java, f"-Xms{kc.heap_mb}m", f"-Xmx{kc.heap_mb}m", "-XX:+UseG1GC",
           f"-Dlog4j2.configurationFile={asset('conf/kafka/log4j2.xml')}",
           f"-Dkafka.logs.dir={kp.logs}", "-cp", classpath]
    if not (kp.data / "meta.properties").exists():
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        tool = [*jvm[1:], "kafka.tools.StorageTool",
                *storage_format_args(cluster_id, kp.properties)]
        argfile = kp.home / ".format.args"
        if secure:  # every principal's SCRAM credential, in a mode-0600 `java @file`
            certs.java_argfile(argfile, [*tool, *certs.storage_scram_args(cfg)])
            tool = [f"@{argfile}"]
        try:
            fmt = subprocess.run([jvm[0], *tool], capture_output=True, text=True)
        finally:
            argfile.unlink(missing_ok=True)
        if fmt.returncode != 0:
            raise StackError(f"kafka: formatting the storage in {kp.data} failed:\n"
                             f"{fmt.stdout[-1500:]}{fmt.stderr[-1500:]}")
    with open(kp.stdout, "ab") as out:
        proc = subprocess.Popen([*jvm, "kafka.Kafka", str(kp.properties)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=kp.home)
    kp.pid_file.write_text(f"{proc.pid}\n")
    if not wait_until(lambda: kafka_ready(cfg), kc.start_timeout_s, lambda: kafka_pids(cfg),
                      answer):
        alive = proc.poll() is None
        raise StackError(
            f"kafka: the broker did not {'answer' if alive else 'start'} within "
            f"{kc.start_timeout_s} s (kafka.start_timeout_s); its log: {kp.log} "
            f"(stdout: {kp.stdout})\n{tail(kp.log if kp.log.exists() else kp.stdout)}"
        )
    log(f"kafka: up at {kafka_clients.bootstrap(cfg)}"
        + (" (TLS + SASL/SCRAM, ACLs)" if secure else "") + f" (pid {proc.pid}, log {kp.log})")


def kafka_down(cfg: Config, log=print) -> None:
    stop_part("kafka", kafka_pids(cfg), kafka_paths(cfg).pid_file, log)
