"""payline/ops.py without a cluster: releases are immutable bundles, Flink's operator ids of
uids, naming the operators of a refused restore."""

import json
import zipfile

import pytest

from payline import config, ops


def cfg_for(tmp_path):
    return config.load(None, [f"paths.ops_dir={tmp_path / 'ops'}"])


def test_a_release_is_an_immutable_bundle_of_the_job_version(tmp_path):
    cfg = cfg_for(tmp_path)
    m = ops.release(cfg, "fraud", "1.0.0")
    rel = ops.release_dir(cfg, "fraud", "1.0.0")
    assert json.loads((rel / "manifest.json").read_text()) == m
    with zipfile.ZipFile(rel / "bundle.zip") as zf:
        names = set(zf.namelist())
    assert {"udfs/fraud.py", "jobs/streaming/fraud.py", "payline/config.py",
            "payline/defaults.toml"} <= names
    assert set(m["files"]) == names
    assert (rel / "tree" / "jobs" / "streaming" / "fraud.py").is_file()
    assert (rel / "tree" / "conf" / "payline.toml").is_file()
    # the version's own Java functions, where its configuration looks for them
    jar = rel / "tree" / m["udf_jar"]["path"]
    assert jar.is_file() and jar.read_bytes() == cfg.flink.udf_jar.read_bytes()
    assert "evaluate-rules" in m["uids"]
    assert not (rel / "tree" / "udfs" / "fraud.py").stat().st_mode & 0o222  # read-only
    with pytest.raises(ops.OpsError, match="releases are immutable"):
        ops.release(cfg, "fraud", "1.0.0")
    assert [r["version"] for r in ops.releases(cfg, "fraud")] == ["1.0.0"]
    audit = [json.loads(x) for x in (cfg.paths.ops_dir / "audit.log").read_text().splitlines()]
    assert [(a["action"], a["outcome"], a["version"]) for a in audit] == [
        ("release", "ok", "1.0.0")]


@pytest.mark.parametrize("job, version, message", [
    ("nope", "1", "job: unknown job 'nope'"),
    ("fraud", "../x", "--version: '../x' is not a version"),
])
def test_a_bad_job_or_version_is_named(tmp_path, job, version, message):
    with pytest.raises(ops.OpsError, match=message):
        ops.release(cfg_for(tmp_path), job, version)


def test_deploy_of_an_unknown_version_lists_the_known_ones(tmp_path):
    cfg = cfg_for(tmp_path)
    ops.release(cfg, "transactions", "a1")
    with pytest.raises(ops.OpsError, match=r"no release 'b2' of transactions \(have: a1\)"):
        ops.manifest_of(cfg, "transactions", "b2")


def test_operator_ids_are_flinks_murmur3_of_the_uid():
    # murmur3_x64_128, seed 0, as Guava/Flink: checked against the mmh3 package and against
    # the id in Flink's own restore error (tests/integration/test_operations.py)
    assert ops.operator_id("evaluate-rules") == "2b1903224b7ebe5cd2f63eef02355d3f"
    assert ops.operator_id("") == "0" * 32
    assert len({ops.operator_id(f"uid-{i}") for i in range(1000)}) == 1000


def test_the_operators_of_a_refused_restore_are_named_by_uid_where_known():
    rules = ops.operator_id("evaluate-rules")
    message = (f"Cannot map checkpoint/savepoint state for operator {rules} to the new "
               f"program ... Cannot map checkpoint/savepoint state for operator "
               f"{'ab' * 16} to the new program")
    ids = ops.unmatched_operators(message)
    assert ids == sorted([rules, "ab" * 16])
    named = ops.name_operators(ids, ["evaluate-rules", "count-outputs"])
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
        ops._record_savepoint(cfg, "fraud", f"job{i}", paths[-1], "manual")
        if i == 1:  # the savepoint an upgrade was made through: rollback needs it
            ops._append(cfg.paths.ops_dir / "upgrades.jsonl", {
                "job": "fraud", "from_version": "a", "to_version": "b", "savepoint": paths[-1]})
    deleted = ops.prune_savepoints(cfg, "fraud")
    assert deleted == [paths[0], paths[2]]
    assert [r["path"] for r in ops.savepoints(cfg, "fraud", include_deleted=False)] == [
        paths[1], paths[3], paths[4]]
    assert not (tmp_path / "savepoints" / "savepoint-0").exists()
    assert (tmp_path / "savepoints" / "savepoint-1" / "_metadata").exists()
    assert ops.prune_savepoints(cfg, "fraud") == []  # nothing more to do


def test_a_prepared_client_submits_only_what_it_is_handed(tmp_path):
    import threading

    from payline import handoff

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


def test_only_releases_that_wait_for_the_handoff_are_prepared(tmp_path):
    from payline import config, ops

    cfg = config.load(overrides=[f"paths.ops_dir={tmp_path}"])
    manifest = {"job": "fraud", "version": "v1"}
    tree = ops.release_dir(cfg, "fraud", "v1") / "tree" / "payline"
    tree.mkdir(parents=True)
    assert not ops.Prepared.supported(cfg, manifest)
    (tree / "handoff.py").write_text("")
    assert ops.Prepared.supported(cfg, manifest)


def test_a_release_client_reads_its_own_defaults_on_this_stacks_folders(tmp_path):
    """A release's `flink run` client runs in the release's tree (its configuration root: its
    own defaults and Java functions, not the checkout's), and is told this stack's folders
    and jar directories, for the keys its own defaults have."""
    from payline import config, ops

    cfg = config.load(overrides=[f"paths.ops_dir={tmp_path}/ops",
                                       f"paths.run_dir={tmp_path}/run"])
    manifest = {"job": "transactions", "version": "v1",
                "script": "jobs/streaming/transactions.py"}
    tree = ops.release_dir(cfg, "transactions", "v1") / "tree"
    (tree / "conf").mkdir(parents=True)
    # an older version's defaults: no [kafka] jars_dir, a key of its own
    own = (cfg.root / "conf" / "payline.toml").read_text().replace("jars_dir", "jars_folder", 1)
    assert "jars_folder" in own
    (tree / "conf" / "payline.toml").write_text(own)

    assert ops.client_dir(manifest, cfg) == tree
    cmd, env = ops._client(cfg, manifest, None, None, ["--conf", "/x/overlay.toml"])
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
