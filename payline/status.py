"""`payline status`: what runs where, observed and never changed. The local stack's processes
by pid; the Flink cluster (local or remote) and each live job through the REST client (its
version from the deployment records, uptime, restarts, checkpoints, records in and out, the
event-time lag, the records its sources have yet to read); the consumer lag of each streaming
job's configured group. A part that does not answer is reported as such, with how to start it,
never raised; :func:`problems` lists what `status --check` fails on.
"""

from __future__ import annotations

import os
from collections import Counter

from payline import kafka_admin
from payline.errors import FlinkError
from payline.flink.dist import flink_paths
from payline.flink.rest import ENDED_STATES, LIVE_STATES, FlinkRest
from payline.local.archiver_proc import archiver_paths, archiver_pids
from payline.local.broker import kafka_paths, kafka_pids
from payline.local.cluster import flink_pids, prometheus_ports
from payline.local.procs import pids_text
from payline.release.records import deployment_of, now_ms
from runtime import kafka_clients
from runtime.registry import ACCOUNTS_TABLE, STREAMING_JOBS
from runtime.settings import Config
from runtime.times import duration

# watermarkLag before a source's first watermark is the wall clock minus Long.MIN_VALUE
_NO_WATERMARK_YET_MS = 10 * 365 * 24 * 3600 * 1000


def source_gauge(rest: FlinkRest, job_id: str, sources: list[str], suffix: str,
                 agg: str) -> list[float]:
    """The ``agg`` (max, sum) of the subtask metric ending in ``suffix`` of each source
    vertex that reports it."""
    out = []
    for v in sources:
        ids = [m["id"] for m in rest.vertex_subtask_metrics(job_id, v)
               if m["id"].endswith(suffix)]
        if ids:
            out += [m[agg] for m in rest.vertex_subtask_metrics(
                job_id, v, f"?get={','.join(ids)}&agg={agg}") if m.get(agg) is not None]
    return out


def event_time_lag_ms(rest: FlinkRest, job_id: str, sources: list[str]) -> int | None:
    """The job's event-time lag: the largest ``watermarkLag`` (wall clock minus the last
    watermark, Flink's own JVM gauge on every source reader) over its source subtasks; None
    before any source has a watermark."""
    lags = [lag for lag in source_gauge(rest, job_id, sources, ".watermarkLag", "max")
            if lag < _NO_WATERMARK_YET_MS]
    # negative: the watermark is ahead of the wall clock (event times ahead of it)
    return max(max(int(lag), 0) for lag in lags) if lags else None


def pending_records(rest: FlinkRest, job_id: str, sources: list[str]) -> int | None:
    """What the job's Kafka sources have yet to read: the connector's own ``pendingRecords``
    gauge summed over the source subtasks. It is the lag of whichever consumer group the job
    was started with (``--group-id``), which the group-based lag cannot know; None before the
    sources report it."""
    counts = source_gauge(rest, job_id, sources, "pendingRecords", "sum")
    return int(sum(counts)) if counts else None


def job_status(cfg: Config, job_id: str, name: str, rest: FlinkRest | None = None) -> dict:
    """What an operator asks of a running job: its version, uptime, last checkpoint,
    restarts, records in/out per second, the event-time lag, the records its sources have yet
    to read. Raises FlinkError when the REST API does not answer."""
    rest = rest or FlinkRest.of(cfg)
    info = rest.job(job_id)
    out: dict = {"id": job_id, "name": name, "state": info.get("state"),
                 "web_ui": f"{cfg.flink.rest_url}/#/job/running/{job_id}/overview"}
    deployed = deployment_of(cfg, job_id)
    out["version"] = deployed["version"] if deployed else None
    if info.get("start-time", -1) > 0:
        out["uptime_s"] = round((info.get("now", now_ms()) - info["start-time"]) / 1000, 1)
    metrics = rest.get(f"/jobs/{job_id}/metrics?get=numRestarts")
    out["restarts"] = int(float(metrics[0]["value"])) if metrics else None
    cps = rest.get(f"/jobs/{job_id}/checkpoints")
    last = (cps.get("latest") or {}).get("completed")
    out["last_checkpoint"] = None if not last else {
        "age_s": round((now_ms() - last["latest_ack_timestamp"]) / 1000, 1),
        "size_bytes": last.get("checkpointed_size", last.get("state_size")),
        "duration_ms": last.get("end_to_end_duration")}
    plan = rest.get(f"/jobs/{job_id}/plan").get("plan", {}).get("nodes", [])
    fed = {i["id"] for n in plan for i in n.get("inputs", [])}
    source_nodes = [n for n in plan if not n.get("inputs")]
    sources = [n["id"] for n in source_nodes]
    sinks = [n["id"] for n in plan if n["id"] not in fed]

    def rate(vertices, metric):
        total = 0.0
        for v in vertices:
            got = rest.vertex_subtask_metrics(job_id, v, f"?get={metric}&agg=sum")
            total += sum(m.get("sum", 0.0) for m in got)
        return round(total, 1)

    out["pending_records"] = pending_records(rest, job_id, sources)
    out["records_in_per_s"] = rate(sources, "numRecordsOutPerSecond")
    out["records_out_per_s"] = rate(sinks, "numRecordsInPerSecond")
    # the transactions source sets the job's pace (runtime.registry.ACCOUNTS_TABLE: why not
    # the fraud job's accounts source)
    out["event_time_lag_ms"] = event_time_lag_ms(
        rest, job_id, [n["id"] for n in source_nodes
                      if ACCOUNTS_TABLE not in n.get("description", "")])
    return out


