"""The README and docs/ stay true to the code: the README stays short and starts with the two
commands; every `payline` command in their shell blocks parses with the real parser; the
configuration reference is generated from conf/payline.toml's comments and documents every
key; every relative link and every docs/ citation in the code resolves; the contract page names
what the code defines (error classes, fields, rules, reconciliation classes, outputs); and no
page says that something is unbuilt."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest

from jobs.archiver import SCHEMA as RAW_LOG_SCHEMA
from payline.cli import build_parser
from udfs import contract, fraud, reconcile, semantics

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
CONTRACT_PAGE = ROOT / "docs" / "contract.md"
TOML = ROOT / "conf" / "payline.toml"
MAX_README_LINES = 200


def _load_generator():
    """docs/gen_config_reference.py is a script, not a package module: loaded from its file."""
    spec = importlib.util.spec_from_file_location("gen_config_reference",
                                                  ROOT / "docs" / "gen_config_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- Markdown, read the way GitHub renders it -------------------------------------------------

FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```[ \t]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(text: str) -> str:
    """The page without its code blocks (their lines kept empty, so line numbers hold)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but - and _ dropped, spaces to -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, title in HEADING.findall(prose(path.read_text())):
        s = slug(title)
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def section(path: Path, anchor: str) -> str:
    """The text under the heading with this anchor, up to the next heading of its level or
    higher."""
    text = path.read_text()
    headings = list(HEADING.finditer(text))
    for i, m in enumerate(headings):
        if slug(m.group(2)) == anchor:
            level = len(m.group(1))
            end = next((h.start() for h in headings[i + 1:] if len(h.group(1)) <= level),
                       len(text))
            return text[m.end():end]
    raise AssertionError(f"{rel(path)} has no section #{anchor}")


# --- the README ---------------------------------------------------------------------------------


def test_readme_is_at_most_200_lines():
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move detail into docs/"


def test_quick_start_is_exactly_two_make_targets_that_exist():
    quick = section(README, "quick-start")
    block = FENCE.search(quick).group(2)
    commands = [ln.split("#", 1)[0].strip() for ln in block.splitlines() if ln.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nmake test\n" in ci


def test_the_two_commands_come_before_everything_but_the_introduction():
    titles = [slug(t) for level, t in HEADING.findall(prose(README.read_text())) if level == "##"]
    assert titles[0] == "quick-start", titles


def test_readme_links_every_docs_page():
    linked = {(README.parent / t.split("#")[0]).resolve()
              for t in LINK.findall(prose(INLINE_CODE.sub("", README.read_text())))}
    missing = [rel(p) for p in DOCS if p.name != "README.md" and p.resolve() not in linked]
    assert not missing, f"README.md links none of {missing}"


# --- commands -----------------------------------------------------------------------------------

# placeholders a page may use where a command takes a value
PLACEHOLDERS = {"JOB": "fraud", "PATH": "/tmp/savepoint", "FILE": "overlay.toml",
                "HOST:PORT": "localhost:8081", "N": "2", "VERSION": "1.0.0"}
SEPARATORS = {"&&", "||", "|", ";"}
REDIRECTS = (">", ">>", "2>", "<")


def shell_lines(path: Path):
    for lang, body in FENCE.findall(path.read_text()):
        if lang in ("sh", "bash", "shell"):
            yield from (ln for ln in body.replace("\\\n", " ").splitlines() if ln.strip())


def payline_commands(line: str) -> list[list[str]]:
    """The argument lists of every `payline` call on a shell line (after `&&`, `|`, ...,
    environment assignments and a path before the program name)."""
    tokens = shlex.split(line, comments=True)
    calls, current = [], []
    for tok in [*tokens, ";"]:
        if tok in SEPARATORS:
            while current and re.match(r"^[A-Z_][A-Z0-9_]*=", current[0]):
                current = current[1:]
            if current and Path(current[0]).name == "payline":
                args = current[1:]
                cut = next((i for i, a in enumerate(args) if a.startswith(REDIRECTS)), None)
                calls.append([PLACEHOLDERS.get(a, a) for a in args[:cut]])
            current = []
        else:
            current.append(tok)
    return calls


COMMANDS = [(rel(p), line, args) for p in PAGES for line in shell_lines(p)
            for args in payline_commands(line)]


def test_the_pages_hold_payline_commands_at_all():
    # the extraction itself must find them; an empty parametrisation would test nothing
    assert len(COMMANDS) > 40
    assert ["status", "--check"] in [args for _, _, args in COMMANDS]


@pytest.mark.parametrize("page, line, args", COMMANDS,
                         ids=[f"{p}: {' '.join(a)}" for p, _, a in COMMANDS])
def test_payline_command_in_the_docs_parses(page, line, args, capsys):
    try:
        build_parser().parse_args(args)
    except SystemExit as exc:  # --help, --version: printed, and a clean exit
        assert exc.code == 0, f"{page}: {line}"
        assert capsys.readouterr().out.strip()


# --- the configuration reference ----------------------------------------------------------------


def test_configuration_page_is_generated_from_the_toml():
    page = (ROOT / "docs" / "configuration.md").read_text()
    expected = gen.page_with(gen.render(TOML.read_text()), page)
    assert page == expected, f"docs/configuration.md is stale: run {gen.REGENERATE}"


def test_every_key_of_the_toml_has_a_comment():
    _, sections = gen.parse(TOML.read_text())
    missing = gen.undocumented(sections)
    assert not missing, f"conf/payline.toml: give these keys a comment: {', '.join(missing)}"


def test_every_key_of_the_toml_is_in_the_configuration_page():
    page = (ROOT / "docs" / "configuration.md").read_text()
    data = tomllib.loads(TOML.read_text())
    missing = [f"{s}.{k}" for s, keys in data.items() for k in keys if f"`{s}.{k}`" not in page]
    assert not missing, missing


def test_the_generator_reads_blocks_inline_comments_continuations_and_notes():
    text = """# the file's intro

[s]
# over both
a = 1
b = "x # not a comment"  # b's own
c = 2  # c's own
       # and its next line

# a note

[t]
d = 3
"""
    preamble, sections = gen.parse(text)
    assert preamble == [["the file's intro"]]
    s, t = sections
    group, note = s.items[0], s.items[1]
    assert group.comment == ["over both"]
    assert [(k.name, k.value, k.comment) for k in group.keys] == [
        ("a", "1", []), ("b", '"x # not a comment"', ["b's own"]),
        ("c", "2", ["c's own", "and its next line"])]
    assert note == ["a note"]
    assert gen.undocumented(sections) == ["t.d"]
    rendered = gen.render(text)
    assert "| `s.c` | `2` | c's own and its next line |" in rendered
    assert "| `s.a` | `1` | (see above) |" in rendered and "\nover both\n" in rendered


# --- links and citations ------------------------------------------------------------------------

EXTERNAL = ("http://", "https://", "mailto:")


def relative_links(path: Path) -> list[str]:
    return [t for t in LINK.findall(prose(INLINE_CODE.sub("", path.read_text())))
            if not t.startswith(EXTERNAL)]


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_relative_link_resolves(page: Path):
    bad = []
    for target in relative_links(page):
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading with that anchor")
    assert not bad, f"{rel(page)}: " + "; ".join(bad)


SKIP_DIRS = {".venv", ".git", "run", "data", "reports", "ops", "checkpoints", "build", "dist",
             "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis"}
SOURCE_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".java", ".properties", ".xml"}


