"""The local stack: a single-node KRaft Kafka broker and a Flink standalone cluster on loopback.

``up`` is idempotent and waits until each part really answers (the broker its metadata, Flink's
REST API ``/overview`` with a registered TaskManager); ``down`` stops only the processes whose
pids it recorded (and their children), and checks that they are gone. Everything a run writes
(rendered configuration, pids, logs, broker data) lives under ``paths.run_dir``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from payline.config import Config


class StackError(RuntimeError):
    """A part of the stack did not start or stop; the message names it and its log."""


# --- shared helpers -----------------------------------------------------------------------------


def _render(template: Path, dest: Path, values: dict) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    text = string.Template(template.read_text()).substitute(
        {k: str(v) for k, v in values.items()}
    )
    dest.write_text(text)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not running
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ours(pid: int, marker: str) -> bool:
    """A pid counts as ours only while it runs and its command line names our run dir."""
    return _alive(pid) and marker in _cmdline(pid)


def _started_for(pid: int, conf_dir: Path) -> bool:
    """A process started with this cluster's FLINK_CONF_DIR in its environment: the cluster's
    JVMs, `flink run` clients, and the TaskManager's Python worker processes."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return f"FLINK_CONF_DIR={conf_dir}".encode() in fh.read().split(b"\0")
    except OSError:
        return False


def _ppid(pid: int) -> int | None:
    """The parent of ``pid`` (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _ancestors(pid: int) -> set[int]:
    """The parent of ``pid``, its parent, and so on (init excluded)."""
    out: set[int] = set()
    while True:
        pid = _ppid(pid)
        if pid is None or pid <= 1 or pid in out:
            return out
        out.add(pid)


def _strays(conf_dir: Path) -> list[int]:
    """Running processes started for the cluster of ``conf_dir``, other than this process and
    its ancestors."""
    mine = {os.getpid()} | _ancestors(os.getpid())
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) not in mine
            and _started_for(int(e), conf_dir) and _alive(int(e))]


def _children(pid: int) -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and _ppid(int(e)) == pid]


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for kid in _children(todo.pop()):
            out.append(kid)
            todo.append(kid)
    return out


def _terminate(pids: list[int], timeout_s: float = 30.0) -> None:
    """SIGTERM, wait, then SIGKILL whatever is left; returns when all are gone."""
    family = []
    for pid in pids:
        family += [pid, *_descendants(pid)]
    for pid in family:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(_alive(p) for p in family):
        time.sleep(0.2)
    for pid in family:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in family):
        time.sleep(0.1)


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no log written)"
    return "\n".join("    " + line for line in text)


def java_bin() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise StackError("java not found: install Java 17 and put it on PATH or set JAVA_HOME")
    return found


def ensure_jars(cfg: Config) -> None:
    """Fetch the Maven Central jars once (`mvn dependency:copy-dependencies`); skip if present.
    Then build the project's own Flink functions (:func:`ensure_udf_jar`)."""
    _fetch_jars(cfg)
    ensure_udf_jar(cfg)


UDF_SOURCES = Path("infra") / "flink-udfs" / "src"


def udf_sources(root: Path) -> list[Path]:
    """The Java sources of the project's Flink functions under ``root`` (a checkout, or the
    tree a release is made from)."""
    return sorted((root / UDF_SOURCES).rglob("*.java"))


def ensure_udf_jar(cfg: Config) -> Path:
    """The project's Java functions for Flink SQL (``infra/flink-udfs``: the dedup state's
    process table function) as ``flink.udf_jar``, compiled with the JDK's javac against the
    Flink jars of the apache-flink wheel, the very classes the cluster runs. Rebuilt when a
    source is newer than the jar; the jobs add it with ``env.add_jars``."""
    return build_udf_jar(cfg.root, cfg.flink.udf_jar)


