"""One configuration path: the defaults -> one overlay file -> --set overrides -> frozen
dataclasses. Environment variables only for the overlay file (PAYLINE_CONF) and endpoints
(PAYLINE_KAFKA_BOOTSTRAP, PAYLINE_FLINK_REST).

Where things are:

* In a checkout (the code sits next to ``conf/payline.toml``), the defaults are that file, the
  overlay is ``--conf FILE`` or PAYLINE_CONF, and relative paths are relative to the checkout.
* Anywhere else (an installed wheel; a bundle's zip on a cluster) the defaults are the copy the
  code carries, ``runtime/defaults.toml`` (the wheel's package data; the bundle's entry), the
  overlay is ``--conf FILE``, PAYLINE_CONF or ``./payline.toml`` (what `payline init` writes),
  and relative paths are relative to the project directory: the current directory, the one that
  holds ``./payline.toml``.

Every bad value raises ConfigError with one line that names the key, e.g.
``conf: kafka.port must be an integer in 1..65535, got 'abc'``.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from runtime.errors import PaylineError
from runtime.settings import SECTIONS, Config, Security

# the folder holding the packages udfs/, runtime/ and jobs/: a checkout, site-packages, or a zip
CODE_ROOT = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = Path("conf") / "payline.toml"
# the checkout the code runs from, if any (a release's tree counts: it holds its own defaults)
CHECKOUT: Path | None = CODE_ROOT if (CODE_ROOT / DEFAULTS_FILE).is_file() else None
# the defaults as the code carries them: a wheel's package data, a bundle's entry
# (payline/release/bundle.py); the wheel's copy is made by setup.py from conf/payline.toml
DEFAULTS_IN_ZIP = "runtime/defaults.toml"
# the overlay read from the current directory outside a checkout (`payline init` writes it)
LOCAL_OVERLAY = "payline.toml"


def project_dir() -> Path:
    """What relative paths of the configuration are relative to: the checkout, else the
    current directory (the one holding the local overlay)."""
    return CHECKOUT or Path.cwd()


class ConfigError(PaylineError, ValueError):
    """A bad configuration value; str(error) is the one-line message for the user."""


# --- loading -----------------------------------------------------------------------------------


def _coerce(key: str, raw: Any, meta: dict, root: Path) -> Any:
    kind = meta["kind"]
    if kind == "int":
        if isinstance(raw, str):
            try:
                raw = int(raw.replace("_", ""))
            except ValueError:
                pass
        lo, hi = meta["lo"], meta["hi"]
        ok = isinstance(raw, int) and not isinstance(raw, bool)
        if not ok or (lo is not None and raw < lo) or (hi is not None and raw > hi):
            rng = f" in {lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
            raise ConfigError(f"conf: {key} must be an integer{rng}, got {raw!r}")
        return raw
    if kind == "float":
        if isinstance(raw, str):
            try:
                raw = float(raw)
            except ValueError:
                pass
        ok = isinstance(raw, (int, float)) and not isinstance(raw, bool)
        if not ok or not (meta["lo"] <= raw <= meta["hi"]):
            raise ConfigError(
                f"conf: {key} must be a number in {meta['lo']}..{meta['hi']}, got {raw!r}"
            )
        return float(raw)
    if kind == "str":
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"conf: {key} must be a non-empty string, got {raw!r}")
        if meta["choices"] and raw not in meta["choices"]:
            raise ConfigError(
                f"conf: {key} must be one of {', '.join(meta['choices'])}, got {raw!r}"
            )
        return raw
    if kind == "path":
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"conf: {key} must be a path string, got {raw!r}")
        p = Path(raw)
        return p if p.is_absolute() else root / p
    if kind == "address":
        return parse_address(key, raw)
    if kind == "bool":
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            raw = raw.lower() == "true"
        if not isinstance(raw, bool):
            raise ConfigError(f"conf: {key} must be true or false, got {raw!r}")
        return raw
    if kind == "str_list":
        if isinstance(raw, str):
            raw = [s for s in raw.replace(",", " ").split() if s]
        if not isinstance(raw, list) or not raw or not all(isinstance(s, str) and s for s in raw):
            raise ConfigError(f"conf: {key} must be a non-empty list of strings, got {raw!r}")
        return tuple(raw)
    raise AssertionError(kind)


def parse_address(name: str, raw: Any) -> str:
    """'' or 'host:port' (a port in 1..65535), else ConfigError naming ``name``."""
    if raw == "":
        return raw
    host, sep, port = raw.rpartition(":") if isinstance(raw, str) else ("", "", "")
    if (not sep or not host or "/" in raw or any(c.isspace() for c in raw)
            or not port.isdigit() or not 1 <= int(port) <= 65535):
        raise ConfigError(f"conf: {name} must be host:port (port 1..65535) or empty, "
                          f"got {raw!r}")
    return raw


def shipped_defaults() -> str | None:
    """The defaults the code carries (``runtime/defaults.toml``), if it carries them."""
    entry = importlib.resources.files("runtime").joinpath(DEFAULTS_IN_ZIP.split("/", 1)[1])
    return entry.read_text() if entry.is_file() else None


def _defaults_file(tree: Path | None) -> Path | None:
    """``tree``'s (default: the checkout's) ``conf/payline.toml``; None where there is none."""
    tree = tree or CHECKOUT
    return tree / DEFAULTS_FILE if tree is not None and (tree / DEFAULTS_FILE).is_file() else None


def defaults_text(tree: Path | None = None) -> str:
    """The default configuration as written, comments and all: ``tree``'s
    ``conf/payline.toml`` (default: the checkout's), else the copy the code carries."""
    file = _defaults_file(tree)
    if file is not None:
        return file.read_text()
    shipped = shipped_defaults()
    if shipped is None:
        raise ConfigError(f"conf: file not found: {(tree or Path.cwd()) / DEFAULTS_FILE}")
    return shipped


def overlay_file(conf_file: str | Path | None = None) -> Path | None:
    """The one overlay: ``--conf FILE``, else PAYLINE_CONF, else (outside a checkout)
    ``./payline.toml`` if there is one."""
    given = conf_file or os.environ.get("PAYLINE_CONF")
    if given:
        return Path(given)
    local = Path(LOCAL_OVERLAY)
    return local.resolve() if CHECKOUT is None and local.is_file() else None


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"conf: file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"conf: {path} is not valid TOML: {exc}") from None


def _merge(base: dict, overlay: dict, where: str) -> None:
    for section, values in overlay.items():
        if section not in SECTIONS:
            raise ConfigError(f"conf: unknown section '{section}' in {where}")
        if not isinstance(values, dict):
            raise ConfigError(f"conf: '{section}' in {where} must be a table")
        base.setdefault(section, {}).update(values)


def parse_override(text: str) -> tuple[str, str, str]:
    """'section.key=value' -> (section, key, value); a malformed one raises ConfigError."""
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ConfigError(f"--set: expected section.key=value, got {text!r}")
    return section, key.strip(), value.strip()


def load(
    conf_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    root: Path | None = None,
) -> Config:
    """Load the defaults, merge the overlay file and --set overrides, validate all. ``root``:
    a tree of its own (its ``conf/payline.toml`` the defaults, relative paths relative to it);
    default: the checkout, or outside one the project directory with the shipped defaults."""
    where = _defaults_file(root) or DEFAULTS_IN_ZIP
    try:
        data = tomllib.loads(defaults_text(root))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"conf: {where} is not valid TOML: {exc}") from None
    root = root or project_dir()
    overlay = overlay_file(conf_file)
    if overlay:
        _merge(data, _read_toml(overlay), str(overlay))
    for text in overrides:
        section, key, value = parse_override(text)
        _merge(data, {section: {key: value}}, "--set")
    sections = {}
    for name, cls in SECTIONS.items():
        values = dict(data.get(name, {}))
        kwargs = {}
        for f in dataclasses.fields(cls):
            key = f"{name}.{f.name}"
            if f.name not in values:
                raise ConfigError(f"conf: missing key {key}")
            kwargs[f.name] = _coerce(key, values.pop(f.name), f.metadata, root)
        if values:
            raise ConfigError(f"conf: unknown key {name}.{sorted(values)[0]}")
        sections[name] = cls(**kwargs)
    cfg = Config(root=root, **sections)
    _check_relations(cfg)
    return cfg


