"""Releases, deployments, savepoints, upgrades and rollbacks of the streaming jobs.

Everything lives under ``paths.ops_dir`` (default ``ops/``, kept across ``payline down``):

* ``releases/<job>/<version>/``: the immutable bundle of a job version: ``bundle.zip`` (the
  ``payline``, ``udfs`` and ``jobs`` packages and the default configuration, shipped to the
  TaskManagers with ``--pyFiles``), ``tree/`` (the same files unpacked, read-only: the client
  runs the job script from there, with the version's own build of the Java functions,
  ``flink.udf_jar``) and ``manifest.json`` (job, version, git commit, time, the sha256 of
  every file and of the jar). A version is never overwritten.
* ``deployments.jsonl``: one line per deployment (job, version, Flink job id, parallelism,
  the savepoint it started from).
* ``savepoints.jsonl``: one line per savepoint (job, version, path, size, time, the deployment
  that made it, why).
* ``audit.log``: one JSON line per deploy / upgrade / rollback / savepoint: who, when, what,
  from which savepoint, outcome. Only appended to.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import shutil
import socket
import struct
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from jobs.streaming import ACCOUNTS_TABLE
from payline import handoff
from payline.config import Config

JOBS = {"transactions": ("transactions.py", "payline-transactions"),
        "fraud": ("fraud.py", "payline-fraud")}
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


class OpsError(RuntimeError):
    """An operation that failed; str(error) is the message for the operator."""


# --- records -------------------------------------------------------------------------------------


def _now_ms() -> int:
    return int(time.time() * 1000)


def _append(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def audit(cfg: Config, action: str, job: str, outcome: str, **details) -> None:
    _append(cfg.paths.ops_dir / "audit.log", {
        "time": datetime.now(UTC).isoformat(timespec="seconds"), "user": getpass.getuser(),
        "host": socket.gethostname(), "action": action, "job": job, "outcome": outcome,
        "cluster": cfg.flink.rest_url, **details})


def deployments(cfg: Config, job: str) -> list[dict]:
    return [d for d in _read(cfg.paths.ops_dir / "deployments.jsonl") if d["job"] == job]


def savepoints(cfg: Config, job: str, include_deleted: bool = True) -> list[dict]:
    """The job's savepoints, oldest first (``deleted`` set for those retention removed)."""
    gone = {r["path"] for r in _read(cfg.paths.ops_dir / "savepoints_deleted.jsonl")}
    rows = [dict(s, deleted=s["path"] in gone)
            for s in _read(cfg.paths.ops_dir / "savepoints.jsonl") if s["job"] == job]
    return rows if include_deleted else [r for r in rows if not r["deleted"]]


# --- releases ------------------------------------------------------------------------------------


