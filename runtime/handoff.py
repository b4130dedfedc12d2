"""A job submission prepared ahead of the savepoint it starts from (the upgrade's downtime).

The PyFlink `flink run` client needs about 12 s on this kind of machine (a JVM, the Python
driver, the plan) before it submits anything; stopping the old version takes about 1 s. So
`payline upgrade` starts the new version's client first, with ``PAYLINE_SAVEPOINT_HANDOFF``
naming a file. The job script builds its whole plan, says so (``<file>.ready``), and waits for
the file: ``{"savepoint": PATH, "allow_non_restored": BOOL}`` to submit from that savepoint, or
``{"abort": true}`` (or nothing within ``WAIT_S``) to exit without submitting. Only then does
the upgrade stop the old version with a savepoint, and the new one starts from it at once.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

ENV = "PAYLINE_SAVEPOINT_HANDOFF"
WAIT_S = 900  # a client left waiting longer exits without submitting: never a late start


def ready_path(handoff: Path) -> Path:
    return handoff.with_name(handoff.name + ".ready")


def write(handoff: Path, spec: dict) -> None:
    """Hand ``spec`` to the waiting client (atomically: it never reads half a file)."""
    tmp = handoff.with_name(handoff.name + ".tmp")
    tmp.write_text(json.dumps(spec))
    os.replace(tmp, handoff)


def wait(handoff: Path, wait_s: float = WAIT_S, poll_s: float = 0.05) -> dict | None:
    """In the client: the plan is ready; wait for the spec (None: submit nothing)."""
    ready_path(handoff).write_text(str(os.getpid()))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if handoff.is_file():
            spec = json.loads(handoff.read_text())
            return None if spec.get("abort") else spec
        time.sleep(poll_s)
    return None


def execute(env, job_name: str) -> None:
    """``env.execute(job_name)``; under a prepared submission, from the savepoint handed over."""
    handoff = os.environ.get(ENV)
    if handoff:
        spec = wait(Path(handoff))
        if spec is None:
            raise SystemExit(f"payline: the submission of {job_name} was called off")
        # PyFlink only in the job's client, which has it; the operator tool imports this module
        # for the handoff's file protocol alone
        from pyflink.common import Configuration

        conf = Configuration()
        # Flink 2's keys: `flink run` without -s writes ignore-unclaimed-state = false under
        # the new key, which wins over a value under the deprecated execution.savepoint.* one
        conf.set_string("execution.state-recovery.path", spec["savepoint"])
        conf.set_string("execution.state-recovery.ignore-unclaimed-state",
                        "true" if spec.get("allow_non_restored") else "false")
        env.configure(conf)
    env.execute(job_name)
