"""Operations on the real cluster (payline.release): release, deploy (and its refusal of a
running job), savepoint, upgrade under traffic, a refused upgrade that brings the old version
back, rollback (from the upgrade's savepoint, --to-savepoint, --keep-state), the audit log; a
release built before the run-time layer existed upgraded to today's layout and rolled back
to."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest
from kafka import KafkaConsumer, TopicPartition

from payline.flink.dist import render_flink_conf
from payline.flink.rest import FlinkRest
from payline.local import cluster
from payline.release import lifecycle, records, releases
from runtime import config
from tests.support.fraud_traffic import (
    alerts_in,
    completed_checkpoints,
    flush_records,
    generated,
    reference_alert_ids,
    send_records,
    topics_of,
    wait_for_alerts,
)
from tests.support.kafka_io import create_topic, read_all
from tests.support.stack import cancel_job, payline, wait_for
from tests.support.txn_dataset import (
    PHASE_1,
    PHASE_2,
    committed_aggregates,
    expected_aggregates,
    run_dataset,
)
from tests.support.txn_dataset import topics_of as txn_topics_of

pytestmark = pytest.mark.integration

# the last commit of the layout before the run-time layer (jobs imported payline/): its
# releases must still deploy, upgrade to today's layout and be rolled back to
OLD_LAYOUT_COMMIT = "6d68aff"


def code_copy(root, dest):
    """What a release is made from, copied from the checkout."""
    for part in ("payline", "runtime", "udfs", "jobs", "conf", "infra/flink-udfs"):
        shutil.copytree(root / part, dest / part,
                        ignore=shutil.ignore_patterns("__pycache__", "target"))


def incompatible_tree(root, dest):
    """A copy of the code whose rules operator has another uid: its state has no home."""
    code_copy(root, dest)
    job = dest / "jobs" / "streaming" / "fraud.py"
    text = job.read_text()
    assert '.uid("evaluate-rules")' in text
    job.write_text(text.replace('.uid("evaluate-rules")', '.uid("evaluate-rules-v3")'))
    return dest


def tree_with_defaults_of_its_own(root, dest):
    """A copy of the code whose configuration has a key this checkout's has not (as an older or
    newer version's may): its client must read its own defaults, never the checkout's."""
    code_copy(root, dest)
    code, defaults = dest / "runtime" / "settings.py", dest / "conf" / "payline.toml"
    field = "    savepoints_retained: int = _int(1, 10_000)\n"
    value = "savepoints_retained = 5\n"
    assert field in code.read_text() and value in defaults.read_text()
    code.write_text(code.read_text().replace(
        field, field + "    release_marker: int = _int(0, 10)\n"))
    defaults.write_text(defaults.read_text().replace(value, value + "release_marker = 1\n"))
    return dest


def on_own_topics(stack_conf, cfg, topics: dict[str, str], *sets: str):
    """The stack up, ``topics`` created; returns a `payline` runner that points every command
    (and the jobs it deploys) at them."""
    overrides = [f"--set=topics.{k}={v}" for k, v in topics.items()] + [
        f"--set={s}" for s in sets]
    payline(stack_conf, "up")
    for name in topics.values():
        create_topic(cfg, name, 3)

    def cli(*args, check=True):
        return payline(stack_conf, *overrides, *args, check=check)
    return cli


def cancel_running(cfg, job: str) -> None:
    """A test's clean-up: cancel whichever instance of ``job`` runs (a test may have replaced
    the one it started), if any."""
    running = lifecycle.running_job(cfg, job)
    if running:
        cancel_job(cfg, running)


def after_a_new_checkpoint(cfg, job: str) -> str:
    """The id of ``job``'s running instance, once it has completed one more checkpoint."""
    job_id = lifecycle.running_job(cfg, job)
    seen = completed_checkpoints(cfg, job_id)
    wait_for(lambda: completed_checkpoints(cfg, job_id) >= seen + 1, 60, "a checkpoint")
    return job_id


def savepoint_path(out: str) -> str:
    """The savepoint's path in the output of `payline savepoint` ("...: PATH (...)")."""
    return out.split(": ", 1)[1].split(" (", 1)[0]


def assert_restored_from_a_savepoint(cfg, job_id: str) -> dict:
    restored = FlinkRest.of(cfg).get(f"/jobs/{job_id}/checkpoints")["latest"]["restored"]
    assert restored and restored["is_savepoint"]
    return restored


