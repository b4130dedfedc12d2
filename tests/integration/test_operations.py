"""Operations on the real cluster (payline/ops.py): release, deploy, savepoint, upgrade under
traffic, a refused upgrade that brings the old version back, rollback, the audit log."""

from __future__ import annotations

import json
import shutil

import pytest

from payline import ops

from .conftest import cancel_job, payline, wait_for
from .kafka_io import create_topic
from .test_fraud_job import (
    alerts_in,
    completed_checkpoints,
    flush_records,
    generated,
    reference_alert_ids,
    send_records,
    topics_of,
    wait_for_alerts,
)

pytestmark = pytest.mark.integration


def incompatible_tree(root, dest):
    """A copy of the code whose rules operator has another uid: its state has no home."""
    for part in ("payline", "udfs", "jobs", "conf"):
        shutil.copytree(root / part, dest / part,
                        ignore=shutil.ignore_patterns("__pycache__"))
    job = dest / "jobs" / "streaming" / "fraud.py"
    text = job.read_text()
    assert '.uid("evaluate-rules")' in text
    job.write_text(text.replace('.uid("evaluate-rules")', '.uid("evaluate-rules-v3")'))
    return dest


def test_release_deploy_upgrade_refused_upgrade_and_rollback(stack_conf, stack_cfg, tmp_path):
    topics = topics_of("it.ops")
    overrides = [f"--set=topics.{k}={v}" for k, v in topics.items()] + [
        "--set=fraud.group_id=it-ops"]
    cfg = stack_cfg
    payline(stack_conf, "up")
    for name in topics.values():
        create_topic(cfg, name, 3)
    first, second = generated(topics)
    want = reference_alert_ids(first + second)

    def cli(*args, check=True):
        return payline(stack_conf, *overrides, *args, check=check)

    assert "released fraud v1" in cli("release", "fraud", "--version", "v1").stdout
    cli("release", "fraud", "--version", "v2")
    again = cli("release", "fraud", "--version", "v1", check=False)
    assert again.returncode == 1 and "releases are immutable" in again.stderr
    ops.release(cfg, "fraud", "v3-broken", source=incompatible_tree(cfg.root, tmp_path))
    manifest = json.loads((ops.release_dir(cfg, "fraud", "v1") / "manifest.json").read_text())
    assert "evaluate-rules" in manifest["uids"] and manifest["files"]

    out = cli("deploy", "fraud", "--version", "v1").stdout
    assert "deployed fraud v1" in out
    try:
        job_v1 = ops.running_job(cfg, "fraud")
        send_records(cfg, first)
        seen = completed_checkpoints(cfg, job_v1)
        wait_for(lambda: completed_checkpoints(cfg, job_v1) >= seen + 1, 60, "a checkpoint")
        assert alerts_in(cfg, topics["alerts"]), "no alert before the upgrade"

        out = cli("savepoint", "fraud").stdout
        assert out.startswith("savepoint of fraud v1: file:")
        listed = cli("savepoints", "fraud").stdout
        assert "v1" in listed and "manual" in listed

        # compatible upgrade, mid-stream
        out = cli("upgrade", "fraud", "--version", "v2").stdout
        assert "upgraded fraud v1 -> v2" in out
        job_v2 = ops.running_job(cfg, "fraud")
        assert job_v2 != job_v1
        restored = ops._rest(cfg, f"/jobs/{job_v2}/checkpoints")["latest"]["restored"]
        assert restored and restored["is_savepoint"]

        # an upgrade whose state cannot be restored: refused, v2 back, the uid named
        refused = cli("upgrade", "fraud", "--version", "v3-broken", check=False)
        assert refused.returncode == 1
        assert "uid 'evaluate-rules'" in refused.stderr, refused.stderr
        assert "fraud v2 runs again" in refused.stderr
        assert ops.current_deployment(cfg, "fraud")["version"] == "v2"
        job_v2b = ops.running_job(cfg, "fraud")
        assert job_v2b not in (None, job_v2)

        # traffic after the switches: every alert of the whole data set, none lost
        send_records(cfg, second + flush_records(topics))
        assert wait_for_alerts(cfg, topics["alerts"], want) == want

        # rollback: v1 again, from the savepoint taken at the v1 -> v2 upgrade
        out = cli("rollback", "fraud").stdout
        assert "rolled fraud back to v1" in out
        assert ops.current_deployment(cfg, "fraud")["version"] == "v1"
        assert ops.running_job(cfg, "fraud") not in (None, job_v2b)
        assert wait_for_alerts(cfg, topics["alerts"], want) == want
    finally:
        job = ops.running_job(cfg, "fraud")
        if job:
            cancel_job(cfg, job)

    audit = [json.loads(line) for line in (cfg.paths.ops_dir / "audit.log").read_text()
             .splitlines()]
    trail = [(a["action"], a["outcome"], a.get("version")) for a in audit]
    for step in [("release", "ok", "v1"), ("deploy", "ok", "v1"), ("upgrade", "ok", "v2"),
                 ("upgrade", "failed", "v3-broken"), ("upgrade", "refused", "v3-broken"),
                 ("restore-after-failed-upgrade", "ok", "v2"), ("rollback", "ok", "v1")]:
        assert step in trail, (step, trail)
    assert all(a["user"] and a["time"] for a in audit)
    assert any(a["action"] == "savepoint" and a["outcome"] == "ok" for a in audit)
