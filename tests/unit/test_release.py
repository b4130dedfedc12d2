"""Releases without a cluster or a JDK: what a bundle holds, Flink's operator ids of uids,
naming the operators of a refused restore, savepoint retention, the handoff to a prepared
client, and a release client's command."""

import threading
import zipfile

import pytest

from payline.errors import OpsError
from payline.release import bundle, lifecycle, records, releases
from payline.release.client import Prepared, client_command, client_dir
from payline.release.operator_ids import name_operators, operator_id, unmatched_operators
from runtime import config, handoff


def cfg_for(tmp_path):
    return config.load(None, [f"paths.ops_dir={tmp_path / 'ops'}"])


@pytest.mark.parametrize("job, version, message", [
    ("nope", "1", "job: unknown job 'nope'"),
    ("fraud", "../x", "--version: '../x' is not a version"),
])
def test_a_bad_job_or_version_is_named(tmp_path, job, version, message):
    with pytest.raises(OpsError, match=message):
        releases.release(cfg_for(tmp_path), job, version)


def test_operator_ids_are_flinks_murmur3_of_the_uid():
    # murmur3_x64_128, seed 0, as Guava/Flink: checked against the mmh3 package and against
    # the id in Flink's own restore error (tests/integration/test_operations.py)
    assert operator_id("evaluate-rules") == "2b1903224b7ebe5cd2f63eef02355d3f"
    assert operator_id("") == "0" * 32
    assert len({operator_id(f"uid-{i}") for i in range(1000)}) == 1000


def test_the_operators_of_a_refused_restore_are_named_by_uid_where_known():
    rules = operator_id("evaluate-rules")
    message = (f"Cannot map checkpoint/savepoint state for operator {rules} to the new "
               f"program ... Cannot map checkpoint/savepoint state for operator "
               f"{'ab' * 16} to the new program")
    ids = unmatched_operators(message)
    assert ids == sorted([rules, "ab" * 16])
    named = name_operators(ids, ["evaluate-rules", "count-outputs"])
    assert "uid 'evaluate-rules'" in named
    assert any(n.startswith(f"operator {'ab' * 16}") for n in named)


def test_retention_keeps_the_newest_savepoints_and_the_rollback_target(tmp_path):
    cfg = config.load(None, [f"paths.ops_dir={tmp_path / 'ops'}", "ops.savepoints_retained=2"])
    paths = []
    for i in range(5):
        d = tmp_path / "savepoints" / f"savepoint-{i}"
        d.mkdir(parents=True)
        (d / "_metadata").write_bytes(b"x" * 10)
        paths.append(f"file:{d}")
        lifecycle.record_savepoint(cfg, "fraud", f"job{i}", paths[-1], "manual")
        if i == 1:  # the savepoint an upgrade was made through: rollback needs it
            records.append(records.record_file(cfg, "upgrades"), {
                "job": "fraud", "from_version": "a", "to_version": "b", "savepoint": paths[-1]})
    deleted = lifecycle.prune_savepoints(cfg, "fraud")
    assert deleted == [paths[0], paths[2]]
    assert [r["path"] for r in records.savepoints(cfg, "fraud", include_deleted=False)] == [
        paths[1], paths[3], paths[4]]
    assert not (tmp_path / "savepoints" / "savepoint-0").exists()
    assert (tmp_path / "savepoints" / "savepoint-1" / "_metadata").exists()
    assert lifecycle.prune_savepoints(cfg, "fraud") == []  # nothing more to do


def test_a_prepared_client_submits_only_what_it_is_handed(tmp_path):
    spec_file = tmp_path / "h.json"
    got = []
    waiter = threading.Thread(target=lambda: got.append(handoff.wait(spec_file, wait_s=30)))
    waiter.start()
    for _ in range(200):
        if handoff.ready_path(spec_file).is_file():
            break
        threading.Event().wait(0.01)
    assert handoff.ready_path(spec_file).is_file() and not got, "ready, still waiting"
    handoff.write(spec_file, {"savepoint": "file:///sp/savepoint-1", "allow_non_restored": False})
    waiter.join(10)
    assert got == [{"savepoint": "file:///sp/savepoint-1", "allow_non_restored": False}]

    called_off = tmp_path / "off.json"
    handoff.write(called_off, {"abort": True})
    assert handoff.wait(called_off, wait_s=5) is None
    assert handoff.wait(tmp_path / "never.json", wait_s=0.2) is None  # nobody answers: nothing