def assert_restored_from(cfg, job_id: str, savepoint: str) -> None:
    restored = assert_restored_from_a_savepoint(cfg, job_id)
    assert restored["external_path"].removeprefix("file:") == savepoint.removeprefix("file:")


def test_release_deploy_upgrade_refused_upgrade_and_rollback(stack_conf, stack_cfg, tmp_path):
    topics = topics_of("it.ops")
    cfg = stack_cfg
    cli = on_own_topics(stack_conf, cfg, topics, "fraud.group_id=it-ops")
    first, second = generated(topics)
    want = reference_alert_ids(first + second)

    # v1: a version whose defaults have a key this checkout's lack (deploying it and rolling
    # back to it must not read the checkout's defaults)
    releases.release(cfg, "fraud", "v1", source=tree_with_defaults_of_its_own(cfg.root,
                                                                          tmp_path / "v1"))
    assert "released fraud v2" in cli("release", "fraud", "--version", "v2").stdout
    again = cli("release", "fraud", "--version", "v2", check=False)
    assert again.returncode == 3 and "releases are immutable" in again.stderr
    releases.release(cfg, "fraud", "v3-broken", source=incompatible_tree(cfg.root,
                                                                   tmp_path / "v3"))
    manifest = json.loads((releases.release_dir(cfg, "fraud", "v1") / "manifest.json").read_text())
    assert "evaluate-rules" in manifest["uids"] and manifest["files"]

    out = cli("deploy", "fraud", "--version", "v1").stdout
    assert "deployed fraud v1" in out
    try:
        # a second deploy of a running job is refused, and the running one is untouched
        running = lifecycle.running_job(cfg, "fraud")
        twice = cli("deploy", "fraud", "--version", "v2", check=False)
        assert twice.returncode == 3 and twice.stderr.count("\n") == 1
        assert f"fraud is already running (job {running})" in twice.stderr
        assert "payline upgrade fraud --version V" in twice.stderr
        assert lifecycle.running_job(cfg, "fraud") == running

        send_records(cfg, first)
        job_v1 = after_a_new_checkpoint(cfg, "fraud")
        assert alerts_in(cfg, topics["alerts"]), "no alert before the upgrade"

        out = cli("savepoint", "fraud").stdout
        assert out.startswith("savepoint of fraud v1: file:")
        v1_savepoint = savepoint_path(out)
        listed = cli("savepoints", "fraud").stdout
        assert "v1" in listed and "manual" in listed

        # compatible upgrade, mid-stream
        out = cli("upgrade", "fraud", "--version", "v2").stdout
        assert "upgraded fraud v1 -> v2" in out
        job_v2 = lifecycle.running_job(cfg, "fraud")
        assert job_v2 != job_v1
        assert_restored_from_a_savepoint(cfg, job_v2)

        # an upgrade whose state cannot be restored: refused, v2 back, the uid named
        refused = cli("upgrade", "fraud", "--version", "v3-broken", check=False)
        assert refused.returncode == 3  # could not run: the operator decides what next
        assert "uid 'evaluate-rules'" in refused.stderr, refused.stderr
        assert "fraud v2 runs again" in refused.stderr
        assert records.current_deployment(cfg, "fraud")["version"] == "v2"
        job_v2b = lifecycle.running_job(cfg, "fraud")
        assert job_v2b not in (None, job_v2)

        # traffic after the switches: every alert of the whole data set, none lost
        send_records(cfg, second + flush_records(topics))
        assert wait_for_alerts(cfg, topics["alerts"], want) == want

        # rollback: v1 again, from the savepoint taken at the v1 -> v2 upgrade
        out = cli("rollback", "fraud").stdout
        assert "rolled fraud back to v1" in out
        assert records.current_deployment(cfg, "fraud")["version"] == "v1"
        job_v1b = lifecycle.running_job(cfg, "fraud")
        assert job_v1b not in (None, job_v2b)
        assert wait_for_alerts(cfg, topics["alerts"], want) == want

        # the refused upgrade, taken with its state dropped on purpose
        out = cli("upgrade", "fraud", "--version", "v3-broken",
                  "--allow-non-restored-state").stdout
        assert "upgraded fraud v1 -> v3-broken" in out
        job_v3 = lifecycle.running_job(cfg, "fraud")
        assert job_v3 not in (None, job_v1b)
        assert_restored_from_a_savepoint(cfg, job_v3)

        # the two ways of choosing the state to roll back to exclude each other
        both = cli("rollback", "fraud", "--keep-state", "--to-savepoint", v1_savepoint,
                   check=False)
        assert both.returncode == 2 and "exclude each other" in both.stderr
        assert lifecycle.running_job(cfg, "fraud") == job_v3
        # rollback --to-savepoint: v1 from the savepoint taken by hand before any upgrade;
        # what came after it is replayed, and the alerts are the whole data set's again
        out = cli("rollback", "fraud", "--to-savepoint", v1_savepoint).stdout
        assert f"rolled fraud back to v1 from {v1_savepoint}" in out
        job_v1c = lifecycle.running_job(cfg, "fraud")
        assert job_v1c not in (None, job_v3)
        assert_restored_from(cfg, job_v1c, v1_savepoint)
        assert records.current_deployment(cfg, "fraud")["version"] == "v1"
        assert wait_for_alerts(cfg, topics["alerts"], want) == want
    finally:
        cancel_running(cfg, "fraud")

    audit = [json.loads(line) for line in (cfg.paths.ops_dir / "audit.log").read_text()
             .splitlines()]
    trail = [(a["action"], a["outcome"], a.get("version")) for a in audit]
    for step in [("release", "ok", "v1"), ("deploy", "ok", "v1"), ("upgrade", "ok", "v2"),
                 ("upgrade", "failed", "v3-broken"), ("upgrade", "refused", "v3-broken"),
                 ("restore-after-failed-upgrade", "ok", "v2"), ("rollback", "ok", "v1"),
                 ("upgrade", "ok", "v3-broken")]:
        assert step in trail, (step, trail)
    assert trail.count(("rollback", "ok", "v1")) == 2
    assert all(a["user"] and a["time"] for a in audit)
    assert any(a["action"] == "savepoint" and a["outcome"] == "ok" for a in audit)


