"""conf/payline.toml loads into frozen dataclasses; every bad value is refused by name."""

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from jobs.streaming.fraud import create_sinks
from payline.flink.dist import render_flink_conf
from payline.flink.submit import rocksdb_memory_warning
from payline.local.cluster import clear_working_dirs
from payline.local.procs import cmdline
from runtime import config
from runtime.config import ConfigError


def test_checked_in_defaults_are_the_contracts():
    cfg = config.load()
    assert cfg.topics.transactions == "payments.transactions"
    assert cfg.topics.accounts == "payments.accounts"
    assert cfg.topics.aggregates == "payments.account-aggregates"
    assert cfg.topics.late == "payments.late-transactions"
    assert cfg.topics.dlq == "payments.dlq"
    assert cfg.topics.alerts == "payments.alerts"
    assert cfg.event_time.out_of_orderness_ms == 5000
    assert cfg.event_time.idleness_ms == 10000
    assert cfg.event_time.window_ms == 60000
    assert cfg.event_time.allowed_lateness_ms == 0
    assert cfg.contract.dedup_horizon_ms == 24 * 3600 * 1000
    assert cfg.contract.max_value_bytes == 64 * 1024
    assert cfg.contract.currencies == tuple(
        "USD EUR GBP JPY CHF CAD AUD SEK NOK DKK PLN INR BRL MXN SGD".split())
    assert (cfg.contract.min_amount_cents, cfg.contract.max_amount_cents) == (1, 10**12)
    assert (cfg.contract.min_event_time_ms, cfg.contract.max_event_time_ms) == (
        946684800000, 4102444800000)


def test_config_is_frozen():
    cfg = config.load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.kafka.port = 1


def test_set_override_is_applied_and_typed():
    cfg = config.load(overrides=["kafka.port=19092", "generator.duplicate_fraction=0.5"])
    assert cfg.kafka.port == 19092
    assert cfg.generator.duplicate_fraction == 0.5


def test_relative_paths_resolve_against_the_project_root():
    cfg = config.load(overrides=["paths.run_dir=somewhere"])
    assert cfg.paths.run_dir == config.CHECKOUT / "somewhere"


def test_overlay_file_is_merged(tmp_path: Path):
    overlay = tmp_path / "o.toml"
    overlay.write_text('[flink]\nrest_port = 18081\n[topics]\ndlq = "x.dlq"\n')
    cfg = config.load(overlay)
    assert cfg.flink.rest_port == 18081
    assert cfg.topics.dlq == "x.dlq"
    assert cfg.kafka.port == 9092