def sources() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*") if p.suffix in SOURCE_SUFFIXES and p.is_file()
                  and not SKIP_DIRS.intersection(p.relative_to(ROOT).parts)
                  and not any(part.endswith(".egg-info") for part in p.parts))


DOC_CITATION = re.compile(r"docs/([\w-]+\.md)(?:#([\w-]+))?")


def test_every_docs_citation_in_the_code_and_pages_resolves():
    bad = []
    for path in sources():
        for page, anchor in DOC_CITATION.findall(path.read_text(errors="replace")):
            target = ROOT / "docs" / page
            if not target.exists():
                bad.append(f"{rel(path)}: docs/{page} does not exist")
            elif anchor and anchor not in anchors(target):
                bad.append(f"{rel(path)}: docs/{page}#{anchor} has no such heading")
    assert not bad, "\n".join(bad)


# the contract file outside the clone, and its section sign (spelled so that this file does
# not hold them itself)
OUTSIDE_CONTRACT = ("CONTRACT" + ".md", "\u00a7")


def test_nothing_cites_a_contract_outside_the_repository():
    found = [f"{rel(p)}:{n}" for p in sources()
             for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
             if any(s in line for s in OUTSIDE_CONTRACT)]
    assert not found, f"cite docs/contract.md#<section> instead: {found}"


PATH_TOKEN = re.compile(r"`((?:conf|infra|jobs|udfs|runtime|payline|tests|bench|docs)/[^`\s]*)`")


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_files_the_pages_name_exist(page: Path):
    named = [p.split("#")[0] for p in PATH_TOKEN.findall(page.read_text())]
    missing = [p for p in named
               if not re.search(r"[*<>]|/target(/|$)", p) and not (ROOT / p).exists()]
    assert not missing, f"{rel(page)} names files that do not exist: {missing}"


# --- no page claims that something is unbuilt ---------------------------------------------------

UNBUILT = [re.compile(p, re.I) for p in (
    r"\bnot built\b", r"\bnot yet\b", r"\bwill wrap\b", r"\btracked in\b", r"\bissues? \d+",
    r"\bsessions? \d+", r"\bcoming soon\b", r"\bnot implemented\b", r"\bis planned\b",
    r"\bwill be (?:added|built|implemented|supported)\b", r"\bopen issues?\b",
    r"\bwork in progress\b")] + [re.compile(r"\bTODO\b|\bFIXME\b|\bTBD\b")]