@pytest.mark.parametrize("package", ["runtime", "payline"])  # today's layout, and the one before
def test_only_releases_that_wait_for_the_handoff_are_prepared(tmp_path, package):
    cfg = config.load(overrides=[f"paths.ops_dir={tmp_path}"])
    manifest = {"job": "fraud", "version": "v1"}
    tree = releases.release_dir(cfg, "fraud", "v1") / "tree" / package
    tree.mkdir(parents=True)
    assert not Prepared.supported(cfg, manifest)
    (tree / "handoff.py").write_text("")
    assert Prepared.supported(cfg, manifest)


def test_a_release_client_reads_its_own_defaults_on_this_stacks_folders(tmp_path):
    """A release's `flink run` client runs in the release's tree (its configuration root: its
    own defaults and Java functions, not the checkout's), and is told this stack's folders
    and jar directories, for the keys its own defaults have."""
    jars = tmp_path / "jars"  # what `flink run` is given; not opened here
    jars.mkdir()
    (jars / "flink-sql-connector-kafka-5.0.0-2.2.jar").write_bytes(b"")
    cfg = config.load(overrides=[f"paths.ops_dir={tmp_path}/ops",
                                 f"paths.run_dir={tmp_path}/run", f"flink.jars_dir={jars}",
                                 "flink.jobmanager=127.0.0.1:9"])  # nothing answers there
    manifest = {"job": "transactions", "version": "v1",
                "script": "jobs/streaming/transactions.py"}
    tree = releases.release_dir(cfg, "transactions", "v1") / "tree"
    (tree / "conf").mkdir(parents=True)
    # an older version's defaults: no [kafka] jars_dir, a key of its own
    own = (cfg.root / "conf" / "payline.toml").read_text().replace("jars_dir", "jars_folder", 1)
    assert "jars_folder" in own
    (tree / "conf" / "payline.toml").write_text(own)

    assert client_dir(manifest, cfg) == tree
    cmd, env = client_command(cfg, manifest, None, None, ["--conf", "/x/overlay.toml"])
    args = cmd[cmd.index("--python") + 2:]
    assert args[:2] == ["--conf", "/x/overlay.toml"]  # the deployment's own args first
    pinned = dict(a.split("=", 1) for a in args[3::2])
    assert args[2::2] == ["--set"] * len(pinned)
    assert pinned["paths.run_dir"] == str(tmp_path / "run")  # this stack's
    assert pinned["paths.checkpoints_dir"] == str(cfg.root / "checkpoints")  # made absolute
    assert pinned["flink.jars_dir"] == str(cfg.flink.jars_dir)
    assert "kafka.jars_dir" not in pinned  # not a key of that version: not passed
    assert "flink.udf_jar" not in pinned  # the version's own Java functions
    assert env["PYTHONPATH"] == str(tree)


def test_a_bundle_holds_the_semantics_the_run_time_layer_and_the_jobs_only(tmp_path):
    """What reaches a cluster: udfs, runtime, jobs and the defaults; nothing of the operator
    tool."""
    zipped = bundle.build(tmp_path / "b.zip")
    with zipfile.ZipFile(zipped) as zf:
        names = sorted(zf.namelist())
    assert {n.split("/", 1)[0] for n in names} == {"udfs", "runtime", "jobs"}
    assert {"udfs/semantics.py", "runtime/config.py", "runtime/handoff.py",
            "runtime/defaults.toml", "jobs/streaming/transactions.py",
            "jobs/streaming/fraud.py", "jobs/batch/reconcile.py", "jobs/archiver.py"} <= set(names)
    assert not [n for n in names if n.startswith("payline/")]
    # the same code gives the same bytes
    assert bundle.build(tmp_path / "again.zip").read_bytes() == zipped.read_bytes()


def test_a_tree_of_the_layout_before_the_run_time_layer_is_bundled_as_it_was(tmp_path):
    old = tmp_path / "old"
    for f in ("payline/config.py", "payline/handoff.py", "udfs/semantics.py",
              "jobs/streaming/transactions.py", "conf/payline.toml"):
        (old / f).parent.mkdir(parents=True, exist_ok=True)
        (old / f).write_text("# " + f)
    with zipfile.ZipFile(bundle.build(tmp_path / "old.zip", old)) as zf:
        assert sorted(zf.namelist()) == [
            "jobs/streaming/transactions.py", "payline/config.py", "payline/defaults.toml",
            "payline/handoff.py", "udfs/semantics.py"]