@pytest.mark.parametrize(
    "override, message",
    [
        ("kafka.port=abc", "conf: kafka.port must be an integer in 1..65535, got 'abc'"),
        ("kafka.port=70000", "conf: kafka.port must be an integer in 1..65535, got 70000"),
        ("flink.python_execution_mode=fast",
         "conf: flink.python_execution_mode must be one of thread, process, got 'fast'"),
        ("flink.state_backend=memory",
         "conf: flink.state_backend must be one of rocksdb, hashmap, got 'memory'"),
        ("flink.rocksdb_compression=lz4",
         "conf: flink.rocksdb_compression must be one of none, snappy, got 'lz4'"),
        ("generator.late_fraction=2", "conf: generator.late_fraction must be a number in"),
        ("kafka.prot=1", "conf: unknown key kafka.prot"),
        ("kafkaa.port=1", "conf: unknown section 'kafkaa' in --set"),
        ("kafka.port", "--set: expected section.key=value, got 'kafka.port'"),
        ("kafka.controller_port=9092", "conf: kafka.controller_port must differ from kafka.port"),
        ("contract.currencies=USD,euro", "conf: contract.currencies has 'euro'"),
        ("event_time.window_ms=1500", "conf: event_time.window_ms must be whole seconds"),
        ("fraud.medium_alerts_linger_ms=-1",
         "conf: fraud.medium_alerts_linger_ms must be an integer in 0..10000, got -1"),
        ("flink.metrics_refresh_ms=0",
         "conf: flink.metrics_refresh_ms must be an integer in 100..600000, got 0"),
    ],
)
def test_bad_value_is_refused_with_a_message_naming_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        config.load(overrides=[override])
    text = str(err.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_broken_overlay_file_names_the_file(tmp_path: Path):
    overlay = tmp_path / "broken.toml"
    overlay.write_text("[kafka\nport=1\n")
    with pytest.raises(ConfigError, match=f"conf: {overlay} is not valid TOML"):
        config.load(overlay)


def test_missing_key_is_named(tmp_path: Path):
    root = tmp_path / "proj"
    (root / "conf").mkdir(parents=True)
    text = config.defaults_text()
    (root / "conf" / "payline.toml").write_text(text.replace("heap_mb = 768\n", ""))
    with pytest.raises(ConfigError, match="conf: missing key kafka.heap_mb"):
        config.load(root=root)


def rendered_flink_conf(tmp_path: Path, *sets: str) -> dict:
    """The cluster's config.yaml as `payline up` renders it under ``tmp_path``, with ``sets``."""
    cfg = config.load(overrides=[f"paths.run_dir={tmp_path}/run",
                                 f"paths.checkpoints_dir={tmp_path}/cp", *sets])
    return yaml.safe_load((render_flink_conf(cfg).conf / "config.yaml").read_text())


@pytest.mark.parametrize(
    "sets, backend, fraction",
    [
        ([], "rocksdb", "0.4"),
        (["flink.state_backend=hashmap"], "hashmap", "0.05"),
        # process-mode Python workers take managed memory whatever holds the state
        (["flink.state_backend=hashmap", "flink.python_execution_mode=process"], "hashmap", "0.4"),
    ],
)
def test_the_state_backend_and_managed_memory_are_rendered_for_cluster_and_client(
        tmp_path: Path, sets, backend, fraction):
    rendered = rendered_flink_conf(tmp_path, *sets)
    assert rendered["state"]["backend"]["type"] == backend
    assert rendered["state"]["backend"]["rocksdb"]["use-bloom-filter"] is True
    assert str(rendered["taskmanager"]["memory"]["managed"]["fraction"]) == fraction


def test_the_metrics_refresh_is_rendered_as_the_fetchers_interval(tmp_path: Path):
    """`payline status` reads job metrics through the JobManager's fetcher: its interval is
    how old they may be."""
    def interval(*sets):
        return rendered_flink_conf(tmp_path, *sets)["metrics"]["fetcher"]["update-interval"]

    assert interval() == 2000
    assert interval("flink.metrics_refresh_ms=500") == 500


def test_working_dirs_are_in_the_run_dir_and_cleared_once_no_process_of_the_cluster_runs(
        tmp_path: Path):
    cfg = config.load(overrides=[f"paths.run_dir={tmp_path}/run",
                                 f"paths.checkpoints_dir={tmp_path}/cp"])
    fp = render_flink_conf(cfg)
    rendered = yaml.safe_load((fp.conf / "config.yaml").read_text())
    assert rendered["io"]["tmp"]["dirs"] == str(fp.tmp.resolve())
    left = fp.tmp / "tm_127.0.0.1:1234-abcdef" / "tmp" / "job_x_op_y" / "db"
    left.mkdir(parents=True)
    (left / "000001.sst").write_bytes(b"x" * 10)
    (fp.tmp / "flink-rpc-akka0123.jar").write_bytes(b"x")
    # a process of this cluster (its command line names the conf dir) keeps them
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                              str(fp.conf)])
    try:
        for _ in range(500):  # until it has exec'd
            if str(fp.conf) in cmdline(alive.pid):
                break
            time.sleep(0.01)
        said = []
        clear_working_dirs(fp, said.append)
        assert left.exists() and "still runs" in said[0]
    finally:
        alive.kill()
        alive.wait()
    said = []
    clear_working_dirs(fp, said.append)
    assert not any(fp.tmp.iterdir())
    assert said == [f"flink: removed the working files of 1 TaskManager from {fp.tmp}"]


def test_a_rocksdb_job_on_a_cluster_started_for_heap_state_is_warned_about():
    def cluster(managed_bytes, slots=8):  # the TaskManagers of GET /taskmanagers
        return [{"id": "tm-1", "slotsNumber": slots,
                 "memoryConfiguration": {"managedMemory": managed_bytes}}]

    rocksdb = config.load()
    heap = config.load(overrides=["flink.state_backend=hashmap"])
    # managed memory of the 3 GiB TaskManager with fraction 0.4 (RocksDB) and 0.05 (heap)
    started_for_rocksdb, started_for_heap = cluster(1_052_267_001), cluster(131_533_375)
    assert rocksdb_memory_warning(rocksdb, started_for_rocksdb) is None
    warning = rocksdb_memory_warning(rocksdb, started_for_heap)
    assert "tm-1" in warning and "16 MiB" in warning and "payline up" in warning
    assert "\n" not in warning
    assert rocksdb_memory_warning(heap, started_for_heap) is None
    assert rocksdb_memory_warning(rocksdb, None) is None  # the cluster did not answer


def test_high_alerts_are_sent_at_once_and_medium_ones_may_share_a_request():
    class Tables:  # records the DDL create_sinks runs
        def __init__(self):
            self.ddl = {}

        def execute_sql(self, sql):
            self.ddl[sql.split("TABLE")[1].split("(")[0].strip()] = " ".join(sql.split())

    tables = Tables()
    sinks = create_sinks(tables, config.load(overrides=["fraud.medium_alerts_linger_ms=35"]))
    assert "'properties.linger.ms' = '0'" in tables.ddl[sinks["high"]]
    assert "'properties.linger.ms' = '0'" in tables.ddl[sinks["on_arrival"]]
    assert "'properties.linger.ms' = '35'" in tables.ddl[sinks["medium"]]
    assert "at-least-once" in tables.ddl[sinks["medium"]]
    assert "linger" not in tables.ddl[sinks["dlq"]] and "exactly-once" in tables.ddl[sinks["dlq"]]