@pytest.mark.parametrize("page", [*PAGES, TOML], ids=rel)
def test_no_page_claims_something_is_unbuilt(page: Path):
    found = [f"line {n}: {m.group(0)!r}" for n, line in enumerate(page.read_text().splitlines(), 1)
             for pattern in UNBUILT for m in [pattern.search(line)] if m]
    assert not found, f"{rel(page)}: " + "; ".join(found)


# --- the contract page names what the code defines ----------------------------------------------

CONTRACT_SECTIONS = ("topics", "fields", "account-profiles", "validation", "deduplication",
                     "error-classes", "event-time", "outputs", "aggregates", "late-transactions",
                     "dlq", "alerts", "rules", "raw-log", "reconciliation-classes")


def table_row(text: str, name: str) -> str:
    """The Markdown table row that starts with `name`."""
    m = re.search(rf"^\| `{re.escape(name)}`.*$", text, re.M)
    assert m, f"no table row for `{name}`"
    return m.group(0)


def first_positions(text: str, names) -> list[int]:
    positions = [text.find(f"`{n}`") for n in names]
    assert -1 not in positions, [n for n, p in zip(names, positions, strict=True) if p < 0]
    return positions


def test_the_contract_page_has_every_section_the_code_cites():
    assert set(CONTRACT_SECTIONS) <= anchors(CONTRACT_PAGE)


def test_the_contract_page_names_every_topic_with_its_default_name():
    topics = section(CONTRACT_PAGE, "topics")
    for key, name in tomllib.loads(TOML.read_text())["topics"].items():
        assert f"`{name}` (`{key}`)" in topics, key


def test_the_contract_page_lists_the_fields_and_their_allowed_values_in_order():
    fields = section(CONTRACT_PAGE, "fields")
    rows = first_positions(fields, contract.FIELD_NAMES)
    assert rows == sorted(rows), "the fields' table order is the validation order"
    for value in (*contract.KINDS, *contract.CHANNELS):
        assert f"`{value}`" in fields, value
    assert " ".join(contract.DEFAULT_CURRENCIES) in fields
    profiles = section(CONTRACT_PAGE, "account-profiles")
    for name, _ in contract.PROFILE_FIELDS:
        assert f'"{name}"' in profiles, name
    for tier in contract.RISK_TIERS:
        assert f"`{tier}`" in profiles, tier


def test_the_contract_page_gives_every_error_class_in_validation_order():
    steps = section(CONTRACT_PAGE, "validation")
    positions = first_positions(steps, contract.ERROR_CLASSES)
    assert positions == sorted(positions), "the steps run in the order of ERROR_CLASSES"
    classes = section(CONTRACT_PAGE, "error-classes")
    for n, name in enumerate(contract.ERROR_CLASSES, 1):
        assert f"| {n} |" in table_row(classes, name), f"{name} is step {n}"


def test_the_contract_page_names_every_event_time_key():
    event_time = section(CONTRACT_PAGE, "event-time")
    for key in tomllib.loads(TOML.read_text())["event_time"]:
        assert f"`event_time.{key}`" in event_time, key


def test_the_contract_page_lists_the_fields_of_every_output():
    txn = {name: 1 for name in contract.FIELD_NAMES} | {"event_time_ms": 1_767_225_600_000}
    outputs = {
        "aggregates": semantics.AGGREGATE_FIELDS,
        "late-transactions": [k for k in json.loads(semantics.late_record(txn, 0, 60_000))
                              if k not in contract.FIELD_NAMES],
        "dlq": list(json.loads(semantics.dlq_record("MALFORMED", "e", b"x", "t", 0, 0, 0))),
        "alerts": fraud.ALERT_FIELDS,
        "raw-log": RAW_LOG_SCHEMA.names,
    }
    for anchor, names in outputs.items():
        text = section(CONTRACT_PAGE, anchor)
        missing = [n for n in names if not re.search(rf"\b{re.escape(n)}\b", text)]
        assert not missing, f"#{anchor} lacks {missing}"


def test_the_contract_page_gives_every_rule_with_its_severity():
    rules = section(CONTRACT_PAGE, "rules")
    for rule in fraud.RULES:
        assert f"| {fraud.SEVERITY[rule]} |" in table_row(rules, rule), rule


def test_the_contract_page_gives_every_reconciliation_class_and_whether_it_is_explained():
    classes = section(CONTRACT_PAGE, "reconciliation-classes")
    for name in reconcile.CLASSES:
        explained = "| **no** |" not in table_row(classes, name)
        assert explained == (name not in reconcile.UNEXPLAINED), name
