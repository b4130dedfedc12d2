"""The whole local stack, in order: ``up`` (jars, secure mode's files, the broker, the topics
and ACLs, the Flink cluster) is idempotent and waits until each part really answers; ``down``
stops only the processes whose pids it recorded (and their children) and checks that they are
gone. Everything a run writes lives under ``paths.run_dir``.
"""

from __future__ import annotations

from payline import kafka_admin
from payline.errors import StackError
from payline.local import certs
from payline.local.archiver_proc import archiver_down
from payline.local.broker import kafka_down, kafka_paths, kafka_up
from payline.local.cluster import flink_down, flink_up
from payline.local.java_build import ensure_jars
from runtime import kafka_clients, progress
from runtime.settings import Config


def up(cfg: Config, log=print, secure: bool = False) -> None:
    """``secure``: `payline up --secure` (docs/security.md); a run dir once set up secure
    stays secure."""
    progress.phase("jars: fetching from Maven Central, building the Flink functions")
    ensure_jars(cfg)
    if secure or kafka_clients.active(cfg):
        kp = kafka_paths(cfg)
        if (kp.data / "meta.properties").exists() and not kafka_clients.active(cfg):
            raise StackError(f"kafka: the broker's storage in {kp.data} was formatted without "
                             f"secure mode; `payline down` and remove {kp.home} to start it "
                             f"with --secure")
        certs.prepare(cfg, log)
    kafka_up(cfg, log)
    try:
        progress.phase("kafka: creating the topics")
        kafka_admin.create_topics(cfg, log)
        if kafka_clients.active(cfg):
            kafka_admin.apply_acls(cfg, log)
        flink_up(cfg, log)
    except Exception:
        log("up failed; the parts that did start are left running for inspection "
            "(`payline down` stops them)")
        raise


def down(cfg: Config, log=print) -> None:
    archiver_down(cfg, log)
    flink_down(cfg, log)
    kafka_down(cfg, log)
