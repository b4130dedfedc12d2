"""The command line's conventions: --version, a description, examples and help on every option
of every subcommand, --conf/--set after the subcommand, the exit codes (0 ok, 1 a check found a
problem, 2 usage, 3 could not run), --json results, `payline releases`, ISO times, and the
progress line that only a terminal sees."""

import io
import json
import re

import pytest

from payline import status
from payline.cli import build_parser, command_names, main
from payline.cli.errors import EXIT_CODES_HELP
from payline.release import history
from runtime import config, progress, times

PARSER = build_parser()


def help_entries(text: str) -> list[tuple[str, bool]]:
    """(invocation, has help text) for each argument listed in a --help page."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if not re.match(r"^  \S", line) or line.strip().startswith("payline"):
            continue
        if line.strip().endswith(":"):
            continue
        own = re.match(r"^  (\S.*?)(\s{2,}(\S.*))?$", line)
        follow = lines[i + 1] if i + 1 < len(lines) else ""
        has_help = bool(own.group(3)) or bool(re.match(r"^ {6,}\S", follow))
        out.append((own.group(1), has_help))
    return out


def sections(text: str) -> dict[str, str]:
    """The ``options:`` / ``positional arguments:`` blocks of a --help page."""
    out, name = {}, None
    for line in text.splitlines():
        if re.match(r"^[a-z][a-z ]+:$", line):
            name = line[:-1]
            out[name] = ""
        elif name and line and not re.match(r"^\S", line):
            out[name] += line + "\n"
        elif not line:
            name = None if name in ("examples",) else name
    return out


def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert re.fullmatch(r"payline \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def test_the_top_level_help_documents_the_exit_codes():
    text = PARSER.format_help()
    assert EXIT_CODES_HELP in text
    for code, meaning in (("0", "done"), ("1", "check found a problem"), ("2", "usage"),
                          ("3", "could not run")):
        assert re.search(rf"^  {code}  .*{meaning}", text, re.M), code


@pytest.mark.parametrize("name", command_names())
def test_every_subcommand_has_a_description_examples_and_help_on_every_option(name):
    sub = PARSER.subcommands[name]
    text = sub.format_help()
    assert sub.description and len(sub.description) > 40, name
    examples = [line.strip() for line in text.split("examples:\n", 1)[1].splitlines()
                if line.strip()]
    assert examples and all(e.startswith(f"payline {name}") for e in examples), examples
    blocks = sections(text)
    listed = help_entries(blocks.get("options", "")) + help_entries(
        blocks.get("positional arguments", ""))
    assert listed, text
    missing = [inv for inv, has in listed if not has]
    assert not missing, f"payline {name}: no help for {missing}"


@pytest.mark.parametrize("name", command_names())
def test_every_example_in_a_help_page_parses(name):
    sub = PARSER.subcommands[name]
    for example in sub.epilog.split("examples:\n", 1)[1].splitlines():
        argv = re.split(r"#|\||&&", example, maxsplit=1)[0].split()[1:]
        assert PARSER.parse_args(argv).command == name, example


def test_conf_and_set_are_taken_after_the_subcommand_too(tmp_path, capsys):
    overlay = tmp_path / "o.toml"
    overlay.write_text("[flink]\nrest_port = 18097\n")
    assert main(["status", "--json", "--conf", str(overlay),
                 "--set", f"paths.run_dir={tmp_path / 'run'}"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["flink"]["web_ui"] == "http://127.0.0.1:18097"
    assert st["archiver"]["log"].startswith(str(tmp_path / "run"))
    # before and after: both apply, in order, the later one wins
    assert main(["--set", "flink.rest_port=18098", "status", "--json",
                 "--set", f"paths.run_dir={tmp_path / 'run'}"]) == 0
    assert json.loads(capsys.readouterr().out)["flink"]["web_ui"].endswith(":18098")
    assert main(["status", "--set", "kafka.port=abc"]) == 2
    err = capsys.readouterr().err
    assert err == "payline status: conf: kafka.port must be an integer in 1..65535, got 'abc'\n"


def test_one_prefix_even_when_the_error_names_its_operation(tmp_path, capsys):
    assert main(["deploy", "fraud", "--set", f"paths.ops_dir={tmp_path}"]) == 3
    assert capsys.readouterr().err == ("payline deploy: no release of fraud; make one with "
                                       "`payline release fraud`\n")


def test_two_different_overlays_are_refused(tmp_path, capsys):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text("")
    b.write_text("")
    assert main(["--conf", str(a), "status", "--conf", str(b)]) == 2
    assert "--conf given twice" in capsys.readouterr().err


def test_a_crash_exits_3_with_its_traceback_and_one_summary_line(monkeypatch, capsys):
    def boom(cfg, args):
        raise RuntimeError("disk on fire")

    parser = build_parser()
    parser.subcommands["down"].set_defaults(run=boom)
    monkeypatch.setattr("payline.cli.build_parser", lambda: parser)
    assert main(["down"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.splitlines()[-1].startswith("payline down: crashed: RuntimeError: disk on fire")


def test_status_check_exits_1_and_says_how_to_start_what_is_down(tmp_path, capsys):
    run = ["--set", f"paths.run_dir={tmp_path}", "--set", "flink.rest_port=18096"]
    assert main(["status", *run]) == 0
    plain = capsys.readouterr().out
    assert main(["status", "--check", *run]) == 1
    out = capsys.readouterr().out
    assert out == plain
    assert "- kafka is stopped: start it with `payline up`" in out
    assert "- flink is stopped: start it with `payline up`" in out
    assert "- the archiver is stopped: start it with `payline archiver start`" in out


def running_stack(jobs: list[dict]) -> dict:
    return {"kafka": {"running": True, "ready": True, "bootstrap": "b:9092", "pids": [4874],
                      "log": "k.log"},
            "flink": {"running": True, "ready": True, "web_ui": "http://ui",
                      "jobmanager_pids": [4901], "taskmanager_pids": [4950, 4951],
                      "taskmanagers": 2, "slots_available": 3, "slots_total": 4,
                      "prometheus_ports": [9249], "jobs": jobs, "logs": "logs",
                      "checkpoints_dir": "cp"},
            "archiver": {"running": True, "pids": [5000], "lake": "lake", "log": "a.log"}}


def a_job(name: str, **over) -> dict:
    return {"name": name, "state": "RUNNING", "id": "j1", "uptime_s": 4000.0, "restarts": 0,
            "records_in_per_s": 25000.0, "records_out_per_s": 10.0,
            "event_time_lag_ms": 28_924_673_000, "pending_records": 1_234_567,
            "last_checkpoint": {"age_s": 3.0, "size_bytes": 2048, "duration_ms": 120},
            "web_ui": "http://ui/#/job", **over}


def test_status_figures_read_as_a_person_reads_them():
    text = status.format_status(running_stack([
        a_job("payline-transactions"), a_job("payline-fraud"),
        *(a_job("payline-fraud", state=s, id=f"old{i}")
          for i, s in enumerate(["CANCELED", "FINISHED", "CANCELED"]))]))
    assert "pid 4874" in text and "[4874]" not in text
    assert "JobManager pid 4901  TaskManager pids 4950, 4951" in text
    # 28 924 673 s behind: days and hours, not "28,924,673.0 s"
    assert "event-time lag 334 d 18 h" in text and "28,924,673" not in text
    assert "pending records 1,234,567" in text
    assert "up 1 h 06 min" in text
    # ended jobs: one line, not one each
    assert "3 ended job(s): 2 CANCELED, 1 FINISHED (`payline status --json` lists them)" in text
    assert "old0" not in text
    assert status.problems(running_stack([a_job("payline-transactions"),
                                          a_job("payline-fraud")])) == []


def test_status_check_names_a_streaming_job_that_is_not_running():
    st = running_stack([a_job("payline-transactions")])
    assert status.problems(st) == [
        "the fraud job is not running: start it with `payline deploy fraud` "
        "(or `payline submit fraud`)"]
    st["flink"]["jobs"][0]["state"] = "RESTARTING"
    assert len(status.problems(st)) == 2


def test_an_unreachable_remote_jobmanager_is_not_shown_as_stopped():
    st = running_stack([])
    st["flink"].update(running=False, ready=False, remote=True, error="flink: no JobManager "
                       "answers at http://jm:8081 within 10 s (timed out); ...")
    text = status.format_status(st)
    assert re.search(r"^flink  unreachable web UI http://ui \(remote\)", text, re.M)
    assert "no JobManager answers at http://jm:8081" in text
    assert status.problems(st) == ["flink is unreachable at http://ui: check --jobmanager / "
                                   "flink.jobmanager, or that cluster"]


def deployments_file(ops):
    rows = [
        {"job": "fraud", "version": "v1", "time_ms": 1796170200000, "action": "deploy",
         "outcome": "running", "job_id": "a1", "from_savepoint": None, "parallelism": None},
        {"job": "transactions", "version": "t1", "time_ms": 1796170260000,
         "action": "deploy", "outcome": "running", "job_id": "t1"},
        {"job": "fraud", "version": "v2", "time_ms": 1796170500000, "action": "upgrade",
         "outcome": "failed", "from_savepoint": "file:/sp/1"},
        {"job": "fraud", "version": "v1", "time_ms": 1796170505000,
         "action": "restore-after-failed-upgrade", "outcome": "running", "job_id": "a2",
         "from_savepoint": "file:/sp/1"},
    ]
    ops.mkdir(parents=True)
    (ops / "deployments.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_releases_shows_a_jobs_history_like_helm_history(tmp_path, capsys):
    deployments_file(tmp_path / "ops")
    ops = ["--set", f"paths.ops_dir={tmp_path / 'ops'}"]
    assert main(["releases", "fraud", "--json", *ops]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["revision"], r["time"], r["status"], r["version"], r["action"]) for r in rows] == [
        (1, "2026-12-02T00:10:00Z", "superseded", "v1", "deploy"),
        (2, "2026-12-02T00:15:00Z", "failed", "v2", "upgrade"),
        (3, "2026-12-02T00:15:05Z", "deployed", "v1", "restore-after-failed-upgrade"),
    ]
    assert main(["releases", "fraud", *ops]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["REVISION", "UPDATED", "STATUS", "VERSION", "ACTION", "FROM",
                                "SAVEPOINT"]
    assert lines[3].split() == ["3", "2026-12-02T00:15:05Z", "deployed", "v1",
                                "restore-after-failed-upgrade", "file:/sp/1"]
    assert main(["releases", "transactions", *ops, "--set",
                 f"paths.ops_dir={tmp_path / 'none'}"]) == 0
    assert capsys.readouterr().out == "transactions was never deployed\n"
    assert history.history(config_of(tmp_path), "fraud")[0]["job_id"] == "a1"


def config_of(tmp_path):
    return config.load(None, [f"paths.ops_dir={tmp_path / 'ops'}"])


def test_savepoints_lists_iso_times_and_json(tmp_path, capsys):
    ops = tmp_path / "ops"
    ops.mkdir()
    rec = {"job": "fraud", "version": "v1", "reason": "upgrade", "size_bytes": 12345,
           "path": "file:/sp/a", "deployment": "fraud-1", "time_ms": 1796170200000}
    (ops / "savepoints.jsonl").write_text(json.dumps(rec) + "\n")
    assert main(["savepoints", "fraud", "--set", f"paths.ops_dir={ops}"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("2026-12-02T00:10:00Z  v1") and "12,345 B  file:/sp/a" in line
    assert main(["savepoints", "fraud", "--json", "--set", f"paths.ops_dir={ops}"]) == 0
    (got,) = json.loads(capsys.readouterr().out)
    assert got["time"] == "2026-12-02T00:10:00Z" and got["path"] == "file:/sp/a"


@pytest.mark.parametrize("ms, iso, for_path", [
    (0, "1970-01-01T00:00:00Z", "1970-01-01T00-00-00Z"),
    (1796170200000, "2026-12-02T00:10:00Z", "2026-12-02T00-10-00Z"),
    (1796170259999, "2026-12-02T00:10:59Z", "2026-12-02T00-10-59Z"),
])
def test_iso_times(ms, iso, for_path):
    assert times.iso(ms) == iso and times.iso_for_path(ms) == for_path
    assert times.from_path(for_path) == ms // 1000 * 1000
    assert times.from_path(str(ms)) == ms  # a folder named before the names were ISO


def test_an_interval_names_a_folder():
    assert times.interval_for_path(1796170200000, 1796170500000) == \
        "2026-12-02T00-10-00Z_2026-12-02T00-15-00Z"


@pytest.mark.parametrize("seconds, text", [
    (0, "0.0 s"), (12.34, "12.3 s"), (59.9, "59.9 s"), (60, "1 min 00 s"), (245, "4 min 05 s"),
    (3600, "1 h 00 min"), (11_520, "3 h 12 min"), (86_400, "1 d 0 h"),
    (28_924_673, "334 d 18 h"),
])
def test_durations(seconds, text):
    assert times.duration(seconds) == text


def test_interval_is_half_open_iso():
    assert times.interval(1796170200000, 1796170500000) == \
        "[2026-12-02T00:10:00Z, 2026-12-02T00:15:00Z)"


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_one_line_in_place_and_erases_it():
    term = Terminal()
    progress.show_on(term)
    try:
        progress.phase("kafka: starting the broker")
        progress.waiting("the broker at 127.0.0.1:9092 to answer", 0.0)
        progress.step(2, 7, "classifying the window aggregates")
        progress.clear()
    finally:
        progress.show_on(None)
    text = term.getvalue()
    assert text.count("\r\x1b[K") == 4 and "\n" not in text
    assert "kafka: starting the broker: waiting for the broker at 127.0.0.1:9092 to answer" \
        in text
    assert "kafka: starting the broker [2/7] classifying the window aggregates" in text
    assert text.endswith("\r\x1b[K")


def test_output_lines_erase_the_progress_line_first():
    term = Terminal()
    progress.show_on(term)
    try:
        out = progress.Guarded(term)
        progress.phase("kafka: starting the broker")
        out.write("kafka: up at 127.0.0.1:9092\n")
    finally:
        progress.show_on(None)
    assert term.getvalue().endswith("kafka: starting the broker\r\x1b[Kkafka: up at "
                                    "127.0.0.1:9092\n")


def test_piped_output_gets_no_progress_line(tmp_path, capsys):
    assert main(["status", "--set", f"paths.run_dir={tmp_path}"]) == 0
    assert capsys.readouterr().err == ""