def _check_job(job: str) -> None:
    if job not in JOBS:
        raise OpsError(f"job: unknown job {job!r}; expected one of {', '.join(sorted(JOBS))}")


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
    """Bundle ``job`` from ``source`` (default: this checkout) as ``version``."""
    from payline import pyfiles

    _check_job(job)
    source = source or cfg.root
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
    bundle = pyfiles.build(tmp / "bundle.zip", source)
    files = {}
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(tmp / "tree")
        for name in sorted(zf.namelist()):
            files[name] = hashlib.sha256(zf.read(name)).hexdigest()
    (tmp / "tree" / "conf").mkdir()  # the client's config root: defaults of this version
    shutil.copy(source / "conf" / "payline.toml", tmp / "tree" / "conf" / "payline.toml")
    # this version's Java functions (the dedup state), built from its own sources, where its
    # own defaults look for them (read as they are: the source's configuration need not have
    # this checkout's keys)
    from payline.stack import build_udf_jar

    default = tomllib.loads((source / "conf" / "payline.toml").read_text())["flink"]["udf_jar"]
    jar = build_udf_jar(source, source / default)
    shipped = tmp / "tree" / default
    shipped.parent.mkdir(parents=True)
    shutil.copy(jar, shipped)
    udf_jar = {"path": default, "sha256": hashlib.sha256(shipped.read_bytes()).hexdigest()}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, capture_output=True,
                            text=True).stdout.strip() or None
    manifest = {"job": job, "version": version, "commit": commit, "created_ms": _now_ms(),
                "script": f"jobs/streaming/{JOBS[job][0]}", "files": files,
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


# --- operator ids -------------------------------------------------------------------------------


def declared_uids(tree: Path) -> list[str]:
    """The uids a job's code gives its DataStream operators (``.uid("...")``)."""
    found = set()
    for f in (tree / "jobs" / "streaming").glob("*.py"):
        found |= set(re.findall(r"\.uid\(\s*[\"']([^\"']+)[\"']\s*\)", f.read_text()))
    return sorted(found)


def _fmix(k: int) -> int:
    m = 0xFFFFFFFFFFFFFFFF
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & m
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & m
    return k ^ (k >> 33)


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & 0xFFFFFFFFFFFFFFFF


def operator_id(uid: str) -> str:
    """Flink's operator id of a uid: murmur3_x64_128 (seed 0) of its UTF-8 bytes, as Guava
    and Flink's StreamGraphHasherV2 compute it, in hex."""
    m = 0xFFFFFFFFFFFFFFFF
    c1, c2 = 0x87C37B91114253D5, 0x4CF5AD432745937F
    data = uid.encode("utf-8")
    h1 = h2 = 0
    n = len(data) // 16
    for i in range(n):
        k1, k2 = struct.unpack_from("<QQ", data, i * 16)
        k1 = (_rotl((k1 * c1) & m, 31) * c2) & m
        h1 ^= k1
        h1 = (_rotl(h1, 27) + h2) & m
        h1 = (h1 * 5 + 0x52DCE729) & m
        k2 = (_rotl((k2 * c2) & m, 33) * c1) & m
        h2 ^= k2
        h2 = (_rotl(h2, 31) + h1) & m
        h2 = (h2 * 5 + 0x38495AB5) & m
    tail = data[n * 16:]
    k1 = k2 = 0
    for i in range(len(tail) - 1, 7, -1):
        k2 ^= tail[i] << (8 * (i - 8))
    if len(tail) > 8:
        h2 ^= (_rotl((k2 * c2) & m, 33) * c1) & m
    for i in range(min(len(tail), 8) - 1, -1, -1):
        k1 ^= tail[i] << (8 * i)
    if tail:
        h1 ^= (_rotl((k1 * c1) & m, 31) * c2) & m
    h1 ^= len(data)
    h2 ^= len(data)
    h1 = (h1 + h2) & m
    h2 = (h2 + h1) & m
    h1, h2 = _fmix(h1), _fmix(h2)
    h1 = (h1 + h2) & m
    h2 = (h2 + h1) & m
    return struct.pack("<QQ", h1, h2).hex()


def unmatched_operators(message: str) -> list[str]:
    """The operator ids in Flink's "Cannot map checkpoint/savepoint state for operator X"."""
    return sorted(set(re.findall(r"state for operator ([0-9a-f]{32})", message)))


def _unmatched_lines(text: str) -> str:
    """Flink's restore errors, kept whole in front of a truncated stack trace."""
    ids = unmatched_operators(text)
    return "".join(f"Cannot map checkpoint/savepoint state for operator {i}. " for i in ids)


def name_operators(ids: list[str], uids: list[str]) -> list[str]:
    by_id = {operator_id(u): u for u in uids}
    return [f"uid {by_id[i]!r}" if i in by_id else f"operator {i} (a uid generated from the "
            f"SQL plan)" for i in ids]


# --- Flink REST ---------------------------------------------------------------------------------


def _rest(cfg: Config, path: str, body: dict | None = None, timeout_s: float = 10.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{cfg.flink.rest_url}{path}", data=data,
                                 method="POST" if body is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            raw = r.read()
    except urllib.error.HTTPError as exc:
        raise OpsError(f"flink: {path}: HTTP {exc.code} {exc.read()[:300]!r}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise OpsError(f"flink: no REST API at {cfg.flink.rest_url} ({exc}); is it up?") \
            from None
    return json.loads(raw) if raw else {}


def running_job(cfg: Config, job: str) -> str | None:
    name = JOBS[job][1]
    for j in _rest(cfg, "/jobs/overview").get("jobs", []):
        if j["name"] == name and j["state"] in ("RUNNING", "CREATED", "RESTARTING",
                                                 "INITIALIZING"):
            return j["jid"]
    return None


def wait_running(cfg: Config, job_id: str, timeout_s: float = 120.0) -> None:
    """Until every task of the job runs; OpsError with the root cause when it fails."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = _rest(cfg, f"/jobs/{job_id}")
        state = info.get("state")
        if state in ("FAILED", "CANCELED", "FINISHED"):
            exc = _rest(cfg, f"/jobs/{job_id}/exceptions")
            root = (exc.get("root-exception") or "") + "".join(
                e.get("stacktrace", "") for e in exc.get("exceptionHistory", {})
                .get("entries", []))
            raise OpsError(f"job {job_id} {state}: {_unmatched_lines(root)}{root[:3000]}")
        if state == "RUNNING" and all(v["status"] == "RUNNING"
                                      for v in info.get("vertices", [])):
            return
        time.sleep(1)
    raise OpsError(f"job {job_id}: not running after {timeout_s:.0f} s")


def _wait_savepoint(cfg: Config, job_id: str, request_id: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        st = _rest(cfg, f"/jobs/{job_id}/savepoints/{request_id}")
        if st.get("status", {}).get("id") == "COMPLETED":
            op = st.get("operation", {})
            if "failure-cause" in op:
                cause = op["failure-cause"].get("stack-trace", "")[:2000]
                raise OpsError(f"savepoint of job {job_id} failed: {cause}")
            return op["location"]
        time.sleep(0.5)
    raise OpsError(f"savepoint of job {job_id}: not done after {timeout_s:.0f} s")


def _dir_size(location: str) -> int:
    path = Path(location.removeprefix("file:"))
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() \
        else 0


def _record_savepoint(cfg, job, job_id, location, reason) -> dict:
    current = current_deployment(cfg, job)
    rec = {"job": job, "job_id": job_id, "path": location, "size_bytes": _dir_size(location),
           "time_ms": _now_ms(), "version": current["version"] if current else None,
           "deployment": current["deployment"] if current else None, "reason": reason}
    _append(cfg.paths.ops_dir / "savepoints.jsonl", rec)
    return rec


# --- deploy, savepoint, upgrade, rollback ---------------------------------------------------------


def current_deployment(cfg: Config, job: str) -> dict | None:
    ok = [d for d in deployments(cfg, job) if d.get("outcome") == "running"]
    return ok[-1] if ok else None


def _client(cfg: Config, manifest: dict, parallelism: int | None, from_savepoint: str | None,
            job_args: list[str], allow_non_restored: bool = False) -> tuple[list[str], dict]:
    """The `flink run -d` command line of a release, and its environment."""
    from payline.flink_cli import connector_jars, warn_if_memory_misfits
    from payline.stack import flink_bin, flink_env, render_flink_conf

    rel, tree = release_dir(cfg, manifest["job"], manifest["version"]), client_dir(manifest, cfg)
    render_flink_conf(cfg)
    warn_if_memory_misfits(cfg)
    cmd = [flink_bin("flink"), "run", "-d", *cfg.flink.run_options()]
    if from_savepoint:
        cmd += ["-s", from_savepoint]
        if allow_non_restored:
            cmd.append("--allowNonRestoredState")
    if parallelism:
        cmd += ["-p", str(parallelism)]
    for jar in connector_jars(cfg):
        cmd += ["--jarfile", str(jar)]
    cmd += ["--pyFiles", str(rel / "bundle.zip"),
            "--python", str(tree / manifest["script"]), *job_args,
            *_where_this_stack_is(cfg, tree)]
    env = flink_env(cfg)
    # the client imports this version's packages, not the checkout's
    env["PYTHONPATH"] = str(tree)
    return cmd, env


# the keys that say where this stack keeps its state and finds its jars, not what a version is
_STACK_PATH_KEYS = (("paths", "run_dir"), ("paths", "data_dir"), ("paths", "reports_dir"),
                    ("paths", "ops_dir"), ("paths", "checkpoints_dir"),
                    ("kafka", "jars_dir"), ("flink", "jars_dir"))


def client_dir(manifest: dict, cfg: Config) -> Path:
    """The working directory of a release's client: its own tree. The client's configuration
    root falls back to the working directory (its ``payline`` package comes from the bundle,
    which has no conf/), so it reads its own version's defaults and finds its own Java
    functions, not the checkout's: an older version's defaults may lack a key this checkout
    has (or have one it lacks), and a rollback or the restore after a refused upgrade must
    still start it."""
    return release_dir(cfg, manifest["job"], manifest["version"]) / "tree"


def _where_this_stack_is(cfg: Config, tree: Path) -> list[str]:
    """``--set`` arguments that keep a release's client on this stack's folders and jars
    (which its own defaults would resolve under its tree), for the keys its defaults have."""
    own = tomllib.loads((tree / "conf" / "payline.toml").read_text())
    out = []
    for section, key in _STACK_PATH_KEYS:
        if key in own.get(section, {}):
            out += ["--set", f"{section}.{key}={getattr(getattr(cfg, section), key)}"]
    return out


def _job_id(manifest: dict, returncode: int, stdout: str, stderr: str) -> str:
    found = re.search(r"JobID ([0-9a-f]{32})", stdout)
    if returncode != 0 or not found:
        text = stdout + stderr
        raise OpsError(f"flink run {manifest['job']} {manifest['version']} failed (exit "
                       f"{returncode}): {_unmatched_lines(text)}{text[-3000:]}")
    return found.group(1)


def _submit(cfg: Config, manifest: dict, parallelism: int | None, from_savepoint: str | None,
            job_args: list[str], allow_non_restored: bool = False) -> str:
    cmd, env = _client(cfg, manifest, parallelism, from_savepoint, job_args,
                       allow_non_restored)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          cwd=client_dir(manifest, cfg), timeout=300)
    return _job_id(manifest, proc.returncode, proc.stdout, proc.stderr)


class Prepared:
    """A release's `flink run` client started ahead, its plan built, waiting for the savepoint
    to submit from (payline/handoff.py): the upgrade's downtime no longer includes the
    client's start."""

    def __init__(self, cfg: Config, manifest: dict, parallelism: int | None,
                 job_args: list[str], timeout_s: float = 300):
        self.manifest, self.parallelism = manifest, parallelism
        self.spec_file = (cfg.paths.ops_dir / "handoff"
                        / f"{manifest['job']}-{manifest['version']}-{_now_ms()}.json")
        self.spec_file.parent.mkdir(parents=True, exist_ok=True)
        cmd, env = _client(cfg, manifest, parallelism, None, job_args)
        env[handoff.ENV] = str(self.spec_file)
        self.logs = [self.spec_file.with_suffix(".out"), self.spec_file.with_suffix(".err")]
        with open(self.logs[0], "w") as out, open(self.logs[1], "w") as err:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err,
                                         cwd=client_dir(manifest, cfg))
        deadline = time.monotonic() + timeout_s
        while not handoff.ready_path(self.spec_file).is_file():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._end(kill=True)
                _job_id(manifest, self.proc.returncode or 1, *self._output())
                raise OpsError(f"flink run {manifest['job']} {manifest['version']}: the "
                               f"client never got its plan ready")
            time.sleep(0.05)

    @staticmethod
    def supported(cfg: Config, manifest: dict) -> bool:
        """Releases made before the handoff existed would submit at once, without state."""
        rel = release_dir(cfg, manifest["job"], manifest["version"])
        return (rel / "tree" / "payline" / "handoff.py").is_file()

    def _output(self) -> tuple[str, str]:
        return tuple(p.read_text(errors="replace") if p.is_file() else "" for p in self.logs)

    def _end(self, kill: bool = False, timeout_s: float = 300) -> None:
        if kill and self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for p in [self.spec_file, handoff.ready_path(self.spec_file)]:
            p.unlink(missing_ok=True)

    def submit(self, savepoint_path: str, allow_non_restored: bool = False) -> str:
        handoff.write(self.spec_file, {"savepoint": savepoint_path,
                                     "allow_non_restored": allow_non_restored})
        self._end()
        job_id = _job_id(self.manifest, self.proc.returncode, *self._output())
        for p in self.logs:  # kept only when the submission failed
            p.unlink(missing_ok=True)
        return job_id

    def abort(self) -> None:
        if self.proc.poll() is None:
            handoff.write(self.spec_file, {"abort": True})
            self._end(timeout_s=30)
        else:
            self._end()


def deploy(cfg: Config, job: str, version: str | None = None, parallelism: int | None = None,
           from_savepoint: str | None = None, job_args: tuple[str, ...] = (),
           action: str = "deploy", allow_non_restored: bool = False,
           prepared: Prepared | None = None) -> dict:
    """Submit a release (through a ``prepared`` client when given), wait until it runs, record
    the deployment."""
    _check_job(job)
    manifest = manifest_of(cfg, job, version)
    if action == "deploy":
        already = running_job(cfg, job)
        if already:
            raise OpsError(f"deploy: {job} is already running (job {already}); use "
                           f"`payline upgrade {job} --version V`")
    record = {"job": job, "version": manifest["version"], "parallelism": parallelism,
              "from_savepoint": from_savepoint, "time_ms": _now_ms(), "action": action,
              "deployment": f"{job}-{_now_ms()}", "job_args": list(job_args)}
    try:
        t0 = time.monotonic()
        job_id = (prepared.submit(from_savepoint, allow_non_restored) if prepared else
                  _submit(cfg, manifest, parallelism, from_savepoint, list(job_args),
                          allow_non_restored))
        record["job_id"] = job_id
        record["submit_s"] = round(time.monotonic() - t0, 1)
        wait_running(cfg, job_id)
        record["until_running_s"] = round(time.monotonic() - t0, 1)
    except OpsError as exc:
        record["outcome"] = "failed"
        _append(cfg.paths.ops_dir / "deployments.jsonl", record)
        audit(cfg, action, job, "failed", version=manifest["version"],
              from_savepoint=from_savepoint, error=str(exc)[:500])
        raise
    record["outcome"] = "running"
    _append(cfg.paths.ops_dir / "deployments.jsonl", record)
    audit(cfg, action, job, "ok", version=manifest["version"], job_id=job_id,
          parallelism=parallelism, from_savepoint=from_savepoint)
    return record


def savepoint(cfg: Config, job: str, reason: str = "manual", stop: bool = False,
              timeout_s: float = 300) -> dict:
    """Trigger a savepoint of the running ``job`` (``stop``: stop-with-savepoint, the job
    finishes once it is written); record and audit it."""
    _check_job(job)
    action = "stop-with-savepoint" if stop else "savepoint"
    job_id = running_job(cfg, job)
    if not job_id:
        raise OpsError(f"{reason}: {job} is not running")
    target = f"file://{cfg.paths.checkpoints_dir / 'savepoints'}"
    path, body = ((f"/jobs/{job_id}/stop", {"targetDirectory": target, "drain": False}) if stop
                  else (f"/jobs/{job_id}/savepoints",
                        {"target-directory": target, "cancel-job": False}))
    try:
        location = _wait_savepoint(cfg, job_id, _rest(cfg, path, body)["request-id"],
                                   timeout_s)
    except OpsError as exc:
        audit(cfg, action, job, "failed", job_id=job_id, error=str(exc)[:500])
        raise
    rec = _record_savepoint(cfg, job, job_id, location, reason)
    audit(cfg, action, job, "ok", job_id=job_id, savepoint=location)
    for old in prune_savepoints(cfg, job):
        audit(cfg, "delete-savepoint", job, "ok", savepoint=old, reason="retention")
    return rec


def prune_savepoints(cfg: Config, job: str) -> list[str]:
    """Delete the job's savepoints beyond the newest ``ops.savepoints_retained``, except the
    one its last upgrade can roll back to; returns the deleted paths."""
    upgrades = [u for u in _read(cfg.paths.ops_dir / "upgrades.jsonl")
                if u["job"] == job and not u.get("rollback")]
    keep_for_rollback = upgrades[-1]["savepoint"] if upgrades else None
    live = savepoints(cfg, job, include_deleted=False)
    out = []
    for r in live[:-cfg.ops.savepoints_retained]:
        if r["path"] == keep_for_rollback:
            continue
        shutil.rmtree(Path(r["path"].removeprefix("file:")), ignore_errors=True)
        _append(cfg.paths.ops_dir / "savepoints_deleted.jsonl",
                {"job": job, "path": r["path"], "time_ms": _now_ms()})
        out.append(r["path"])
    return out


def upgrade(cfg: Config, job: str, version: str, allow_non_restored: bool = False) -> dict:
    """Stop-with-savepoint, then start ``version`` from it. When the new version cannot take
    the state, the old version starts again from the same savepoint and OpsError names the
    operators whose state had no place in the new version."""
    _check_job(job)
    target = manifest_of(cfg, job, version)
    current = current_deployment(cfg, job)
    if current is None or not running_job(cfg, job):
        raise OpsError(f"upgrade: {job} is not running as a deployment; use `payline deploy`")
    prepared = _prepare(cfg, target, current)
    t0 = time.monotonic()
    try:
        sp = savepoint(cfg, job, "upgrade", stop=True)
    except BaseException:
        if prepared:
            prepared.abort()
        raise
    stopped_s = round(time.monotonic() - t0, 1)
    try:
        rec = deploy(cfg, job, target["version"], current.get("parallelism"), sp["path"],
                     tuple(current.get("job_args", [])), action="upgrade",
                     allow_non_restored=allow_non_restored, prepared=prepared)
    except OpsError as exc:
        deploy(cfg, job, current["version"], current.get("parallelism"), sp["path"],
               tuple(current.get("job_args", [])), action="restore-after-failed-upgrade")
        ids = unmatched_operators(str(exc))
        old = manifest_of(cfg, job, current["version"])
        what = ("; the state of " + ", ".join(name_operators(ids, old.get("uids", [])))
                + " has no operator in the new version (--allow-non-restored-state drops it)"
                if ids else f": {str(exc)[:1500]}")
        audit(cfg, "upgrade", job, "refused", version=target["version"],
              from_version=current["version"], savepoint=sp["path"], operators=ids)
        raise OpsError(f"upgrade: {job} {target['version']} cannot start from the savepoint "
                       f"{sp['path']}{what}. {job} {current['version']} runs again from it."
                       ) from None
    rec["upgraded_from"] = current["version"]
    rec["savepoint"] = sp["path"]
    rec["stop_with_savepoint_s"] = stopped_s
    rec["prepared_client"] = prepared is not None
    rec["stopped_until_running_s"] = round(time.monotonic() - t0, 1)
    _append(cfg.paths.ops_dir / "upgrades.jsonl", {
        "job": job, "from_version": current["version"], "to_version": target["version"],
        "savepoint": sp["path"], "time_ms": _now_ms()})
    return rec


def _prepare(cfg: Config, target: dict, current: dict) -> Prepared | None:
    """The target release's client, started before the running version stops (None for a
    release older than the handoff: it is submitted after the stop, as before)."""
    if not Prepared.supported(cfg, target):
        return None
    return Prepared(cfg, target, current.get("parallelism"),
                    list(current.get("job_args", [])))


def rollback(cfg: Config, job: str, to_savepoint: str | None = None,
             keep_state: bool = False) -> dict:
    """Back to the version before the last upgrade, from the savepoint taken at that upgrade
    (or ``to_savepoint``). That replays what the new version did since the upgrade: its
    exactly-once outputs since then are written again (duplicates downstream).

    ``keep_state``: stop the running version with a savepoint and start the previous version
    from that instead (its state must be readable by the previous version): nothing is
    replayed, no output is written twice. When the previous version cannot take that state,
    the running version starts again from the same savepoint and OpsError says why."""
    _check_job(job)
    if keep_state and to_savepoint:
        raise OpsError("rollback: --keep-state and --to-savepoint exclude each other")
    ups = [u for u in _read(cfg.paths.ops_dir / "upgrades.jsonl")
           if u["job"] == job and not u.get("rollback")]
    if not ups:
        raise OpsError(f"rollback: {job} has no upgrade to roll back")
    last = ups[-1]
    current = current_deployment(cfg, job)
    parallelism = current.get("parallelism") if current else None
    job_args = tuple(current.get("job_args", [])) if current else ()
    job_id = running_job(cfg, job)
    if keep_state:
        if not job_id or current is None:
            raise OpsError(f"rollback --keep-state: {job} is not running")
        target = manifest_of(cfg, job, last["from_version"])
        prepared = _prepare(cfg, target, current)
        try:
            to_savepoint = savepoint(cfg, job, "rollback", stop=True)["path"]
        except BaseException:
            if prepared:
                prepared.abort()
            raise
        try:
            rec = deploy(cfg, job, last["from_version"], parallelism, to_savepoint, job_args,
                         action="rollback", prepared=prepared)
        except OpsError as exc:
            deploy(cfg, job, current["version"], parallelism, to_savepoint, job_args,
                   action="restore-after-failed-rollback")
            raise OpsError(f"rollback: {job} {last['from_version']} cannot start from the "
                           f"state of {current['version']} ({to_savepoint}): "
                           f"{str(exc)[:1500]}. {job} {current['version']} runs again from "
                           f"it.") from None
    else:
        if job_id:
            _cancel(cfg, job_id)
        rec = deploy(cfg, job, last["from_version"], parallelism,
                     to_savepoint or last["savepoint"], job_args, action="rollback")
    _append(cfg.paths.ops_dir / "upgrades.jsonl", {
        "job": job, "rolled_back": last["to_version"], "to_version": last["from_version"],
        "from_version": last["to_version"], "savepoint": to_savepoint or last["savepoint"],
        "time_ms": _now_ms(), "rollback": True})
    return rec


def _cancel(cfg: Config, job_id: str, timeout_s: float = 60) -> None:
    req = urllib.request.Request(f"{cfg.flink.rest_url}/jobs/{job_id}?mode=cancel",
                                 method="PATCH")
    urllib.request.urlopen(req, timeout=10).read()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _rest(cfg, f"/jobs/{job_id}").get("state") in ("CANCELED", "FAILED", "FINISHED"):
            return
        time.sleep(0.5)
    raise OpsError(f"job {job_id}: not cancelled after {timeout_s:.0f} s")


# --- status ---------------------------------------------------------------------------------------


def _group_and_topics(cfg: Config, name: str) -> tuple[str, list[str]] | None:
    """The consumer group a job commits its source offsets to (its default) and the topics
    it reads."""
    if name == JOBS["transactions"][1]:
        return name, [cfg.topics.transactions]
    if name == JOBS["fraud"][1]:
        return cfg.fraud.group_id, [cfg.topics.transactions, cfg.topics.accounts]
    return None


def consumer_lag(cfg: Config, group: str, topics: list[str]) -> dict[str, int | None]:
    """End offset - committed offset per "topic/partition" (None: nothing committed)."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    from payline import security

    # in secure mode as the ops principal: describe groups, read offsets, nothing else
    client = security.kafka_python_config(cfg, "ops")
    admin = KafkaAdminClient(request_timeout_ms=5000, client_id="payline-status", **client)
    consumer = KafkaConsumer(request_timeout_ms=5000, client_id="payline-status", **client)
    try:
        committed = {tp: meta.offset for tp, meta in
                     admin.list_group_offsets(group).get(group, {}).items()}
        parts = [TopicPartition(t, p) for t in topics
                 for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(parts)
    finally:
        consumer.close()
        admin.close()
    out = {}
    for tp in parts:
        done = committed.get(tp)
        out[f"{tp.topic}/{tp.partition}"] = (ends[tp] - done if done is not None and done >= 0
                                             else None)
    return out


# watermarkLag before a source's first watermark is the wall clock minus Long.MIN_VALUE
_NO_WATERMARK_YET_MS = 10 * 365 * 24 * 3600 * 1000


def event_time_lag_ms(cfg: Config, job_id: str, sources: list[str]) -> int | None:
    """The job's event-time lag: the largest ``watermarkLag`` (wall clock minus the last
    watermark, Flink's own JVM gauge on every source reader) over its source subtasks; None
    before any source has a watermark."""
    from payline.stack import flink_rest

    worst = None
    for v in sources:
        base = f"/jobs/{job_id}/vertices/{v}/subtasks/metrics"
        ids = [m["id"] for m in flink_rest(cfg, base) or []
               if m["id"].endswith(".watermarkLag")]
        if not ids:
            continue
        for m in flink_rest(cfg, f"{base}?get={','.join(ids)}&agg=max") or []:
            lag = m.get("max")
            if lag is not None and lag < _NO_WATERMARK_YET_MS:
                # negative: the watermark is ahead of the wall clock (event times ahead of it)
                lag = max(int(lag), 0)
                worst = lag if worst is None else max(worst, lag)
    return worst


def job_status(cfg: Config, job_id: str, name: str) -> dict:
    """What an operator asks of a running job: its version, uptime, last checkpoint,
    restarts, records in/out per second, the event-time lag, the consumer lag of its source
    topics."""
    from payline.stack import flink_rest

    info = flink_rest(cfg, f"/jobs/{job_id}") or {}
    out: dict = {"id": job_id, "name": name, "state": info.get("state"),
                 "web_ui": f"{cfg.flink.rest_url}/#/job/running/{job_id}/overview"}
    deployed = [d for d in _read(cfg.paths.ops_dir / "deployments.jsonl")
                if d.get("job_id") == job_id]
    out["version"] = deployed[-1]["version"] if deployed else None
    if info.get("start-time", -1) > 0:
        out["uptime_s"] = round((info.get("now", _now_ms()) - info["start-time"]) / 1000, 1)
    metrics = flink_rest(cfg, f"/jobs/{job_id}/metrics?get=numRestarts") or []
    out["restarts"] = int(float(metrics[0]["value"])) if metrics else None
    cps = flink_rest(cfg, f"/jobs/{job_id}/checkpoints") or {}
    last = (cps.get("latest") or {}).get("completed")
    out["last_checkpoint"] = None if not last else {
        "age_s": round((_now_ms() - last["latest_ack_timestamp"]) / 1000, 1),
        "size_bytes": last.get("checkpointed_size", last.get("state_size")),
        "duration_ms": last.get("end_to_end_duration")}
    plan = (flink_rest(cfg, f"/jobs/{job_id}/plan") or {}).get("plan", {}).get("nodes", [])
    fed = {i["id"] for n in plan for i in n.get("inputs", [])}
    source_nodes = [n for n in plan if not n.get("inputs")]
    sources = [n["id"] for n in source_nodes]
    sinks = [n["id"] for n in plan if n["id"] not in fed]

    def rate(vertices, metric):
        total = 0.0
        for v in vertices:
            got = flink_rest(cfg, f"/jobs/{job_id}/vertices/{v}/subtasks/metrics"
                                  f"?get={metric}&agg=sum") or []
            total += sum(m.get("sum", 0.0) for m in got)
        return round(total, 1)

    out["records_in_per_s"] = rate(sources, "numRecordsOutPerSecond")
    out["records_out_per_s"] = rate(sinks, "numRecordsInPerSecond")
    # the transactions source sets the job's pace (jobs.streaming.ACCOUNTS_TABLE: why not
    # the fraud job's accounts source)
    out["event_time_lag_ms"] = event_time_lag_ms(
        cfg, job_id, [n["id"] for n in source_nodes
                      if ACCOUNTS_TABLE not in n.get("description", "")])
    found = _group_and_topics(cfg, name)
    if found:
        group, topics = found
        try:
            out["consumer_group"] = group
            out["consumer_lag"] = consumer_lag(cfg, group, topics)
        except Exception as exc:  # noqa: BLE001 - status reports, it does not fail
            out["consumer_lag"] = f"unavailable: {exc}"
    return out


def consumers_status(cfg: Config) -> dict:
    """The consumer lag of each streaming job's default group, running or not (a stopped
    job's lag keeps growing while traffic comes in)."""
    out = {}
    for job, (_, name) in sorted(JOBS.items()):
        group, topics = _group_and_topics(cfg, name)
        try:
            lag = consumer_lag(cfg, group, topics)
            out[job] = {"group": group, "lag": lag,
                        "total": sum(v for v in lag.values() if v is not None)
                        if any(v is not None for v in lag.values()) else None}
        except Exception as exc:  # noqa: BLE001 - status reports, it does not fail
            out[job] = {"group": group, "error": str(exc)}
    return out