def consumers_status(cfg: Config) -> dict:
    """The consumer lag of each streaming job's default group, running or not (a stopped
    job's lag keeps growing while traffic comes in)."""
    out = {}
    for key, job in sorted(STREAMING_JOBS.items()):
        group = job.group_id(cfg)
        try:
            lag = kafka_admin.consumer_lag(cfg, group, job.source_topics(cfg))
            out[key] = {"group": group, "lag": lag,
                        "total": sum(v for v in lag.values() if v is not None)
                        if any(v is not None for v in lag.values()) else None}
        except Exception as exc:  # noqa: BLE001 - status reports, it does not fail
            out[key] = {"group": group, "error": str(exc)}
    return out


def observed_job(cfg: Config, listed: dict, rest: FlinkRest) -> dict:
    """A live job's :func:`job_status`; the listing's row alone for a job that has ended, or
    whose details did not answer (one job's silence does not hide the others)."""
    if listed["state"] not in LIVE_STATES:
        return listed
    try:
        return job_status(cfg, listed["id"], listed["name"], rest)
    except FlinkError:
        return listed


def bootstrap_is_remote(cfg: Config) -> bool:
    """The clients point at a broker `payline up` did not start (PAYLINE_KAFKA_BOOTSTRAP)."""
    return bool(os.environ.get("PAYLINE_KAFKA_BOOTSTRAP"))


