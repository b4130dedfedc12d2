"""What the test stacks' logs say went wrong, in a few dozen lines.

.ci/run prints this after a failed run: CI keeps only the tail of the output and none of the
run dirs, so a job that failed on the cluster (a crash loop, no slots, a lost TaskManager)
would otherwise leave nothing but a test's timeout to go on. Standard library only: it must
run whatever state the venv is in.

    python .ci/digest.py RUN_DIR [RUN_DIR ...]
"""
from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

PER_STACK = 24  # lines of findings per stack: the tail CI keeps is short
WIDTH = 260

# the lines of the JobManager's log that tell a job's or a TaskManager's fate
JOBMANAGER_EVENTS = re.compile(
    r"switched from state \w+ to FAILED|Job .* switched from state \w+ to (FAILED|RESTARTING)"
    r"|NoResourceAvailableException|is no longer reachable|Registering TaskManager"
    r"|Unregistering task executor|OutOfMemoryError|FATAL")
TASKMANAGER_EVENTS = re.compile(r" ERROR |OutOfMemoryError|FATAL|Fatal error")
KAFKA_EVENTS = re.compile(r"\b(ERROR|FATAL)\b")
# what makes two occurrences of one message look different: times, ids, attempt numbers
NOISE = re.compile(r"^\S+ \S+\s+|\b[0-9a-f]{32}\b|\b[0-9a-f-]{36}\b|#\d+|\(\d+/\d+\)"
                   r"|attempt \d+|\d+\.\d+\.\d+\.\d+:\d+(-\w+)?|\bpid \d+")


def root_cause(lines: list[str], start: int) -> str | None:
    """The last ``Caused by:`` of the stack trace that follows line ``start``."""
    cause = None
    for line in lines[start + 1:start + 400]:
        if line.startswith("Caused by:"):
            cause = line
        elif not (line.startswith(("\t", " ", "...")) or not line.strip()):
            break
    return cause


def events(path: Path, pattern: re.Pattern) -> list[str]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    out = []
    for i, line in enumerate(lines):
        if pattern.search(line):
            cause = root_cause(lines, i)
            out.append(line + (f"  <- {cause}" if cause else ""))
    return out


def rotated(log_dir: Path, glob: str) -> list[Path]:
    """A log and its rotated copies, oldest first (log4j numbers them .1, .2, ...)."""
    def age(p: Path) -> int:
        suffix = p.name.rsplit(".", 1)[-1]
        return -int(suffix) if suffix.isdigit() else 0
    return sorted(log_dir.glob(glob), key=age)


def summarised(lines: list[str]) -> list[str]:
    """Repeats folded into one line with a count, in the order of their last occurrence."""
    keys = [NOISE.sub("", line) for line in lines]
    counts = Counter(keys)
    last: dict[str, str] = {}
    for key, line in zip(keys, lines, strict=True):
        last.pop(key, None)  # moved to the end: the order is that of the last occurrences
        last[key] = line
    out = [f"{counts[key]:>4}x {line}" if counts[key] > 1 else f"     {line}"
           for key, line in last.items()]
    return [line[:WIDTH] for line in out]


def stack_findings(run_dir: Path) -> list[str]:
    logs = run_dir / "flink" / "log"
    found = []
    for path in rotated(logs, "*standalonesession*.log*"):
        found += events(path, JOBMANAGER_EVENTS)
    for path in rotated(logs, "*taskexecutor*.log*"):
        found += [f"[tm] {e}" for e in events(path, TASKMANAGER_EVENTS)]
    for path in sorted(logs.glob("*.out")):
        # a JVM's stdout/stderr: what it printed last other than stack frames
        lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
        found += [f"[{path.name}] {line}" for line in
                  [x for x in lines if x.strip() and not x.startswith(("\t", " "))][-3:]]
    for path in rotated(run_dir / "kafka" / "logs", "server.log*"):
        found += [f"[kafka] {e}" for e in events(path, KAFKA_EVENTS)]
    return summarised(found)[-PER_STACK:]


def jvm_crashes(places: list[Path]) -> list[str]:
    """The JVMs that crashed (a native frame, pemja's embedded Python among them): their
    hs_err files land in the working directory of whoever started them."""
    out = []
    for place in places:
        for path in sorted(place.glob("hs_err_pid*.log")) if place.is_dir() else []:
            lines = path.read_text(errors="replace").splitlines()
            signal = next((line for line in lines if line.startswith("#  SIG")), "")
            frame = next((lines[i + 1] for i, line in enumerate(lines[:-1])
                          if line.startswith("# Problematic frame:")), "")
            out.append(f"{path}: {signal.strip('# ')} {frame.strip('# ')}"[:WIDTH])
    return out


def machine() -> list[str]:
    """Memory, load and the biggest processes now: a starved machine fails jobs too."""
    out = []
    try:
        out.append("load " + " ".join(Path("/proc/loadavg").read_text().split()[:3]))
        meminfo = dict(line.split(":", 1) for line in
                       Path("/proc/meminfo").read_text().splitlines())
        out.append(f"memory available {meminfo['MemAvailable'].strip()} of "
                   f"{meminfo['MemTotal'].strip()}")
    except (OSError, KeyError, ValueError):
        pass
    ps = subprocess.run(["ps", "-eo", "rss=,etimes=,args=", "--sort=-rss"],
                        capture_output=True, text=True)
    out += [f"  {line.strip()[:WIDTH]}" for line in ps.stdout.splitlines()[:6]]
    kernel = subprocess.run(["dmesg"], capture_output=True, text=True)
    out += [line[:WIDTH] for line in kernel.stdout.splitlines()
            if "oom" in line.lower() or "killed process" in line.lower()][-5:]
    return out


def main(run_dirs: list[str]) -> None:
    print("== what the stacks' logs say (.ci/digest.py)")
    for name in run_dirs:
        run_dir = Path(name)
        if not run_dir.is_dir():
            continue
        findings = stack_findings(run_dir)
        print(f"-- {run_dir}: {'' if findings else 'nothing of note'}")
        for line in findings:
            print(line)
    crashes = jvm_crashes([Path.cwd(), *(Path(d) for d in run_dirs)])
    if crashes:
        print("-- JVM crashes")
        for line in crashes:
            print(line)
    print("-- machine")
    print("\n".join(machine()))


if __name__ == "__main__":
    main(sys.argv[1:])
