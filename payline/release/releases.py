"""Making and finding releases: a job version bundled from a source tree (this checkout or
another commit's), its manifest, and the lookup of a version by name."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path

from payline.assets import ASSETS
from payline.errors import OpsError
from payline.local.java_build import build_udf_jar, udf_sources
from payline.release import bundle
from payline.release.operator_ids import declared_uids
from payline.release.records import audit, now_ms
from runtime.config import CODE_ROOT, defaults_text
from runtime.registry import STREAMING_JOBS, StreamingJob
from runtime.settings import Config

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


def check_job(job: str) -> StreamingJob:
    """The registered job ``job``; OpsError naming the known ones otherwise."""
    if job not in STREAMING_JOBS:
        raise OpsError(f"job: unknown job {job!r}; expected one of "
                       f"{', '.join(sorted(STREAMING_JOBS))}")
    return STREAMING_JOBS[job]


def git_version(root: Path) -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=root,
                             capture_output=True, text=True, timeout=10)
    except OSError:
        out = None
    if out is None or out.returncode != 0 or not out.stdout.strip():
        raise OpsError("--version: not a git checkout here; give the version explicitly")
    return out.stdout.strip()


def release_dir(cfg: Config, job: str, version: str) -> Path:
    return cfg.paths.ops_dir / "releases" / job / version


def release(cfg: Config, job: str, version: str | None = None,
            source: Path | None = None) -> dict:
    """Bundle ``job`` from ``source`` (default: the code running, a checkout or the installed
    packages) as ``version``."""
    spec = check_job(job)
    source = source or CODE_ROOT
    version = version or git_version(source)
    if not VERSION_RE.match(version):
        raise OpsError(f"--version: {version!r} is not a version (letters, digits, . _ + -)")
    final = release_dir(cfg, job, version)
    if final.exists():
        raise OpsError(f"release: {job} {version} exists; releases are immutable "
                       f"(give another --version)")
    tmp = final.with_name(f".{version}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    zipped = bundle.build(tmp / "bundle.zip", source)
    files = {}
    with zipfile.ZipFile(zipped) as zf:
        zf.extractall(tmp / "tree")
        for name in sorted(zf.namelist()):
            files[name] = hashlib.sha256(zf.read(name)).hexdigest()
    (tmp / "tree" / "conf").mkdir()  # the client's config root: defaults of this version
    defaults = defaults_text(source)  # its conf/payline.toml, or the installed code's copy
    (tmp / "tree" / "conf" / "payline.toml").write_text(defaults)
    # this version's Java functions (the dedup state), built from its own sources, where its
    # own defaults look for them (read as they are: the source's configuration need not have
    # this checkout's keys)
    default = tomllib.loads(defaults)["flink"]["udf_jar"]
    jar = (build_udf_jar(source, source / default) if udf_sources(source)
           # installed code: the sources it carries, built into this project, not the install
           else build_udf_jar(ASSETS, cfg.flink.udf_jar))
    shipped = tmp / "tree" / default
    shipped.parent.mkdir(parents=True)
    shutil.copy(jar, shipped)
    udf_jar = {"path": default, "sha256": hashlib.sha256(shipped.read_bytes()).hexdigest()}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True,
                            text=True).stdout.strip() or None
    manifest = {"job": job, "version": version, "commit": commit, "created_ms": now_ms(),
                "script": spec.script, "files": files,
                "uids": declared_uids(tmp / "tree"), "udf_jar": udf_jar}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    for p in sorted(tmp.rglob("*"), reverse=True):
        if p.is_file():  # read-only files; the folders stay removable by their owner
            p.chmod(0o444)
    tmp.rename(final)
    audit(cfg, "release", job, "ok", version=version, commit=commit)
    return manifest


def releases(cfg: Config, job: str) -> list[dict]:
    root = cfg.paths.ops_dir / "releases" / job
    out = [json.loads((d / "manifest.json").read_text()) for d in sorted(root.glob("*"))
           if (d / "manifest.json").is_file()] if root.is_dir() else []
    return sorted(out, key=lambda m: m["created_ms"])


def manifest_of(cfg: Config, job: str, version: str | None) -> dict:
    known = releases(cfg, job)
    if not known:
        raise OpsError(f"deploy: no release of {job}; make one with `payline release {job}`")
    if version is None:
        return known[-1]
    for m in known:
        if m["version"] == version:
            return m
    raise OpsError(f"--version: no release {version!r} of {job} (have: "
                   f"{', '.join(m['version'] for m in known)})")