def end_offsets_total(cfg, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=cfg.kafka.bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def test_status_shows_version_checkpoints_restarts_and_the_lag_of_a_stopped_job(stack_conf,
                                                                                stack_cfg):
    names = {k: f"it.status.{k}" for k in ("transactions", "accounts", "aggregates", "late",
                                          "dlq")}
    cfg = config.load(stack_conf, [f"topics.{k}={v}" for k, v in names.items()])
    cli = on_own_topics(stack_conf, cfg, names)

    def status():
        return json.loads(cli("status", "--json").stdout)

    def our_job(st):
        return next((j for j in st["flink"]["jobs"] if j["name"] == "payline-transactions"
                     and j["state"] == "RUNNING"), None)

    cli("release", "transactions", "--version", "s1")
    cli("deploy", "transactions", "--version", "s1")
    job_id = lifecycle.running_job(cfg, "transactions")
    try:
        cli("generate", "--count", "3000", "--max-speed")

        def caught_up(s):
            job, group = our_job(s), s["consumers"]["transactions"]
            return (job and job.get("pending_records") == 0 and job["last_checkpoint"]
                    and group.get("total") == 0 and s)

        st = wait_for(lambda: caught_up(status()), 120,
                      "the job caught up and committed its offsets")
        job = our_job(st)
        assert (job["id"], job["version"], job["restarts"]) == (job_id, "s1", 0)
        assert job["uptime_s"] > 0 and job["last_checkpoint"]["size_bytes"] > 0
        group = st["consumers"]["transactions"]
        assert group["group"] == "payline-transactions"
        assert set(group["lag"]) == {f"{names['transactions']}/{p}" for p in range(3)}

        # a backlog: the job's sources report what they have yet to read, then read it. A
        # running job reads as fast as the records are sent (its backlog may never reach a
        # metrics poll), so the records are sent while it is stopped with a savepoint, and it
        # comes back from that savepoint with all of them to read
        path = savepoint_path(cli("savepoint", "transactions", "--stop").stdout)
        cli("generate", "--count", "300000", "--max-speed", "--seed", "5")
        cli("deploy", "transactions", "--version", "s1", "--from-savepoint", path)
        job_id = lifecycle.running_job(cfg, "transactions")
        started, seen = time.monotonic(), []

        def pending():
            job = our_job(status()) or {}
            seen.append((round(time.monotonic() - started, 1), job.get("pending_records"),
                         job.get("records_in_per_s")))
            return job.get("pending_records")

        try:
            wait_for(lambda: (pending() or 0) > 0, 60, "the sources report a backlog", every_s=1)
            wait_for(lambda: pending() == 0, 180, "the backlog read")
        finally:  # a timeout then shows what each poll saw (pytest prints a failure's stdout)
            print("status after the deploy (s, pending records, records in/s):", seen)

        # a killed TaskManager: the job restarts, and status counts it
        for pid in cluster.flink_pids(cfg)["taskmanager"]:
            os.kill(pid, signal.SIGKILL)
        cluster.taskmanager_start(cfg, log=lambda _: None)
        st = wait_for(lambda: (lambda s: our_job(s) and (our_job(s)["restarts"] or 0) >= 1
                               and s)(status()), 180, "the restart in status")
        assert our_job(st)["id"] == job_id
        # and it runs again on the new TaskManager (a restart counted is not a recovery; the
        # tests after this one run on that TaskManager)
        wait_for(lambda: FlinkRest.of(cfg).all_running(job_id), 120,
                 "the job running again on the new TaskManager")
    finally:
        cancel_running(cfg, "transactions")

    # stopped: traffic keeps coming, and the group's lag is exactly what it has not read
    wait_for(lambda: lifecycle.running_job(cfg, "transactions") is None, 60, "the job stopped")
    before = status()["consumers"]["transactions"]["total"]
    sent_before = end_offsets_total(cfg, names["transactions"])
    cli("generate", "--count", "500", "--max-speed", "--seed", "9")
    sent = end_offsets_total(cfg, names["transactions"]) - sent_before
    after = status()["consumers"]["transactions"]
    assert sent >= 500 and after["total"] == before + sent
    assert after["group"] == "payline-transactions"


def test_rescale_1_2_1_through_savepoints_gives_the_uninterrupted_alerts(stack_conf, stack_cfg):
    """The rules' keyed state and timers move between 1 and 2 subtasks through savepoints
    (`payline savepoint --stop`, `payline deploy --parallelism N --from-savepoint`): the
    alerts equal the brute-force reference of the whole data set. The step to 2 goes through
    ``--jobmanager`` (a remote cluster's REST address) with the configured local address
    pointing nowhere, so both `flink run` and the REST calls must take the option."""
    topics = topics_of("it.rescale")
    cfg = stack_cfg
    cli = on_own_topics(stack_conf, cfg, topics, "fraud.group_id=it-rescale")
    first, second = generated(topics)
    want = reference_alert_ids(first + second)
    half = len(second) // 2

    def parallelism(job_id):
        return max(v["parallelism"] for v in FlinkRest.of(cfg).job(job_id)["vertices"])

    remote = ("--set=flink.rest_port=1", f"--jobmanager=127.0.0.1:{cfg.flink.rest_port}")

    def stop_and_redeploy(p, via=()):
        job_id = after_a_new_checkpoint(cfg, "fraud")
        path = savepoint_path(cli(*via[:1], "savepoint", "fraud", "--stop", *via[1:]).stdout)
        cli(*via[:1], "deploy", "fraud", "--version", "r1", "--parallelism", str(p),
            "--from-savepoint", path, *via[1:])
        new = lifecycle.running_job(cfg, "fraud")
        assert new != job_id and parallelism(new) == p
        assert_restored_from_a_savepoint(cfg, new)

    cli("release", "fraud", "--version", "r1")
    cli("deploy", "fraud", "--version", "r1", "--parallelism", "1")
    try:
        assert parallelism(lifecycle.running_job(cfg, "fraud")) == 1
        send_records(cfg, first)
        # the configured address (port 1) reaches no cluster; the option does
        assert not json.loads(cli(remote[0], "status", "--json").stdout)["flink"]["ready"]
        flink = json.loads(cli(remote[0], "status", "--json", remote[1]).stdout)["flink"]
        assert flink["ready"] and flink["remote"]
        assert [j["version"] for j in flink["jobs"]
                if j["name"] == "payline-fraud" and j["state"] == "RUNNING"] == ["r1"]
        stop_and_redeploy(2, via=remote)
        last = [json.loads(line) for line in
                (cfg.paths.ops_dir / "audit.log").read_text().splitlines()][-1]
        assert (last["action"], last["outcome"], last["cluster"]) == (
            "deploy", "ok", f"http://127.0.0.1:{cfg.flink.rest_port}")
        send_records(cfg, second[:half])
        stop_and_redeploy(1)
        send_records(cfg, second[half:] + flush_records(topics))
        assert wait_for_alerts(cfg, topics["alerts"], want) == want
    finally:
        render_flink_conf(cfg)  # the local address back in the client configuration
        cancel_running(cfg, "fraud")


def test_upgrade_of_the_transactions_job_mid_stream_changes_no_committed_output(stack_conf,
                                                                               stack_cfg):
    """The transactions job's exact data set (tests/integration/test_transactions_job.py)
    with `payline upgrade` between its first part and the rest: the committed aggregates are
    the independently computed ones, each once, and the dedup state came through the switch
    (the retry and the conflicting copy of a transaction sent before the upgrade are
    recognised after it)."""
    topics = txn_topics_of("it.upgrade-tx")
    cfg = stack_cfg
    cli = on_own_topics(stack_conf, cfg, topics)

    cli("release", "transactions", "--version", "u1")
    cli("release", "transactions", "--version", "u2")
    cli("deploy", "transactions", "--version", "u1")
    versions = []
    positions = run_dataset_with_a_switch(
        cfg, topics, upgrade_switch(cli, cfg, "u1", "u2", versions))
    assert versions == ["u2"]
    assert_exact_outputs_across_the_switch(cfg, topics, positions)


def upgrade_switch(cli, cfg, old: str, new: str, versions: list):
    """A switch for the transactions job's data set: `payline upgrade` from ``old`` to ``new``
    once a checkpoint has covered the first part; the version then running is appended to
    ``versions``, and it must have started from the upgrade's savepoint."""
    def switch(when):
        if when is None:
            return
        after_a_new_checkpoint(cfg, "transactions")
        assert f"upgraded transactions {old} -> {new}" in cli(
            "upgrade", "transactions", "--version", new).stdout
        versions.append(records.current_deployment(cfg, "transactions")["version"])
        assert_restored_from_a_savepoint(cfg, lifecycle.running_job(cfg, "transactions"))
    return switch


def run_dataset_with_a_switch(cfg, topics, switch) -> dict:
    """The transactions job's data set with ``switch`` after its first part (and called with
    None after the rest); the job is cancelled at the end. Returns the source positions."""
    try:
        return run_dataset(cfg, topics, crash=switch)
    finally:
        cancel_running(cfg, "transactions")


def assert_exact_outputs_across_the_switch(cfg, topics, positions):
    """The transactions job's data set run with a switch (an upgrade, a change of state
    backend) after its first part: every closed window's aggregate once, with the
    independently computed values, and the DLQ's records; the retry and the conflicting copy,
    sent after the switch, were judged against a transaction sent before it."""
    committed = committed_aggregates(cfg, topics)
    expected = expected_aggregates()
    keys = [k for k, _ in committed if k in expected]
    assert sorted(keys) == sorted(expected)  # each closed window once: none lost, none twice
    assert {k: v for k, v in committed if k in expected} == expected
    dlq = {(d["source_partition"], d["source_offset"]): d["error_class"] for d in
           (json.loads(r.value) for r in read_all(cfg, topics["dlq"]))}
    assert dlq[positions["a1-1-conflict"]] == "CONFLICTING_DUPLICATE"
    assert positions["a1-1-retry"] not in dlq
    labels = {label: expect for label, _, _, expect in PHASE_1 + PHASE_2}
    assert sorted(dlq.values()) == sorted(e for e in labels.values() if e.isupper())


def test_a_switch_of_the_state_backend_through_a_savepoint_keeps_the_dedup_state(stack_conf,
                                                                                  stack_cfg):
    """docs/performance.md#choosing-the-state-backend: the transactions job's data set with,
    between its two parts, the job stopped with a savepoint under RocksDB, Flink restarted with
    ``flink.state_backend = hashmap`` and the job deployed from that savepoint. The job then
    runs on heap state, and the dedup state came across: the retry and the conflicting copy
    of a transaction sent before the switch are judged against it; the committed aggregates
    are the independently computed ones, each once."""
    topics = txn_topics_of("it.backend-tx")
    cfg = stack_cfg
    heap = "flink.state_backend=hashmap"
    heap_cfg = config.load(stack_conf, [heap])
    cli = on_own_topics(stack_conf, cfg, topics)

    def backend(job_id):
        return FlinkRest.of(cfg).get(f"/jobs/{job_id}/checkpoints/config")["state_backend"]

    cli("release", "transactions", "--version", "b1")
    cli("deploy", "transactions", "--version", "b1")
    seen_backends = [backend(lifecycle.running_job(cfg, "transactions"))]

    def switch(when):
        if when is None:
            return
        after_a_new_checkpoint(cfg, "transactions")
        path = savepoint_path(cli("savepoint", "transactions", "--stop").stdout)
        cluster.flink_down(cfg, log=lambda _: None)
        cluster.flink_up(heap_cfg, log=lambda _: None)
        cli(f"--set={heap}", "deploy", "transactions", "--version", "b1", "--from-savepoint", path)
        new = lifecycle.running_job(cfg, "transactions")
        assert_restored_from_a_savepoint(cfg, new)
        seen_backends.append(backend(new))

    try:
        positions = run_dataset_with_a_switch(cfg, topics, switch)
    finally:
        # the session's stack back on its own configuration for the tests after this one
        cluster.flink_down(cfg, log=lambda _: None)
        cluster.flink_up(cfg, log=lambda _: None)
    assert seen_backends == ["EmbeddedRocksDBStateBackend", "HashMapStateBackend"]
    assert_exact_outputs_across_the_switch(cfg, topics, positions)


def old_layout_tree(root, dest):
    """This repository at OLD_LAYOUT_COMMIT, as a checkout of it would be (git archive)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(root), "archive", OLD_LAYOUT_COMMIT],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    assert (dest / "payline" / "ops.py").is_file() and not (dest / "runtime").exists()
    return dest


def release_with_its_own_code(tree, conf, job: str, version: str) -> None:
    """`payline release` as that commit's own code did it: its payline package, its tree as
    the source."""
    code = ("import sys; from pathlib import Path; from payline import config, ops; "
            "ops.release(config.load(sys.argv[1]), sys.argv[2], sys.argv[3], Path.cwd())")
    subprocess.run([sys.executable, "-c", code, str(conf), job, version], cwd=tree,
                   env={**os.environ, "PYTHONPATH": str(tree)}, check=True,
                   capture_output=True, text=True, timeout=300)


def test_a_release_of_the_layout_before_upgrades_to_todays_and_is_rolled_back_to(
        stack_conf, stack_cfg, tmp_path):
    """A release built by the code before the run-time layer existed (its bundle holds
    payline/, its jobs import it) deploys, takes the transactions job's data set, upgrades
    through its savepoint to a release of today's layout halfway (the committed outputs are
    the independently computed ones, each once, and the dedup state came through), and is
    rolled back to with --keep-state (today's state read by the old code)."""
    topics = txn_topics_of("it.compat-tx")
    cfg = stack_cfg
    cli = on_own_topics(stack_conf, cfg, topics)
    release_with_its_own_code(old_layout_tree(cfg.root, tmp_path / "old"), stack_conf,
                              "transactions", "old-layout")
    with zipfile.ZipFile(releases.release_dir(cfg, "transactions", "old-layout")
                         / "bundle.zip") as zf:
        packages = {n.split("/", 1)[0] for n in zf.namelist()}
    assert packages == {"payline", "udfs", "jobs"}
    cli("release", "transactions", "--version", "new-layout")
    with zipfile.ZipFile(releases.release_dir(cfg, "transactions", "new-layout")
                         / "bundle.zip") as zf:
        assert {n.split("/", 1)[0] for n in zf.namelist()} == {"runtime", "udfs", "jobs"}

    assert "deployed transactions old-layout" in cli(
        "deploy", "transactions", "--version", "old-layout").stdout
    versions = []
    try:
        positions = run_dataset(cfg, topics, crash=upgrade_switch(
            cli, cfg, "old-layout", "new-layout", versions))
        assert versions == ["new-layout"]
        assert_exact_outputs_across_the_switch(cfg, topics, positions)
        new_job = after_a_new_checkpoint(cfg, "transactions")
        out = cli("rollback", "transactions", "--keep-state").stdout
        assert "rolled transactions back to old-layout" in out
        old_job = lifecycle.running_job(cfg, "transactions")
        assert old_job not in (None, new_job)
        assert_restored_from_a_savepoint(cfg, old_job)
        assert records.current_deployment(cfg, "transactions")["version"] == "old-layout"
        assert FlinkRest.of(cfg).all_running(old_job)
        # nothing replayed: the committed outputs are still exactly the expected ones
        assert_exact_outputs_across_the_switch(cfg, topics, positions)
    finally:
        cancel_running(cfg, "transactions")
