"""Processes of the local stack, found and stopped by pid: whether a pid still runs and is ours
(its command line names our run dir), its parents and children, a stop that escalates from
SIGTERM to SIGKILL, and the ports it listens on. Linux only: it reads /proc.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from runtime import progress


def alive(pid: int) -> bool:
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


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def ours(pid: int, marker: str) -> bool:
    """A pid counts as ours only while it runs and its command line names our run dir."""
    return alive(pid) and marker in cmdline(pid)


def started_for(pid: int, conf_dir: Path) -> bool:
    """A process started with this cluster's FLINK_CONF_DIR in its environment: the cluster's
    JVMs, `flink run` clients, and the TaskManager's Python worker processes."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return f"FLINK_CONF_DIR={conf_dir}".encode() in fh.read().split(b"\0")
    except OSError:
        return False


def ppid(pid: int) -> int | None:
    """The parent of ``pid`` (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def ancestors(pid: int) -> set[int]:
    """The parent of ``pid``, its parent, and so on (init excluded)."""
    out: set[int] = set()
    while True:
        pid = ppid(pid)
        if pid is None or pid <= 1 or pid in out:
            return out
        out.add(pid)


def strays(conf_dir: Path) -> list[int]:
    """Running processes started for the cluster of ``conf_dir``, other than this process and
    its ancestors."""
    mine = {os.getpid()} | ancestors(os.getpid())
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and int(e) not in mine
            and started_for(int(e), conf_dir) and alive(int(e))]


def children(pid: int) -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and ppid(int(e)) == pid]


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for kid in children(todo.pop()):
            out.append(kid)
            todo.append(kid)
    return out


def terminate(pids: list[int], timeout_s: float = 30.0) -> None:
    """SIGTERM, wait, then SIGKILL whatever is left; returns when all are gone."""
    family = []
    for pid in pids:
        family += [pid, *descendants(pid)]
    for pid in family:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(alive(p) for p in family):
        time.sleep(0.2)
    for pid in family:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in family):
        time.sleep(0.1)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no log written)"
    return "\n".join("    " + line for line in text)


def read_pid(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split() if x.strip().isdigit()]
    except OSError:
        return []


def listening_ports(pid: int) -> set[int]:
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


def pids_text(label: str, pids: list[int]) -> str:
    """``JobManager pid 4874`` / ``TaskManager pids 4874, 4901`` / '' (none); no label: ``pid
    4874``."""
    if not pids:
        return ""
    return f"{label} pid{'s' if len(pids) > 1 else ''} {', '.join(map(str, pids))}".strip()


def wait_until(check, timeout_s: float, pids_fn, what: str = "it to answer") -> bool:
    """Poll ``check`` until true; give up early when ``pids_fn()`` says the processes we wait
    for have died. ``what`` is shown on a terminal while it waits (runtime.progress)."""
    started = time.monotonic()
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        if not pids_fn():
            return False
        progress.waiting(what, started)
        time.sleep(0.5)
    return False


def stop_part(part: str, pids: list[int], pid_file: Path, log) -> None:
    """Terminate a part started by pid file, say so, and forget its pid file."""
    if pids:
        terminate(pids)
        log(f"{part}: stopped ({pids_text('', pids)})")
    else:
        log(f"{part}: not running")
    pid_file.unlink(missing_ok=True)