def _check_relations(cfg: Config) -> None:
    """Rules that span keys; each message still names the key to change."""
    f, k, c = cfg.flink, cfg.kafka, cfg.contract
    if f.prometheus_port_last < f.prometheus_port_first:
        raise ConfigError("conf: flink.prometheus_port_last must be >= flink.prometheus_port_first")
    if k.port == k.controller_port:
        raise ConfigError("conf: kafka.controller_port must differ from kafka.port")
    if c.max_amount_cents < c.min_amount_cents:
        raise ConfigError("conf: contract.max_amount_cents must be >= contract.min_amount_cents")
    if c.max_event_time_ms <= c.min_event_time_ms:
        raise ConfigError("conf: contract.max_event_time_ms must be > contract.min_event_time_ms")
    for cur in c.currencies:
        if len(cur) != 3 or not cur.isalpha() or not cur.isupper():
            raise ConfigError(f"conf: contract.currencies has {cur!r}, expected a 3-letter code")
    for key in ("out_of_orderness_ms", "window_ms", "idleness_ms"):
        if getattr(cfg.event_time, key) % 1000:
            raise ConfigError(f"conf: event_time.{key} must be whole seconds (a multiple of "
                              f"1000), got {getattr(cfg.event_time, key)}")
    _check_security(cfg)
    g = cfg.generator
    bad = (
        g.duplicate_fraction
        + g.conflicting_duplicate_fraction
        + g.late_fraction
        + g.malformed_fraction
        + g.schema_violation_fraction
        + g.invalid_value_fraction
    )
    if bad >= 1.0:
        raise ConfigError("conf: generator.*_fraction values must add up to less than 1")


_PRINCIPAL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _check_security(cfg: Config) -> None:
    s, k = cfg.security, cfg.kafka
    if s.port in (k.port, k.controller_port):
        raise ConfigError("conf: security.port must differ from kafka.port and "
                          "kafka.controller_port")
    for key in ("certs_dir", "secrets_dir"):
        value = getattr(s, key)
        if ".." in Path(value).parts:
            raise ConfigError(f"conf: security.{key} must stay inside paths.run_dir (a path "
                              f"relative to it, or absolute), got {value!r}")
    seen: dict[str, str] = {}
    for f in dataclasses.fields(Security):
        if not f.name.endswith("_principal"):
            continue
        name = getattr(s, f.name)
        if not _PRINCIPAL.match(name):
            raise ConfigError(f"conf: security.{f.name} must be 1-64 characters of "
                              f"A-Z a-z 0-9 . _ -, got {name!r}")
        if name in seen:
            raise ConfigError(f"conf: security.{f.name} must differ from "
                              f"security.{seen[name]} (one principal per component)")
        seen[name] = f.name
