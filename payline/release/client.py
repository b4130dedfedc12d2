"""A release's `flink run` client: the command (the one builder, :func:`payline.flink.submit.
run_command`, with the release's bundle and script), run in the release's own tree, and
:class:`Prepared`: a client started ahead of the savepoint it will start from."""

from __future__ import annotations

import subprocess
import time
import tomllib
from pathlib import Path

from payline.errors import OpsError
from payline.flink.dist import flink_env
from payline.flink.submit import job_id_of, prepare_client, run_command
from payline.release.operator_ids import unmatched_lines
from payline.release.records import now_ms
from payline.release.releases import release_dir
from runtime import handoff
from runtime.settings import Config


def client_command(cfg: Config, manifest: dict, parallelism: int | None,
                   from_savepoint: str | None, job_args: list[str],
                   allow_non_restored: bool = False) -> tuple[list[str], dict]:
    """The `flink run -d` command line of a release, and its environment."""
    rel, tree = release_dir(cfg, manifest["job"], manifest["version"]), client_dir(manifest, cfg)
    prepare_client(cfg)
    cmd = run_command(cfg, tree / manifest["script"],
                      [*job_args, *_where_this_stack_is(cfg, tree)], detached=True,
                      from_savepoint=from_savepoint, allow_non_restored=allow_non_restored,
                      parallelism=parallelism, py_files=rel / "bundle.zip")
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


def submitted_job_id(manifest: dict, returncode: int, stdout: str, stderr: str) -> str:
    """The job id a release's client printed; OpsError with Flink's restore errors kept whole
    in front of the end of its output when it failed."""
    found = job_id_of(stdout)
    if returncode != 0 or not found:
        text = stdout + stderr
        raise OpsError(f"flink run {manifest['job']} {manifest['version']} failed (exit "
                       f"{returncode}): {unmatched_lines(text)}{text[-3000:]}")
    return found


def submit_release(cfg: Config, manifest: dict, parallelism: int | None,
                   from_savepoint: str | None, job_args: list[str],
                   allow_non_restored: bool = False) -> str:
    """`flink run -d` of the release; returns the job id."""
    cmd, env = client_command(cfg, manifest, parallelism, from_savepoint, job_args,
                              allow_non_restored)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                          cwd=client_dir(manifest, cfg), timeout=300)
    return submitted_job_id(manifest, proc.returncode, proc.stdout, proc.stderr)


class Prepared:
    """A release's `flink run` client started ahead, its plan built, waiting for the savepoint
    to submit from (runtime/handoff.py): the upgrade's downtime no longer includes the
    client's start."""

    def __init__(self, cfg: Config, manifest: dict, parallelism: int | None,
                 job_args: list[str], timeout_s: float = 300):
        self.manifest, self.parallelism = manifest, parallelism
        self.spec_file = (cfg.paths.ops_dir / "handoff"
                        / f"{manifest['job']}-{manifest['version']}-{now_ms()}.json")
        self.spec_file.parent.mkdir(parents=True, exist_ok=True)
        cmd, env = client_command(cfg, manifest, parallelism, None, job_args)
        env[handoff.ENV] = str(self.spec_file)
        self.logs = [self.spec_file.with_suffix(".out"), self.spec_file.with_suffix(".err")]
        with open(self.logs[0], "w") as out, open(self.logs[1], "w") as err:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err,
                                         cwd=client_dir(manifest, cfg))
        deadline = time.monotonic() + timeout_s
        while not handoff.ready_path(self.spec_file).is_file():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._end(kill=True)
                submitted_job_id(manifest, self.proc.returncode or 1, *self._output())
                raise OpsError(f"flink run {manifest['job']} {manifest['version']}: the "
                               f"client never got its plan ready")
            time.sleep(0.05)

    @staticmethod
    def supported(cfg: Config, manifest: dict) -> bool:
        """Releases made before the handoff existed would submit at once, without state (the
        handoff sits in ``runtime/``, or in ``payline/`` in a release of the layout before)."""
        tree = release_dir(cfg, manifest["job"], manifest["version"]) / "tree"
        return any((tree / pkg / "handoff.py").is_file() for pkg in ("runtime", "payline"))

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
        job_id = submitted_job_id(self.manifest, self.proc.returncode, *self._output())
        for p in self.logs:  # kept only when the submission failed
            p.unlink(missing_ok=True)
        return job_id

    def abort(self) -> None:
        if self.proc.poll() is None:
            handoff.write(self.spec_file, {"abort": True})
            self._end(timeout_s=30)
        else:
            self._end()