def build_udf_jar(root: Path, jar: Path) -> Path:
    """:func:`ensure_udf_jar` for the sources under ``root`` (a checkout, or the tree a
    release is made from) into ``jar``."""
    sources = udf_sources(root)
    if not sources:
        raise StackError(f"no Java sources in {root / UDF_SOURCES}")
    if jar.exists() and jar.stat().st_mtime >= max(s.stat().st_mtime for s in sources):
        return jar
    bindir = Path(java_bin()).parent
    javac, jar_tool = bindir / "javac", bindir / "jar"
    if not javac.exists() or not jar_tool.exists():
        raise StackError(f"javac and jar not found next to {java_bin()}: the Flink functions "
                         f"in {UDF_SOURCES} need a JDK 17 (not a JRE)")
    classes = jar.parent / "classes"
    shutil.rmtree(classes, ignore_errors=True)
    classes.mkdir(parents=True)
    lib = flink_home() / "lib"
    for cmd in ([str(javac), "--release", "17", "-cp", f"{lib}/*", "-d", str(classes),
                 *map(str, sources)],
                [str(jar_tool), "cf", str(jar.with_suffix(".tmp")), "-C", str(classes), "."]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise StackError(f"building {jar.name} failed ({Path(cmd[0]).name}):\n"
                             f"{(proc.stdout + proc.stderr)[-2000:]}")
    jar.with_suffix(".tmp").replace(jar)
    return jar


def _fetch_jars(cfg: Config) -> None:
    for name, lib in (("kafka", cfg.kafka.jars_dir), ("flink", cfg.flink.jars_dir)):
        if lib.is_dir() and any(lib.glob("*.jar")):
            continue
        pom = cfg.root / "infra" / name / "pom.xml"
        mvn = shutil.which("mvn")
        if not mvn:
            raise StackError(f"{lib} has no jars and mvn is not on PATH: install Maven")
        proc = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
             f"-Dpayline.lib.dir={lib}"],
            capture_output=True, text=True,
        )
        if proc.returncode != 0 or not any(lib.glob("*.jar")):
            raise StackError(
                f"fetching the {name} jars with Maven failed ({pom}):\n{proc.stdout[-2000:]}"
            )


# --- Kafka --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KafkaPaths:
    home: Path

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def properties(self) -> Path:
        return self.home / "server.properties"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def log(self) -> Path:
        return self.logs / "server.log"

    @property
    def stdout(self) -> Path:
        return self.logs / "stdout.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"


def kafka_paths(cfg: Config) -> KafkaPaths:
    return KafkaPaths(cfg.paths.run_dir / "kafka")


def _read_pid(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split() if x.strip().isdigit()]
    except OSError:
        return []


def kafka_pids(cfg: Config) -> list[int]:
    kp = kafka_paths(cfg)
    return [p for p in _read_pid(kp.pid_file) if _ours(p, str(kp.properties))]


