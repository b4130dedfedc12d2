"""The README's commands are real: its quick start is the Makefile's targets, and every
`payline` line in it parses with the real argument parser."""

import re
import shlex
from pathlib import Path

import pytest

from payline.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SH_BLOCKS = re.findall(r"```sh\n(.*?)```", README, re.S)


def _commands():
    for block in SH_BLOCKS:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line:
                yield line


def test_quick_start_is_exactly_two_make_targets_that_exist():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    block = re.search(r"```sh\n(.*?)```", quick, re.S).group(1)
    commands = [ln.split("#", 1)[0].strip() for ln in block.splitlines() if ln.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nmake test\n" in ci


@pytest.mark.parametrize("line", [c for c in _commands() if c.startswith(".venv/bin/payline")])
def test_payline_command_in_readme_parses(line):
    build_parser().parse_args(shlex.split(line)[1:])


def test_files_named_in_readme_exist():
    for path in ("conf/payline.toml", "conf/flink/config.yaml", "infra/flink/pom.xml",
                 "tests/integration/flink_jobs/copy_topic.py"):
        assert path in README
        assert (ROOT / path).exists(), path