def status(cfg: Config) -> dict:
    kp, fp = kafka_paths(cfg), flink_paths(cfg)
    kpids = kafka_pids(cfg)
    fpids = flink_pids(cfg)
    remote = bool(cfg.flink.jobmanager)  # a cluster of its own: no pids here, only REST
    ov, jobs = None, []
    flink_error = None
    if remote or fpids["jobmanager"]:
        rest = FlinkRest.of(cfg)
        try:
            ov = rest.overview()
            jobs = [{"id": j["jid"], "name": j["name"], "state": j["state"]}
                    for j in rest.jobs()]
        except FlinkError as exc:
            flink_error = str(exc)  # shown as unreachable (remote) or not ready (local)
        jobs = [observed_job(cfg, j, rest) for j in jobs]
    apids = archiver_pids(cfg)
    # a broker of its own (PAYLINE_KAFKA_BOOTSTRAP) has no pid here: only its answer tells
    kafka_remote = bootstrap_is_remote(cfg)
    kafka_up = (bool(kpids) or kafka_remote) and kafka_admin.kafka_ready(
        cfg, timeout_s=cfg.kafka.connect_timeout_s)
    consumers = consumers_status(cfg) if kafka_up else {}
    return {
        "consumers": consumers,
        "archiver": {"running": bool(apids), "pids": apids,
                     "log": str(archiver_paths(cfg)[1]),
                     "lake": str(cfg.paths.raw_dir)},
        "kafka": {
            "running": bool(kpids) or (kafka_remote and kafka_up),
            "remote": kafka_remote,
            "ready": kafka_up,
            "pids": kpids,
            "bootstrap": kafka_clients.bootstrap(cfg),
            "secure": kafka_clients.active(cfg),
            "log": str(kp.log),
            "data_dir": str(kp.data),
        },
        "flink": {
            "running": bool(ov) if remote else bool(fpids["jobmanager"]),
            "ready": bool(ov),
            "remote": remote,
            "error": flink_error,
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


def part_state(part: dict) -> str:
    if part["running"] and part["ready"]:
        return "running"
    if part.get("remote") and part.get("error"):
        return "unreachable"
    return "starting or unhealthy" if part["running"] else "stopped"


def problems(st: dict) -> list[str]:
    """What is not running, each with how to start it (`status --check` exits 1 on any)."""
    k, f, a = st["kafka"], st["flink"], st.get("archiver") or {}
    out = []
    if part_state(k) != "running":
        out.append(f"kafka is {part_state(k)}: start it with `payline up`")
    if part_state(f) == "unreachable":
        out.append(f"flink is unreachable at {f['web_ui']}: check --jobmanager / "
                   f"flink.jobmanager, or that cluster")
    elif part_state(f) != "running":
        out.append(f"flink is {part_state(f)}: start it with `payline up`")
    running = {j["name"] for j in f["jobs"] if j["state"] == "RUNNING"}
    if part_state(f) == "running":
        for key, job in sorted(STREAMING_JOBS.items()):
            if job.name not in running:
                out.append(f"the {key} job is not running: start it with "
                           f"`payline deploy {key}` (or `payline submit {key}`)")
    if a and not a["running"]:
        out.append("the archiver is stopped: start it with `payline archiver start`")
    return out


def format_job(j: dict) -> list[str]:
    lines = [f"       job {j['name']} {j['state']} ({j['id']})"]
    if "uptime_s" not in j and "restarts" not in j:
        return lines
    cp = j.get("last_checkpoint")
    # the REST metric store may not have the count yet right after a restart
    restarts = j.get("restarts")
    pending = j.get("pending_records")
    lag = j.get("event_time_lag_ms")
    lines.append(
        f"         version {j.get('version') or 'unreleased (payline submit)'}, "
        f"up {duration(j.get('uptime_s', 0))}, restarts "
        f"{'not reported yet' if restarts is None else restarts}, "
        f"in {j.get('records_in_per_s')}/s, out {j.get('records_out_per_s')}/s")
    lines.append(
        "         "
        + ("no watermark yet" if lag is None else f"event-time lag {duration(lag / 1000)}")
        + ", pending records "
        + ("not reported yet" if pending is None else f"{pending:,}")
        + "; last checkpoint "
        + (f"{duration(cp['age_s'])} ago, {cp['size_bytes'] or 0:,} B, "
           f"{cp['duration_ms']} ms" if cp else "none yet"))
    lines.append(f"         {j['web_ui']}")
    return lines


def format_status(st: dict) -> str:
    k, f = st["kafka"], st["flink"]
    lines = [
        f"kafka  {part_state(k):<8} broker {k['bootstrap']}"
        + (" (TLS + SASL/SCRAM)" if k.get("secure") else "")
        + (" (not started here)" if k.get("remote") else "")
        + (f"  {pids_text('', k['pids'])}" if k["pids"] else ""),
        f"       log {k['log']}",
        f"flink  {part_state(f):<8} web UI {f['web_ui']}"
        + (" (remote)" if f.get("remote") else
           "  " + "  ".join(t for t in (pids_text("JobManager", f["jobmanager_pids"]),
                                        pids_text("TaskManager", f["taskmanager_pids"])) if t)
           if f["running"] else ""),
    ]
    if f.get("error") and part_state(f) != "running":
        lines.append(f"       {f['error']}")
    if f["running"] and f["ready"]:
        lines.append(f"       {f['taskmanagers']} TaskManager(s), "
                     f"{f['slots_available']}/{f['slots_total']} slots free; "
                     f"Prometheus metrics on port(s) "
                     f"{', '.join(map(str, f['prometheus_ports'])) or 'none yet'}")
        ended = Counter(j["state"] for j in f["jobs"] if j["state"] in ENDED_STATES)
        for j in f["jobs"]:
            if j["state"] not in ENDED_STATES:
                lines += format_job(j)
        if ended:
            lines.append(f"       {sum(ended.values())} ended job(s): "
                         + ", ".join(f"{n} {state}" for state, n in sorted(ended.items()))
                         + " (`payline status --json` lists them)")
    lines.append(f"       logs {f['logs']}")
    lines.append(f"       checkpoints and savepoints {f['checkpoints_dir']}")
    for job, c in st.get("consumers", {}).items():
        lag = ("n/a: " + c["error"][:80]) if "error" in c else (
            "nothing committed yet" if c["total"] is None else f"{c['total']:,} records")
        lines.append(f"lag    {job:<12} group {c['group']} (configured): {lag}")
    a = st.get("archiver")
    if a:
        lines.append(f"archiver {'running' if a['running'] else 'stopped'}  lake {a['lake']}"
                     + (f"  {pids_text('', a['pids'])}" if a["pids"] else ""))
        lines.append(f"       log {a['log']}")
    todo = problems(st)
    if todo:
        lines.append("")
        lines += [f"- {p}" for p in todo]
    return "\n".join(lines)