def kafka_ready(cfg: Config, timeout_s: float = 5.0) -> bool:
    """True when the broker answers a metadata request."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    from payline import security

    try:
        admin = KafkaAdminClient(request_timeout_ms=int(timeout_s * 1000),
                                 client_id="payline-status",
                                 **security.kafka_python_config(cfg, "ops"))
    except (KafkaError, OSError, ValueError):
        return False
    try:
        admin.describe_cluster()
        return True
    except (KafkaError, OSError, ValueError):
        return False
    finally:
        admin.close()


def storage_format_args(cluster_id: str, properties) -> list[str]:
    """kafka-storage format's arguments. The id is base64url and may start with '-', so it
    travels as one ``--cluster-id=`` token (as ``-t ID`` it was once read as an option)."""
    return ["format", "--standalone", f"--cluster-id={cluster_id}", "-c", str(properties)]


def kafka_up(cfg: Config, log=print) -> None:
    from payline import security

    kc, kp = cfg.kafka, kafka_paths(cfg)
    secure = security.active(cfg)
    if kafka_pids(cfg):
        if _wait(lambda: kafka_ready(cfg), kc.start_timeout_s, kafka_pids, cfg):
            log(f"kafka: already running at {security.bootstrap(cfg)}")
            return
        raise StackError(f"kafka: running (pid {kafka_pids(cfg)}) but not answering; "
                         f"see {kp.log}\n{_tail(kp.log)}")
    client_port = ((cfg.security.port, "security.port") if secure else (kc.port, "kafka.port"))
    for port, key in (client_port, (kc.controller_port, "kafka.controller_port")):
        if _port_open(kc.host, port):
            raise StackError(f"kafka: port {port} ({key}) is already in use by another process; "
                             f"stop it or set {key}")
    kp.logs.mkdir(parents=True, exist_ok=True)
    _render(cfg.root / "conf" / "kafka" / "server.properties", kp.properties, {
        "host": kc.host, "port": kc.port, "controller_port": kc.controller_port,
        "data_dir": kp.data, "default_partitions": kc.default_partitions,
        "transaction_max_timeout_ms": kc.transaction_max_timeout_ms,
    })
    if secure:  # TLS + SASL/SCRAM listener, mutual-TLS controller, StandardAuthorizer
        overlay = string.Template(
            (cfg.root / "conf" / "kafka" / "server-secure.properties").read_text()
        ).substitute({k: str(v) for k, v in security.broker_values(cfg).items()})
        kp.properties.write_text(security.merge_properties(kp.properties.read_text(), overlay))
    java = java_bin()
    classpath = f"{kc.jars_dir}/*"
    jvm = [java, f"-Xms{kc.heap_mb}m", f"-Xmx{kc.heap_mb}m", "-XX:+UseG1GC",
           f"-Dlog4j2.configurationFile={cfg.root / 'conf' / 'kafka' / 'log4j2.xml'}",
           f"-Dkafka.logs.dir={kp.logs}", "-cp", classpath]
    if not (kp.data / "meta.properties").exists():
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        tool = [*jvm[1:], "kafka.tools.StorageTool",
                *storage_format_args(cluster_id, kp.properties)]
        argfile = kp.home / ".format.args"
        if secure:  # every principal's SCRAM credential, in a mode-0600 `java @file`
            security.java_argfile(argfile, [*tool, *security.storage_scram_args(cfg)])
            tool = [f"@{argfile}"]
        try:
            fmt = subprocess.run([jvm[0], *tool], capture_output=True, text=True)
        finally:
            argfile.unlink(missing_ok=True)
        if fmt.returncode != 0:
            raise StackError(f"kafka: formatting the storage in {kp.data} failed:\n"
                             f"{fmt.stdout[-1500:]}{fmt.stderr[-1500:]}")
    with open(kp.stdout, "ab") as out:
        proc = subprocess.Popen([*jvm, "kafka.Kafka", str(kp.properties)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=kp.home)
    kp.pid_file.write_text(f"{proc.pid}\n")
    if not _wait(lambda: kafka_ready(cfg), kc.start_timeout_s, kafka_pids, cfg):
        alive = proc.poll() is None
        raise StackError(
            f"kafka: the broker did not {'answer' if alive else 'start'} within "
            f"{kc.start_timeout_s} s (kafka.start_timeout_s); its log: {kp.log} "
            f"(stdout: {kp.stdout})\n{_tail(kp.log if kp.log.exists() else kp.stdout)}"
        )
    log(f"kafka: up at {security.bootstrap(cfg)}"
        + (" (TLS + SASL/SCRAM, ACLs)" if secure else "") + f" (pid {proc.pid}, log {kp.log})")


def _stop(part: str, pids: list[int], pid_file: Path, log) -> None:
    """Terminate a part started by pid file, say so, and forget its pid file."""
    if pids:
        _terminate(pids)
        log(f"{part}: stopped (pid {', '.join(map(str, pids))})")
    else:
        log(f"{part}: not running")
    pid_file.unlink(missing_ok=True)


def kafka_down(cfg: Config, log=print) -> None:
    _stop("kafka", kafka_pids(cfg), kafka_paths(cfg).pid_file, log)


def _wait(check, timeout_s: float, pids_fn, cfg: Config) -> bool:
    """Poll ``check`` until true; give up early when the process we wait for has died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        if not pids_fn(cfg):
            return False
        time.sleep(0.5)
    return False


# --- Flink --------------------------------------------------------------------------------------


def flink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).resolve().parent


@dataclass(frozen=True)
class FlinkPaths:
    home: Path

    @property
    def conf(self) -> Path:
        return self.home / "conf"

    @property
    def logs(self) -> Path:
        return self.home / "log"

    @property
    def pids(self) -> Path:
        return self.home / "pid"

    @property
    def tmp(self) -> Path:
        """io.tmp.dirs: the TaskManagers' working directories (RocksDB's local state among
        them), one per TaskManager process."""
        return self.home / "tmp"


def flink_paths(cfg: Config) -> FlinkPaths:
    return FlinkPaths(cfg.paths.run_dir / "flink")


def flink_env(cfg: Config) -> dict[str, str]:
    """Environment for the wheel's bin/ scripts (start-cluster.sh, flink run, ...)."""
    fp = flink_paths(cfg)
    env = dict(os.environ)
    env.update({
        "FLINK_HOME": str(flink_home()),
        "FLINK_CONF_DIR": str(fp.conf),
        "FLINK_LOG_DIR": str(fp.logs),
        "FLINK_PID_DIR": str(fp.pids),
        # Python workers and the `flink run --python` client use the venv's interpreter.
        "PYFLINK_CLIENT_EXECUTABLE": sys.executable,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    })
    java = java_bin()
    env.setdefault("JAVA_HOME", str(Path(java).resolve().parent.parent))
    return env


