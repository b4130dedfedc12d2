"""Bad command-line arguments and configuration values: exit 2, one line naming them; the
processes of the local stack found by pid; the `flink run` command; the status lines."""

import json
import os
import subprocess
import sys
import time

import pytest

from payline import status
from payline.cli import main
from payline.flink.dist import flink_paths
from payline.flink.submit import run_command
from payline.local import cluster
from payline.local.broker import storage_format_args
from payline.local.procs import strays, terminate
from runtime import config as config_mod


@pytest.mark.parametrize("argv, named", [
    (["generate", "--rate", "fast"], "--rate"),
    (["generate", "--count", "-3"], "--count"),
    (["generate", "--duplicate-fraction", "1.5"], "--duplicate-fraction"),
    (["generate", "--spike", "10x"], "--spike"),
    (["generate", "--out-of-order-ms", "9000"], "--out-of-order-ms"),
    (["generate", "--accounts", "0"], "--accounts"),
    (["--set", "kafka.port=x", "status"], "kafka.port"),
    (["--set", "nonsense", "status"], "--set"),
    (["--conf", "/nonexistent.toml", "status"], "/nonexistent.toml"),
    (["frobnicate"], "frobnicate"),
    ([], "COMMAND"),
    (["deploy", "fraud", "--jobmanager", "flink-jm"], "--jobmanager"),
    (["status", "--jobmanager", "flink-jm:99999"], "--jobmanager"),
    (["--set", "flink.jobmanager=http://jm:8081/", "status"], "flink.jobmanager"),
])
def test_user_error_exits_2_with_one_line_naming_it(argv, named, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert named in err
    assert "Traceback" not in err


def test_a_kafka_cluster_id_starting_with_a_dash_is_one_argument():
    args = storage_format_args("-AbC_d", "server.properties")
    assert "--cluster-id=-AbC_d" in args and "-AbC_d" not in args


def test_a_remote_jobmanager_points_flink_run_and_the_rest_calls_at_it(tmp_path):
    local = config_mod.load()
    assert local.flink.jobmanager == "" and local.flink.run_options() == []
    assert local.flink.rest_url == f"http://{local.flink.host}:{local.flink.rest_port}"
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "flink-sql-connector-kafka-5.0.0-2.2.jar").write_bytes(b"")
    remote = config_mod.load(overrides=["flink.jobmanager=jm.example:8081",
                                        f"flink.jars_dir={jars}"])
    assert remote.flink.rest_url == "http://jm.example:8081"
    cmd = run_command(remote, tmp_path / "job.py", ["--x"], detached=True,
                      from_savepoint="file:///sp", allow_non_restored=True, parallelism=2,
                      py_files=tmp_path / "bundle.zip")
    assert cmd[1:] == ["run", "-m", "jm.example:8081", "-d", "-s", "file:///sp",
                       "--allowNonRestoredState", "-p", "2",
                       "--jarfile", str(jars / "flink-sql-connector-kafka-5.0.0-2.2.jar"),
                       "--pyFiles", str(tmp_path / "bundle.zip"),
                       "--python", str(tmp_path / "job.py"), "--x"]


def test_down_finds_the_processes_a_killed_taskmanager_left_behind(tmp_path):
    # a process-mode Python worker is the TaskManager's child with the cluster's
    # FLINK_CONF_DIR; orphaned by a kill -9 of its TaskManager it runs on, and `payline down`
    # (cluster.flink_down) stops it by that environment variable, not by parentage
    conf, other = tmp_path / "flink" / "conf", tmp_path / "other" / "conf"
    env = {**os.environ, "FLINK_CONF_DIR": str(conf)}
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    theirs = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              env={**os.environ, "FLINK_CONF_DIR": str(other)})
    try:
        assert strays(conf) == [ours.pid]
        terminate(strays(conf), timeout_s=5)
        assert ours.wait(5) is not None and theirs.poll() is None
        assert strays(conf) == []
    finally:
        for p in (ours, theirs):
            p.kill()
            p.wait()


