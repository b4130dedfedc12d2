"""`payline init` writes an overlay that changes nothing until edited, and refuses to overwrite;
outside a checkout the configuration comes from the defaults the code carries, the overlay
from ./payline.toml (or --conf/PAYLINE_CONF), and relative paths resolve against the project
directory.

"Outside a checkout" is run for real: the code as a bundle's zip (the defaults inside it, no
conf/ next to it), imported by a Python without site-packages in a directory of the test's own.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from payline.cli import main
from payline.cli.args import passed_on
from payline.cli.init_cmd import overlay_text
from payline.release import bundle
from runtime import config
from runtime.settings import SECTIONS


def init(*args: str) -> int:
    return main(["init", *args])


def uncommented(overlay: str) -> str:
    """The overlay with every commented-out key of its section put back, as a user would."""
    out, section = [], None
    for line in overlay.splitlines():
        header = re.match(r"^\[(\w+)\]", line)
        section = header.group(1) if header else section
        key = re.match(r"^# (\w+) = ", line)
        if section and key and key.group(1) in {f.name for f in fields(SECTIONS[section])}:
            line = line[2:]
        out.append(line)
    return "\n".join(out) + "\n"


def test_init_writes_an_overlay_that_loads_and_changes_nothing(tmp_path: Path, capsys):
    assert init("--dir", str(tmp_path)) == 0
    written = tmp_path / "payline.toml"
    out = capsys.readouterr().out
    assert f"wrote {written}" in out
    # in a checkout ./payline.toml is not read by itself: the next command names it
    assert f"next: payline --conf {written} up" in out
    text = written.read_text()
    assert tomllib.loads(text) == {name: {} for name in SECTIONS}  # every section, no key
    assert config.load(written) == config.load()


def test_the_overlay_holds_every_key_with_its_default_value(tmp_path: Path):
    assert init("--dir", str(tmp_path)) == 0
    text = (tmp_path / "payline.toml").read_text()
    # uncommenting every key gives the defaults back, value for value
    assert tomllib.loads(uncommented(text)) == tomllib.loads(config.defaults_text())
    # the defaults' comments come along, line for line; their own header (before the first
    # section) does not
    defaults = config.defaults_text().splitlines()
    first = next(i for i, line in enumerate(defaults) if line.startswith("["))
    comments = [line for line in defaults[first:] if line.lstrip().startswith("#")]
    assert comments and all(line in text.splitlines() for line in comments)
    assert not any(line in text.splitlines() for line in defaults[:first] if line.strip())


def test_a_value_spanning_lines_is_commented_out_whole():
    defaults = '# header\n[contract]\ncurrencies = [\n  "USD",\n  "EUR",\n]\n\n[ops]\nx = 1\n'
    text = overlay_text(defaults)
    assert tomllib.loads(text) == {"contract": {}, "ops": {}}
    assert '#   "EUR",' in text and "# ]" in text and "# header" not in text


def test_init_refuses_to_overwrite_without_force(tmp_path: Path, capsys):
    target = tmp_path / "payline.toml"
    target.write_text('[kafka]\nport = 19092\n')
    assert init("--dir", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err == f"payline init: {target} exists; give --force to overwrite it\n"
    assert target.read_text() == '[kafka]\nport = 19092\n'
    assert init("--dir", str(tmp_path), "--force") == 0
    assert config.load(target) == config.load()


def test_init_makes_the_directory_and_needs_no_loadable_configuration(
        tmp_path: Path, monkeypatch):
    broken = tmp_path / "broken.toml"
    broken.write_text("[kafka\n")
    monkeypatch.setenv("PAYLINE_CONF", str(broken))
    assert main(["status"]) == 2  # any other command stops at the broken file
    assert init("--dir", str(tmp_path / "new" / "project")) == 0
    assert (tmp_path / "new" / "project" / "payline.toml").is_file()


# --- outside a checkout ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def code_zip(tmp_path_factory) -> Path:
    return bundle.build(tmp_path_factory.mktemp("code") / "bundle.zip")


def load_outside(code_zip: Path, cwd: Path, conf: Path | None = None, **env: str) -> dict:
    """``config.load`` run from ``code_zip`` in ``cwd``: the root, the defaults' source and a
    few values, as JSON."""
    script = (
        "import json, sys; from runtime import config\n"
        "cfg = config.load(sys.argv[1] or None)\n"
        "print(json.dumps({'module': config.__file__, 'checkout': str(config.CHECKOUT),\n"
        "  'root': str(cfg.root), 'run_dir': str(cfg.paths.run_dir),\n"
        "  'data_dir': str(cfg.paths.data_dir), 'jars_dir': str(cfg.kafka.jars_dir),\n"
        "  'port': cfg.kafka.port}))\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PAYLINE_")}
    proc = subprocess.run([sys.executable, "-S", "-c", script, str(conf or "")], cwd=cwd,
                          env={**clean, "PYTHONPATH": str(code_zip), **env},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def project(path: Path, port: int, run_dir: str) -> Path:
    """A project directory with an overlay as `payline init` writes it, two keys edited."""
    path.mkdir(parents=True)
    text = overlay_text(config.defaults_text())
    text = text.replace("# port = 9092", f"port = {port}", 1)
    text = text.replace('# run_dir = "run"', f'run_dir = "{run_dir}"', 1)
    (path / "payline.toml").write_text(text)
    return path


def test_outside_a_checkout_the_local_overlay_is_read_and_paths_resolve_next_to_it(
        code_zip: Path, tmp_path: Path):
    proj = project(tmp_path / "proj", 19999, "state/run")
    got = load_outside(code_zip, proj)
    assert got["module"].startswith(str(code_zip))  # not the checkout's code
    assert got["checkout"] == "None"
    assert got["root"] == str(proj)
    assert got["port"] == 19999
    assert got["run_dir"] == str(proj / "state" / "run")
    assert got["data_dir"] == str(proj / "data")
    assert got["jars_dir"] == str(proj / "infra" / "kafka" / "target" / "lib")


def test_outside_a_checkout_without_an_overlay_the_defaults_apply_in_the_current_directory(
        code_zip: Path, tmp_path: Path):
    got = load_outside(code_zip, tmp_path)
    assert (got["root"], got["port"]) == (str(tmp_path), 9092)
    assert got["run_dir"] == str(tmp_path / "run")


def test_conf_or_payline_conf_take_the_place_of_the_local_overlay(code_zip: Path,
                                                                  tmp_path: Path):
    proj = project(tmp_path / "proj", 19999, "state/run")
    other = tmp_path / "other.toml"
    other.write_text("[kafka]\nport = 18888\n")
    for got in (load_outside(code_zip, proj, conf=other),
                load_outside(code_zip, proj, PAYLINE_CONF=str(other))):
        assert got["port"] == 18888
        # one overlay only: the local one's run_dir is not read; paths stay in the project
        assert got["run_dir"] == str(proj / "run")


def test_in_a_checkout_a_payline_toml_in_the_current_directory_is_not_read(
        tmp_path: Path, monkeypatch):
    project(tmp_path / "proj", 19999, "state/run")
    monkeypatch.chdir(tmp_path / "proj")
    monkeypatch.delenv("PAYLINE_CONF", raising=False)
    cfg = config.load()
    assert cfg.kafka.port == 9092
    assert cfg.root == config.CHECKOUT


def test_a_process_started_on_a_calls_behalf_gets_its_overlay_by_name(tmp_path: Path,
                                                                      monkeypatch):
    """A job's or the archiver's process (a release's client runs in its own tree) reads the
    overlay this call read, however it was found."""
    overlay = tmp_path / "payline.toml"
    monkeypatch.setenv("PAYLINE_CONF", str(overlay))
    args = argparse.Namespace(conf=None, set=["kafka.port=19092"])
    assert passed_on(args) == ["--conf", str(overlay), "--set", "kafka.port=19092"]
    monkeypatch.delenv("PAYLINE_CONF")
    assert passed_on(args) == ["--set", "kafka.port=19092"]