def flink_bin(name: str) -> str:
    return str(flink_home() / "bin" / name)


def flink_pids(cfg: Config) -> dict[str, list[int]]:
    """Running JobManager and TaskManager pids from the pid files start-cluster.sh wrote."""
    fp = flink_paths(cfg)
    out: dict[str, list[int]] = {"jobmanager": [], "taskmanager": []}
    for role, pattern in (("jobmanager", "*standalonesession.pid"),
                          ("taskmanager", "*taskexecutor.pid")):
        for f in fp.pids.glob(pattern) if fp.pids.is_dir() else []:
            out[role] += [p for p in _read_pid(f) if _ours(p, str(fp.conf))]
    return out


def flink_overview(cfg: Config, timeout_s: float = 3.0) -> dict | None:
    try:
        with urllib.request.urlopen(f"{cfg.flink.rest_url}/overview", timeout=timeout_s) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def flink_rest(cfg: Config, path: str, timeout_s: float = 5.0) -> dict | list | None:
    try:
        with urllib.request.urlopen(f"{cfg.flink.rest_url}{path}", timeout=timeout_s) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _flink_ready(cfg: Config) -> bool:
    ov = flink_overview(cfg)
    return bool(ov and ov.get("taskmanagers", 0) >= 1 and ov.get("slots-total", 0) >= 1)


def _any_flink_pid(cfg: Config) -> list[int]:
    p = flink_pids(cfg)
    return p["jobmanager"] + p["taskmanager"]


def managed_fraction(fc) -> str:
    """The TaskManager's managed memory fraction: Flink's default 0.4 where RocksDB or
    process-mode Python workers use it; 0.05 with heap state in thread mode, where the heap
    (the state's home) gets the rest. The transactions job's vectorised validation runs in a
    Python worker process even in thread mode; its share of the 5 % is bookkeeping only (the
    worker holds a few Arrow batches and PyFlink enforces no limit on it)."""
    return "0.05" if fc.state_backend == "hashmap" and fc.python_execution_mode == "thread" \
        else "0.4"


