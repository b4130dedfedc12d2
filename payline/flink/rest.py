"""The one client of the JobManager's REST API, with one error policy: every call either
returns the decoded answer or raises :class:`FlinkUnreachable` (no API at the address: the
cluster is down, or the address is wrong) or :class:`FlinkError` (the API answered with an
error). Callers that only observe (status) catch them and report; callers that act let them
reach the operator. The states a job can be in are named here once.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from payline.errors import FlinkError, FlinkUnreachable
from runtime.settings import Config

# a job in one of these states holds (or is about to hold) its slots and its sources
LIVE_STATES = frozenset({"CREATED", "INITIALIZING", "RUNNING", "RESTARTING"})
# a job in one of these has ended for good
ENDED_STATES = frozenset({"FAILED", "CANCELED", "FINISHED"})


class FlinkRest:
    """Calls of one JobManager's REST API at ``url`` (``http://host:port``)."""

    def __init__(self, url: str, timeout_s: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    @classmethod
    def of(cls, cfg: Config, timeout_s: float | None = None) -> FlinkRest:
        """The client of the cluster this configuration points at (``flink.jobmanager`` or the
        local one); each request waits at most ``timeout_s`` (default
        ``flink.connect_timeout_s``)."""
        return cls(cfg.flink.rest_url, timeout_s or cfg.flink.connect_timeout_s)

    def call(self, path: str, method: str = "GET", body: dict | None = None,
             timeout_s: float | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s or self.timeout_s) as r:
                raw = r.read()
        except urllib.error.HTTPError as exc:
            raise FlinkError(f"flink: {method} {path}: HTTP {exc.code} "
                             f"{exc.read()[:300]!r}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FlinkUnreachable(
                f"flink: no JobManager answers at {self.url} within "
                f"{timeout_s or self.timeout_s:.0f} s ({reason}); start the local cluster with "
                f"`payline up`, or check --jobmanager / flink.jobmanager") from None
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            raise FlinkError(f"flink: {method} {path}: not JSON: {raw[:200]!r}") from None

    def get(self, path: str, timeout_s: float | None = None):
        return self.call(path, timeout_s=timeout_s)

    def post(self, path: str, body: dict):
        return self.call(path, "POST", body)

    # --- what the callers ask --------------------------------------------------------------

    def overview(self) -> dict:
        return self.get("/overview")

    def ready(self) -> bool:
        """A TaskManager with a slot is registered (False while nothing answers)."""
        try:
            ov = self.overview()
        except FlinkError:
            return False
        return ov.get("taskmanagers", 0) >= 1 and ov.get("slots-total", 0) >= 1

    def jobs(self) -> list[dict]:
        """Every job the cluster knows: {jid, name, state, ...} (``/jobs/overview``)."""
        return self.get("/jobs/overview").get("jobs", [])

    def live_job(self, name: str) -> str | None:
        """The id of the live job (LIVE_STATES) named ``name``, or None."""
        for j in self.jobs():
            if j["name"] == name and j["state"] in LIVE_STATES:
                return j["jid"]
        return None

    def job(self, job_id: str) -> dict:
        return self.get(f"/jobs/{job_id}")

    def job_root_cause(self, job_id: str) -> str:
        """The job's root exception and the stack traces of its exception history."""
        exc = self.get(f"/jobs/{job_id}/exceptions")
        return (exc.get("root-exception") or "") + "".join(
            e.get("stacktrace", "") for e in exc.get("exceptionHistory", {}).get("entries", []))

    def all_running(self, job_id: str) -> bool:
        """The job and every one of its tasks are RUNNING."""
        info = self.job(job_id)
        return info.get("state") == "RUNNING" and all(
            v["status"] == "RUNNING" for v in info.get("vertices", []))

    def cancel(self, job_id: str, timeout_s: float = 60) -> None:
        """Cancel the job and wait until it has ended."""
        self.call(f"/jobs/{job_id}?mode=cancel", "PATCH")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.job(job_id).get("state") in ENDED_STATES:
                return
            time.sleep(0.5)
        raise FlinkError(f"flink: job {job_id} not cancelled after {timeout_s:.0f} s")

    def trigger_savepoint(self, job_id: str, target_dir: str, stop: bool) -> str:
        """Start a savepoint (``stop``: stop-with-savepoint); returns its request id."""
        if stop:
            answer = self.post(f"/jobs/{job_id}/stop", {"targetDirectory": target_dir,
                                                        "drain": False})
        else:
            answer = self.post(f"/jobs/{job_id}/savepoints",
                               {"target-directory": target_dir, "cancel-job": False})
        return answer["request-id"]

    def savepoint_status(self, job_id: str, request_id: str) -> dict:
        return self.get(f"/jobs/{job_id}/savepoints/{request_id}")

    def taskmanagers(self) -> list[dict]:
        return self.get("/taskmanagers").get("taskmanagers", [])

    def vertex_subtask_metrics(self, job_id: str, vertex: str, query: str = "") -> list:
        return self.get(f"/jobs/{job_id}/vertices/{vertex}/subtasks/metrics{query}")
