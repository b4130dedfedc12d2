"""The records of ``paths.ops_dir``: JSON lines only ever appended to (deployments, savepoints,
deleted savepoints, upgrades and rollbacks, the audit log), and what is read back from them."""

from __future__ import annotations

import getpass
import json
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

from runtime.settings import Config


def now_ms() -> int:
    return int(time.time() * 1000)


def append(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")


def read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def record_file(cfg: Config, name: str) -> Path:
    """``deployments``, ``savepoints``, ``savepoints_deleted`` or ``upgrades``."""
    return cfg.paths.ops_dir / f"{name}.jsonl"


def audit(cfg: Config, action: str, job: str, outcome: str, **details) -> None:
    append(cfg.paths.ops_dir / "audit.log", {
        "time": datetime.now(UTC).isoformat(timespec="seconds"), "user": getpass.getuser(),
        "host": socket.gethostname(), "action": action, "job": job, "outcome": outcome,
        "cluster": cfg.flink.rest_url, **details})


def deployments(cfg: Config, job: str) -> list[dict]:
    return [d for d in read(record_file(cfg, "deployments")) if d["job"] == job]


def savepoints(cfg: Config, job: str, include_deleted: bool = True) -> list[dict]:
    """The job's savepoints, oldest first (``deleted`` set for those retention removed)."""
    gone = {r["path"] for r in read(record_file(cfg, "savepoints_deleted"))}
    rows = [dict(s, deleted=s["path"] in gone)
            for s in read(record_file(cfg, "savepoints")) if s["job"] == job]
    return rows if include_deleted else [r for r in rows if not r["deleted"]]


def current_deployment(cfg: Config, job: str) -> dict | None:
    ok = [d for d in deployments(cfg, job) if d.get("outcome") == "running"]
    return ok[-1] if ok else None


def deployment_of(cfg: Config, job_id: str) -> dict | None:
    """The last deployment that started the Flink job ``job_id`` (None: not one of ours)."""
    found = [d for d in read(record_file(cfg, "deployments")) if d.get("job_id") == job_id]
    return found[-1] if found else None


def upgrades(cfg: Config, job: str) -> list[dict]:
    """The job's upgrades, oldest first (rollbacks left out)."""
    return [u for u in read(record_file(cfg, "upgrades"))
            if u["job"] == job and not u.get("rollback")]