def render_flink_conf(cfg: Config) -> FlinkPaths:
    fc, fp = cfg.flink, flink_paths(cfg)
    for d in (fp.conf, fp.logs, fp.pids, fp.tmp):
        d.mkdir(parents=True, exist_ok=True)
    for name in ("log4j.properties", "log4j-console.properties", "log4j-cli.properties",
                 "log4j-session.properties", "logback.xml", "logback-console.xml"):
        src = flink_home() / "conf" / name
        if src.exists():
            shutil.copyfile(src, fp.conf / name)
    (cfg.paths.checkpoints_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (cfg.paths.checkpoints_dir / "savepoints").mkdir(parents=True, exist_ok=True)
    _render(cfg.root / "conf" / "flink" / "config.yaml", fp.conf / "config.yaml", {
        "pid_dir": fp.pids, "log_dir": fp.logs, "tmp_dir": fp.tmp.resolve(), "host": fc.host,
        "jobmanager_rpc_port": fc.jobmanager_rpc_port, "rest_port": fc.rest_port,
        "jobmanager_memory_mb": fc.jobmanager_memory_mb,
        "taskmanager_memory_mb": fc.taskmanager_memory_mb,
        "taskmanager_slots": fc.taskmanager_slots, "default_parallelism": fc.default_parallelism,
        "checkpoints_dir": cfg.paths.checkpoints_dir.resolve(),
        "checkpoint_interval_ms": fc.checkpoint_interval_ms,
        "checkpoint_timeout_ms": fc.checkpoint_timeout_ms,
        "min_pause_between_checkpoints_ms": fc.min_pause_between_checkpoints_ms,
        "restart_attempts": fc.restart_attempts, "restart_delay_ms": fc.restart_delay_ms,
        "restart_interval_s": fc.restart_interval_s,
        "tolerable_failed_checkpoints": fc.tolerable_failed_checkpoints,
        "heartbeat_interval_ms": fc.heartbeat_interval_ms,
        "heartbeat_timeout_ms": fc.heartbeat_timeout_ms,
        "prometheus_port_first": fc.prometheus_port_first,
        "prometheus_port_last": fc.prometheus_port_last,
        "python": sys.executable, "python_execution_mode": fc.python_execution_mode,
        "state_backend": fc.state_backend, "managed_fraction": managed_fraction(fc),
    })
    (fp.conf / "masters").write_text(f"{fc.host}:{fc.rest_port}\n")
    # start-cluster.sh starts a worker locally (no ssh) only for the literal "localhost".
    (fp.conf / "workers").write_text("localhost\n")
    return fp


def _install_python_jar_in_lib() -> None:
    """FLINK-37727: under Java 17 a second thread-mode Python job on one TaskManager fails with
    NoSuchFieldException: loadedLibraryNames unless flink-python is on the cluster classpath."""
    home = flink_home()
    for jar in (home / "opt").glob("flink-python-*.jar"):
        target = home / "lib" / jar.name
        if not target.exists():
            shutil.copyfile(jar, target)


def flink_up(cfg: Config, log=print) -> None:
    fc = cfg.flink
    fp = flink_paths(cfg)
    pids = flink_pids(cfg)
    if pids["jobmanager"] and pids["taskmanager"]:
        if _wait(lambda: _flink_ready(cfg), fc.start_timeout_s, _any_flink_pid, cfg):
            log(f"flink: already running, web UI {fc.rest_url}")
            return
    if pids["jobmanager"] or pids["taskmanager"]:  # half a cluster: start it again, whole
        _terminate(pids["jobmanager"] + pids["taskmanager"])
    for port, key in ((fc.rest_port, "flink.rest_port"),
                      (fc.jobmanager_rpc_port, "flink.jobmanager_rpc_port")):
        if _port_open(fc.host, port):
            raise StackError(f"flink: port {port} ({key}) is already in use by another process; "
                             f"stop it or set {key}")
    render_flink_conf(cfg)
    _install_python_jar_in_lib()
    for f in fp.pids.glob("*.pid"):
        f.unlink()
    proc = subprocess.run([flink_bin("start-cluster.sh")], env=flink_env(cfg),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise StackError(f"flink: start-cluster.sh failed (exit {proc.returncode}); logs in "
                         f"{fp.logs}\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    if not _wait(lambda: _flink_ready(cfg), fc.start_timeout_s, _any_flink_pid, cfg):
        pids = flink_pids(cfg)
        part = "JobManager" if not pids["jobmanager"] else "TaskManager"
        pattern = "standalonesession" if part == "JobManager" else "taskexecutor"
        logs = sorted(fp.logs.glob(f"*{pattern}*.log"))
        logfile = logs[-1] if logs else fp.logs
        raise StackError(
            f"flink: the {part} did not become ready within {fc.start_timeout_s} s "
            f"(flink.start_timeout_s); its log: {logfile}\n{_tail(logfile)}"
        )
    ov = flink_overview(cfg) or {}
    log(f"flink: up, web UI {fc.rest_url} ({ov.get('taskmanagers')} TaskManager, "
        f"{ov.get('slots-total')} slots; logs {fp.logs})")


def _daemon_start(cfg: Config, script: str) -> None:
    """One more Flink daemon of this cluster (``taskmanager.sh`` / ``jobmanager.sh start``)."""
    proc = subprocess.run([flink_bin(script), "start"], env=flink_env(cfg),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise StackError(f"flink: {script} start failed (exit {proc.returncode})\n"
                         f"{proc.stdout[-1500:]}{proc.stderr[-1500:]}")


# what the command line of a TaskManager's Python worker holds (pyflink-udf-runner.sh starts
# ``python -m pyflink.fn_execution.beam.beam_boot`` piped to ``tee .../flink-python-udf-boot.log``,
# which starts the SDK worker), and of a TaskManager's JVM
PYTHON_WORKER_MARKERS = ("pyflink-udf-runner.sh", "pyflink.fn_execution",
                         "flink-python-udf-boot.log")
TASKMANAGER_MAIN = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"


def orphaned_python_workers(cfg: Config) -> list[int]:
    """The cluster's Python worker processes whose TaskManager is gone (killed, crashed): no
    running TaskManager of the cluster among their ancestors. They are left re-parented and
    hold their memory until stopped."""
    strays = _strays(flink_paths(cfg).conf)
    live = set(flink_pids(cfg)["taskmanager"]) | {
        p for p in strays if TASKMANAGER_MAIN in _cmdline(p)}
    return [p for p in strays if p not in live and not _ancestors(p) & live
            and any(m in _cmdline(p) for m in PYTHON_WORKER_MARKERS)]


def taskmanager_start(cfg: Config, log=print) -> None:
    """Start one more TaskManager for the running cluster (after one was lost or killed);
    first stop the Python workers a lost TaskManager left behind."""
    orphans = orphaned_python_workers(cfg)
    if orphans:
        _terminate(orphans, timeout_s=10)
        log(f"flink: stopped {len(orphans)} Python worker process"
            f"{'' if len(orphans) == 1 else 'es'} of a lost TaskManager: pid {orphans}")
    _daemon_start(cfg, "taskmanager.sh")
    log("flink: TaskManager started")


def _listening_ports(pid: int) -> set[int]:
    """The TCP ports ``pid`` listens on (its socket inodes matched in /proc/net/tcp*)."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


def taskmanagers(cfg: Config) -> list[dict]:
    """The registered TaskManagers (REST /taskmanagers) with ``pid`` (matched by the RPC port
    of their ``path``, None when not one of this cluster's processes) and ``busy`` (a slot in
    use)."""
    info = flink_rest(cfg, "/taskmanagers") or {}
    pids = flink_pids(cfg)["taskmanager"]
    by_port = {port: pid for pid in pids for port in _listening_ports(pid)}
    out = []
    for tm in info.get("taskmanagers", []):
        port = tm.get("path", "").rsplit(":", 1)[-1].split("/", 1)[0]
        out.append({"id": tm["id"], "pid": by_port.get(int(port)) if port.isdigit() else None,
                    "busy": tm.get("freeSlots", 0) < tm.get("slotsNumber", 0)})
    return out


def wait_taskmanagers(cfg: Config, count: int, timeout_s: float | None = None) -> None:
    """Until ``count`` TaskManagers are registered (StackError after flink.start_timeout_s)."""
    timeout_s = cfg.flink.start_timeout_s if timeout_s is None else timeout_s
    if not _wait(lambda: (flink_overview(cfg) or {}).get("taskmanagers", 0) >= count,
                 timeout_s, _any_flink_pid, cfg):
        raise StackError(f"flink: {count} TaskManagers not registered within {timeout_s} s "
                         f"(flink.start_timeout_s); logs in {flink_paths(cfg).logs}")


def jobmanager_start(cfg: Config, log=print) -> None:
    """Start the JobManager again (after it was lost) and wait until a TaskManager is
    registered with it. Without HA services the jobs it ran are gone: they are started again
    from their last retained checkpoints (payline/soak.py does that)."""
    _daemon_start(cfg, "jobmanager.sh")
    if not _wait(lambda: _flink_ready(cfg), cfg.flink.start_timeout_s, _any_flink_pid, cfg):
        raise StackError(f"flink: the JobManager did not come back within "
                         f"{cfg.flink.start_timeout_s} s (flink.start_timeout_s); logs in "
                         f"{flink_paths(cfg).logs}")
    log("flink: JobManager started")


def flink_down(cfg: Config, log=print) -> None:
    pids = flink_pids(cfg)
    every = pids["taskmanager"] + pids["jobmanager"]
    if every:
        _terminate(every)
        log(f"flink: stopped (JobManager pid {pids['jobmanager']}, TaskManager pid "
            f"{pids['taskmanager']})")
    else:
        log("flink: not running")
    fp = flink_paths(cfg)
    # A Python worker process (process mode; the transactions job's vectorised validation) is
    # the TaskManager's child; one whose TaskManager was killed (kill -9, a crash) is left
    # behind, re-parented, and runs on: stop what the cluster's processes left
    strays = _strays(fp.conf)
    if strays:
        _terminate(strays)
        log(f"flink: stopped {len(strays)} process{'' if len(strays) == 1 else 'es'} left "
            f"behind by a TaskManager (Python workers): pid {strays}")
    if fp.pids.is_dir():
        for f in fp.pids.glob("*.pid"):
            f.unlink()
    clear_working_dirs(fp, log)


def clear_working_dirs(fp: FlinkPaths, log=print) -> None:
    """Empty io.tmp.dirs once no process of the cluster runs. A TaskManager removes its own
    working directory when it stops cleanly; one that was killed (a test, the OOM killer, a
    crash) leaves its RocksDB instances behind, hundreds of MB each, which nothing reads again
    (recovery reads checkpoints), and every JVM start unpacks its RPC jar there."""
    if not fp.tmp.is_dir():
        return
    marker = str(fp.conf)
    if any(_ours(int(e), marker) for e in os.listdir("/proc") if e.isdigit()):
        log(f"flink: a process of this cluster still runs; {fp.tmp} left as it is")
        return
    left = list(fp.tmp.iterdir())
    for p in left:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    workers = sum(p.name.startswith("tm_") for p in left)
    if workers:
        log(f"flink: removed the working files of {workers} TaskManager"
            f"{'' if workers == 1 else 's'} from {fp.tmp}")


# --- the whole stack ----------------------------------------------------------------------------


def up(cfg: Config, log=print, secure: bool = False) -> None:
    """``secure``: `payline up --secure` (README "Security"); a run dir once set up secure
    stays secure."""
    from payline import security, topics

    ensure_jars(cfg)
    if secure or security.active(cfg):
        kp = kafka_paths(cfg)
        if (kp.data / "meta.properties").exists() and not security.active(cfg):
            raise StackError(f"kafka: the broker's storage in {kp.data} was formatted without "
                             f"secure mode; `payline down` and remove {kp.home} to start it "
                             f"with --secure")
        security.prepare(cfg, log)
    kafka_up(cfg, log)
    try:
        topics.create_topics(cfg, log)
        if security.active(cfg):
            security.apply_acls(cfg, log)
        flink_up(cfg, log)
    except Exception:
        log("up failed; the parts that did start are left running for inspection "
            "(`payline down` stops them)")
        raise


def down(cfg: Config, log=print) -> None:
    archiver_down(cfg, log)
    flink_down(cfg, log)
    kafka_down(cfg, log)


# --- the raw-log archiver (a plain Python process) --------------------------------------------


def archiver_paths(cfg: Config) -> tuple[Path, Path]:
    home = cfg.paths.run_dir / "archiver"
    return home / "archiver.pid", home / "archiver.log"


def archiver_pids(cfg: Config) -> list[int]:
    pid_file, _ = archiver_paths(cfg)
    return [p for p in _read_pid(pid_file) if _ours(p, str(cfg.paths.run_dir.resolve()))]


def archiver_up(cfg: Config, cli_args: list[str], log=print) -> None:
    """Start ``payline archiver run`` in the background (same --conf/--set as this call)."""
    pid_file, log_file = archiver_paths(cfg)
    running = archiver_pids(cfg)
    if running:
        log(f"archiver: already running (pid {running[0]})")
        return
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).parent / "payline"
    # the run dir on the command line marks the process as this stack's (see _ours)
    cmd = [str(exe), *cli_args, "--set", f"paths.run_dir={cfg.paths.run_dir.resolve()}",
           "archiver", "run"]
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=cfg.root)
    pid_file.write_text(f"{proc.pid}\n")
    time.sleep(1)
    if proc.poll() is not None:
        raise StackError(f"archiver: exited at start (code {proc.returncode}); "
                         f"log {log_file}:\n{_tail(log_file)}")
    log(f"archiver: up (pid {proc.pid}, log {log_file}), writing {cfg.paths.raw_dir}")


def archiver_down(cfg: Config, log=print) -> None:
    _stop("archiver", archiver_pids(cfg), archiver_paths(cfg)[0], log)


def prometheus_ports(cfg: Config) -> list[int]:
    fc = cfg.flink
    return [p for p in range(fc.prometheus_port_first, fc.prometheus_port_last + 1)
            if _port_open(fc.host, p)]


def status(cfg: Config) -> dict:
    from payline import security

    kp, fp = kafka_paths(cfg), flink_paths(cfg)
    kpids = kafka_pids(cfg)
    fpids = flink_pids(cfg)
    remote = bool(cfg.flink.jobmanager)  # a cluster of its own: no pids here, only REST
    ov = flink_overview(cfg) if remote or fpids["jobmanager"] else None
    jobs = []
    if ov:
        listing = flink_rest(cfg, "/jobs/overview") or {}
        jobs = [{"id": j["jid"], "name": j["name"], "state": j["state"]}
                for j in listing.get("jobs", [])]
        from payline import ops  # per live job: version, uptime, checkpoints, lag, ...

        jobs = [ops.job_status(cfg, j["id"], j["name"])
                if j["state"] in ("RUNNING", "RESTARTING", "CREATED", "INITIALIZING") else j
                for j in jobs]
    apids = archiver_pids(cfg)
    kafka_up = bool(kpids) and kafka_ready(cfg, timeout_s=3)
    consumers = {}
    if kafka_up:
        from payline import ops

        consumers = ops.consumers_status(cfg)
    return {
        "consumers": consumers,
        "archiver": {"running": bool(apids), "pids": apids,
                     "log": str(archiver_paths(cfg)[1]),
                     "lake": str(cfg.paths.raw_dir)},
        "kafka": {
            "running": bool(kpids),
            "ready": kafka_up,
            "pids": kpids,
            "bootstrap": security.bootstrap(cfg),
            "secure": security.active(cfg),
            "log": str(kp.log),
            "data_dir": str(kp.data),
        },
        "flink": {
            "running": bool(ov) if remote else bool(fpids["jobmanager"]),
            "ready": bool(ov),
            "remote": remote,
            "jobmanager_pids": fpids["jobmanager"],
            "taskmanager_pids": fpids["taskmanager"],
            "web_ui": cfg.flink.rest_url,
            "taskmanagers": (ov or {}).get("taskmanagers", 0),
            "slots_total": (ov or {}).get("slots-total", 0),
            "slots_available": (ov or {}).get("slots-available", 0),
            "jobs": jobs,
            "logs": str(fp.logs),
            "conf_dir": str(fp.conf),
            "prometheus_ports": (prometheus_ports(cfg) if fpids["jobmanager"] and not remote
                                 else []),
            "checkpoints_dir": str(cfg.paths.checkpoints_dir),
        },
    }


def format_status(st: dict) -> str:
    k, f = st["kafka"], st["flink"]

    def state(part: dict) -> str:
        if part["running"] and part["ready"]:
            return "running"
        return "starting or unhealthy" if part["running"] else "stopped"

    lines = [
        f"kafka  {state(k):<8} broker {k['bootstrap']}"
        + (" (TLS + SASL/SCRAM)" if k.get("secure") else "")
        + (f"  pid {', '.join(map(str, k['pids']))}" if k["pids"] else ""),
        f"       log {k['log']}",
        f"flink  {state(f):<8} web UI {f['web_ui']}"
        + (" (remote)" if f.get("remote") else
           f"  JobManager pid {f['jobmanager_pids']} TaskManager pid {f['taskmanager_pids']}"
           if f["running"] else ""),
    ]
    if f["running"]:
        lines.append(f"       {f['taskmanagers']} TaskManager(s), "
                     f"{f['slots_available']}/{f['slots_total']} slots free; "
                     f"Prometheus metrics on port(s) "
                     f"{', '.join(map(str, f['prometheus_ports'])) or 'none yet'}")
        for j in f["jobs"]:
            lines.append(f"       job {j['name']} {j['state']} ({j['id']})")
            if "uptime_s" in j or "restarts" in j:
                cp = j.get("last_checkpoint")
                lag = j.get("consumer_lag")
                lag_text = (lag if isinstance(lag, str) or lag is None else
                            f"{sum(v for v in lag.values() if v is not None):,} "
                            f"({j.get('consumer_group')})")
                # the REST metric store may not have the count yet right after a restart
                restarts = j.get("restarts")
                lines.append(
                    f"         version {j.get('version') or 'unreleased (payline submit)'}, "
                    f"up {j.get('uptime_s', 0):.0f} s, restarts "
                    f"{'not reported yet' if restarts is None else restarts}, "
                    f"in {j.get('records_in_per_s')}/s, out {j.get('records_out_per_s')}/s, "
                    + ("no watermark yet" if j.get("event_time_lag_ms") is None else
                       f"event-time lag {j['event_time_lag_ms'] / 1000:,.1f} s"))
                lines.append(
                    "         last checkpoint "
                    + (f"{cp['age_s']:.0f} s ago, {cp['size_bytes'] or 0:,} B, "
                       f"{cp['duration_ms']} ms" if cp else "none yet")
                    + f"; consumer lag {lag_text}")
                lines.append(f"         {j['web_ui']}")
    lines.append(f"       logs {f['logs']}")
    lines.append(f"       checkpoints and savepoints {f['checkpoints_dir']}")
    for job, c in st.get("consumers", {}).items():
        lag = ("n/a: " + c["error"][:80]) if "error" in c else (
            "nothing committed yet" if c["total"] is None else f"{c['total']:,} records")
        lines.append(f"lag    {job:<12} group {c['group']}: {lag}")
    a = st.get("archiver")
    if a:
        lines.append(f"archiver {'running' if a['running'] else 'stopped'}  lake {a['lake']}"
                     + (f"  pid {', '.join(map(str, a['pids']))}" if a["pids"] else ""))
        lines.append(f"       log {a['log']}")
    return "\n".join(lines)