def test_a_new_taskmanager_first_stops_the_python_workers_of_a_lost_one(tmp_path, monkeypatch):
    # cluster.taskmanager_start (after a kill -9) stops the cluster's Python workers that have
    # no running TaskManager above them; a live TaskManager's worker and the cluster's other
    # processes (e.g. a `flink run` client waiting for an upgrade) stay
    cfg = config_mod.load(overrides=[f"paths.run_dir={tmp_path / 'run'}"])
    env = {**os.environ, "FLINK_CONF_DIR": str(flink_paths(cfg).conf)}
    sleep = "import time; time.sleep(60)"
    worker = [sys.executable, "-c", sleep, "-m", "pyflink.fn_execution.beam.beam_boot"]
    orphan = subprocess.Popen(worker, env=env)
    client = subprocess.Popen([sys.executable, "-c", sleep, "flink", "run"], env=env)
    # a stand-in TaskManager whose Python worker is its grandchild, as under
    # pyflink-udf-runner.sh (each stand-in starts the command in an environment variable, so
    # their own command lines do not look like a worker's)
    def spawner(var):
        return [sys.executable, "-c", "import json, os, subprocess, time; subprocess.Popen("
                f"json.loads(os.environ['{var}'])); time.sleep(60)"]

    tm = subprocess.Popen(spawner("RUNNER"), env={
        **env, "RUNNER": json.dumps(spawner("WORKER")), "WORKER": json.dumps(worker)})
    try:
        deadline = time.monotonic() + 10
        while len(strays(flink_paths(cfg).conf)) < 5:
            assert time.monotonic() < deadline, "the stand-in processes did not start"
            time.sleep(0.1)
        monkeypatch.setattr(cluster, "flink_pids",
                            lambda _cfg: {"jobmanager": [], "taskmanager": [tm.pid]})
        assert cluster.orphaned_python_workers(cfg) == [orphan.pid]
        started, said = [], []
        monkeypatch.setattr(cluster, "daemon_start", lambda _cfg, script: started.append(script))
        cluster.taskmanager_start(cfg, log=said.append)
        assert orphan.wait(10) is not None
        assert client.poll() is None and tm.poll() is None
        # the stand-in TaskManager, its runner and worker, the client
        assert len(strays(flink_paths(cfg).conf)) == 4
        assert started == ["taskmanager.sh"]
        assert said[0] == f"flink: stopped 1 Python worker process of a lost TaskManager: " \
                          f"pid {orphan.pid}"
    finally:
        for p in (orphan, client, tm):
            p.kill()
            p.wait()
        for pid in strays(flink_paths(cfg).conf):
            os.kill(pid, 9)


def test_status_says_when_the_restart_count_is_not_reported_yet():
    def observed(restarts):
        job = {"name": "payline-transactions", "state": "RUNNING", "id": "j1", "uptime_s": 5.0,
               "restarts": restarts, "records_in_per_s": 0.0, "records_out_per_s": 0.0,
               "event_time_lag_ms": 1500, "last_checkpoint": None, "consumer_lag": None,
               "web_ui": "http://ui"}
        return {"kafka": {"running": True, "ready": True, "bootstrap": "b:9092", "pids": [1],
                          "log": "k.log"},
                "flink": {"running": True, "ready": True, "web_ui": "http://ui",
                          "jobmanager_pids": [2], "taskmanager_pids": [3], "taskmanagers": 1,
                          "slots_available": 3, "slots_total": 4, "prometheus_ports": [9249],
                          "jobs": [job], "logs": "logs", "checkpoints_dir": "cp"}}

    assert "up 5.0 s, restarts not reported yet, in 0.0/s" in status.format_status(observed(None))
    text = status.format_status(observed(2))
    assert "restarts 2, in 0.0/s" in text and "event-time lag 1.5 s" in text
