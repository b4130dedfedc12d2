"""Bad command-line arguments and configuration values: exit 2, one line naming them."""

import pytest

from payline.cli import main


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
    from payline.stack import storage_format_args

    args = storage_format_args("-AbC_d", "server.properties")
    assert "--cluster-id=-AbC_d" in args and "-AbC_d" not in args


def test_a_remote_jobmanager_points_flink_run_and_the_rest_calls_at_it(tmp_path):
    from payline import config as config_mod
    from payline.flink_cli import run_command

    local = config_mod.load()
    assert local.flink.jobmanager == "" and local.flink.run_options() == []
    assert local.flink.rest_url == f"http://{local.flink.host}:{local.flink.rest_port}"
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "flink-sql-connector-kafka-5.0.0-2.2.jar").write_bytes(b"")
    remote = config_mod.load(overrides=["flink.jobmanager=jm.example:8081",
                                        f"flink.jars_dir={jars}"])
    assert remote.flink.rest_url == "http://jm.example:8081"
    cmd = run_command(remote, tmp_path / "job.py", [], detached=True)
    assert cmd[1:4] == ["run", "-m", "jm.example:8081"]


def test_down_finds_the_processes_a_killed_taskmanager_left_behind(tmp_path):
    # a process-mode Python worker is the TaskManager's child with the cluster's
    # FLINK_CONF_DIR; orphaned by a kill -9 of its TaskManager it runs on, and `payline down`
    # (stack.flink_down) stops it by that environment variable, not by parentage
    import os
    import subprocess
    import sys

    from payline import stack

    conf, other = tmp_path / "flink" / "conf", tmp_path / "other" / "conf"
    env = {**os.environ, "FLINK_CONF_DIR": str(conf)}
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    theirs = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              env={**os.environ, "FLINK_CONF_DIR": str(other)})
    try:
        assert stack._strays(conf) == [ours.pid]
        stack._terminate(stack._strays(conf), timeout_s=5)
        assert ours.wait(5) is not None and theirs.poll() is None
        assert stack._strays(conf) == []
    finally:
        for p in (ours, theirs):
            p.kill()
            p.wait()
