"""A release on a machine with a JDK: the job version bundled with its own build of the Java
functions (payline.release.releases), immutable, listed and found by version."""

import json
import zipfile

import pytest

from payline.errors import OpsError
from payline.release import releases
from runtime import config


def cfg_for(tmp_path):
    return config.load(None, [f"paths.ops_dir={tmp_path / 'ops'}"])


def test_a_release_is_an_immutable_bundle_of_the_job_version(tmp_path):
    cfg = cfg_for(tmp_path)
    m = releases.release(cfg, "fraud", "1.0.0")
    rel = releases.release_dir(cfg, "fraud", "1.0.0")
    assert json.loads((rel / "manifest.json").read_text()) == m
    with zipfile.ZipFile(rel / "bundle.zip") as zf:
        names = set(zf.namelist())
    assert {"udfs/fraud.py", "jobs/streaming/fraud.py", "runtime/config.py",
            "runtime/defaults.toml"} <= names
    assert not [n for n in names if n.startswith("payline/")]
    assert set(m["files"]) == names
    assert (rel / "tree" / "jobs" / "streaming" / "fraud.py").is_file()
    assert (rel / "tree" / "conf" / "payline.toml").is_file()
    # the version's own Java functions, where its configuration looks for them
    jar = rel / "tree" / m["udf_jar"]["path"]
    assert jar.is_file() and jar.read_bytes() == cfg.flink.udf_jar.read_bytes()
    assert "evaluate-rules" in m["uids"]
    assert not (rel / "tree" / "udfs" / "fraud.py").stat().st_mode & 0o222  # read-only
    with pytest.raises(OpsError, match="releases are immutable"):
        releases.release(cfg, "fraud", "1.0.0")
    assert [r["version"] for r in releases.releases(cfg, "fraud")] == ["1.0.0"]
    audit = [json.loads(x) for x in (cfg.paths.ops_dir / "audit.log").read_text().splitlines()]
    assert [(a["action"], a["outcome"], a["version"]) for a in audit] == [
        ("release", "ok", "1.0.0")]


def test_deploy_of_an_unknown_version_lists_the_known_ones(tmp_path):
    cfg = cfg_for(tmp_path)
    releases.release(cfg, "transactions", "a1")
    with pytest.raises(OpsError, match=r"no release 'b2' of transactions \(have: a1\)"):
        releases.manifest_of(cfg, "transactions", "b2")


