"""A job's deployment history (`payline releases JOB`), read from the deployment records:
one revision per deployment, like ``helm history``."""

from __future__ import annotations

from payline.release.records import deployments
from runtime.settings import Config
from runtime.times import iso


def history(cfg: Config, job: str) -> list[dict]:
    """Every deployment of ``job``, oldest first, numbered from 1. ``status``: ``deployed`` for
    the last one that started, ``superseded`` for the ones that ran before it, ``failed`` for
    those that never ran."""
    rows = deployments(cfg, job)
    started = [i for i, d in enumerate(rows) if d.get("outcome") == "running"]
    current = started[-1] if started else None
    out = []
    for i, d in enumerate(rows):
        status = ("failed" if d.get("outcome") != "running" else
                  "deployed" if i == current else "superseded")
        out.append({"revision": i + 1, "time": iso(d["time_ms"]), "status": status,
                    "version": d["version"], "action": d.get("action", "deploy"),
                    "job_id": d.get("job_id"), "from_savepoint": d.get("from_savepoint"),
                    "parallelism": d.get("parallelism")})
    return out


def format_history(rows: list[dict]) -> str:
    lines = [f"{'REVISION':<9}{'UPDATED':<22}{'STATUS':<12}{'VERSION':<26}{'ACTION':<34}"
             "FROM SAVEPOINT"]
    for r in rows:
        lines.append(f"{r['revision']:<9}{r['time']:<22}{r['status']:<12}{r['version']:<26}"
                     f"{r['action']:<34}{r['from_savepoint'] or '-'}")
    return "\n".join(lines)
