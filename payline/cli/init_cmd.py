"""`payline init`: a project's own configuration file, ``payline.toml``, to edit.

It is an overlay of the defaults (:func:`runtime.config.defaults_text`: a checkout's
``conf/payline.toml``, or the copy an installed payline carries) with every section present and
every key commented out with its default value and comments: valid TOML as written, changing
nothing until a key is uncommented. Outside a checkout payline reads it from the current
directory, and relative paths resolve there.
"""

from __future__ import annotations

import re
from pathlib import Path

from payline.cli.args import command
from runtime import config
from runtime.errors import UsageError
from runtime.settings import SECTIONS

HEADER = """\
# payline: this project's configuration, merged over the defaults of the installed payline.
# Every key is below, commented out with its default value: uncomment a key and change it.
# Outside a checkout, payline reads this file from the current directory (unless --conf FILE or
# $PAYLINE_CONF names another), and relative paths (run_dir, data_dir, jars_dir, ...) resolve
# against that directory. `--set section.key=value` overrides a key for one call.
"""
SECTION = re.compile(r"^\[(" + "|".join(map(re.escape, SECTIONS)) + r")\]\s*(#.*)?$")


def overlay_text(defaults: str) -> str:
    """The overlay of ``defaults``: its section headers and comments as they are, every other
    line (a key, or a value's continuation) commented out. The defaults' own header, before
    the first section, is replaced by :data:`HEADER`."""
    lines = defaults.splitlines()
    first = next((i for i, line in enumerate(lines) if SECTION.match(line)), len(lines))
    body = [line if not line.strip() or line.lstrip().startswith("#") or SECTION.match(line)
            else f"# {line}" for line in lines[first:]]
    return HEADER + "\n" + "\n".join(body) + "\n"


def register(sub) -> None:
    p = command(sub, "init", "write a payline.toml to edit: this project's configuration",
                "Write payline.toml, an overlay of the defaults with every key commented out "
                "with its default\nvalue: it changes nothing until you uncomment a key. "
                "Outside a checkout, payline reads it from\nthe current directory, and the "
                "stack's files (run/, data/, reports/, ops/, checkpoints/, the\nfetched jars) "
                "land in that directory. An existing file is kept unless --force is given.",
                ["payline init", "payline init --dir ~/payments && cd ~/payments",
                 "payline init --force   # start over from the defaults"])
    p.add_argument("--dir", metavar="DIR", type=Path, default=Path("."),
                   help="the project directory to write payline.toml in, made if missing "
                        "(default: the current directory)")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing payline.toml")
    p.set_defaults(run=cmd_init, needs_config=False)


def next_command(target: Path) -> str:
    """What to run next, from the current directory."""
    if config.CHECKOUT is not None:  # a checkout reads no ./payline.toml by itself
        return f"payline --conf {target} up"
    here = target.parent == Path.cwd().resolve()
    return "payline up" if here else f"cd {target.parent} && payline up"


def cmd_init(cfg, args) -> int:
    target = (args.dir / config.LOCAL_OVERLAY).resolve()
    if target.is_dir():
        raise UsageError(f"payline init: {target} is a directory")
    if target.exists() and not args.force:
        raise UsageError(f"payline init: {target} exists; give --force to overwrite it")
    text = overlay_text(config.defaults_text())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(f"wrote {target}: every key commented out with its default; uncomment what you "
          f"change")
    print(f"next: {next_command(target)}")
    return 0
