"""The code that runs on a cluster, as one zip: for a release's ``flink run --pyFiles`` and for
``spark-submit --py-files`` (`payline package-batch`). It holds the semantics (``udfs``), the
run-time layer (``runtime``) and the jobs (``jobs``), plus the checked-in defaults
``conf/payline.toml`` as ``runtime/defaults.toml`` (read by :func:`runtime.config.load` when no
``conf/`` is next to the code), and nothing of the operator tool.

    payline package-batch --out dist/payline-batch.zip
    spark-submit --master spark://host:7077 --py-files dist/payline-batch.zip \\
        jobs/batch/reconcile.py --start ... --end ... --conf cluster.toml

A source tree of the layout before the run-time layer (a checkout of an older commit) is
bundled as it was then: ``payline``, ``udfs`` and ``jobs``, with the defaults as
``payline/defaults.toml``. Entries are written in sorted order with a fixed timestamp, so the
same code gives the same bytes.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from runtime.config import CODE_ROOT, DEFAULTS_IN_ZIP, defaults_text

PACKAGES = ("udfs", "runtime", "jobs")
# a tree of the layout before the run-time layer: its jobs imported payline/
OLD_PACKAGES, OLD_DEFAULTS_IN_ZIP = ("payline", "udfs", "jobs"), "payline/defaults.toml"
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


# files besides code that a job reads from its own package: the Data Docs' CSS, JS and fonts
# (jobs.batch.data_docs), which a cluster's reconcile run must have offline too
DATA_DIR = "data_docs_static"


def layout(root: Path) -> tuple[tuple[str, ...], str]:
    """The packages to bundle from ``root`` and where its defaults go in the zip."""
    if (root / "runtime").is_dir():
        return PACKAGES, DEFAULTS_IN_ZIP
    return OLD_PACKAGES, OLD_DEFAULTS_IN_ZIP


def build(out: Path, root: Path = CODE_ROOT) -> Path:
    """Bundle the code under ``root``: by default the code running (a checkout, or an installed
    wheel's packages with the defaults it carries)."""
    packages, defaults = layout(root)
    files = sorted(p for pkg in packages for p in (root / pkg).rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts
                   and (p.suffix == ".py" or DATA_DIR in p.relative_to(root).parts))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        entries = [(p.relative_to(root).as_posix(), p.read_bytes()) for p in files]
        own = root / "conf" / "payline.toml"
        entries.append((defaults, own.read_bytes() if own.is_file() or root != CODE_ROOT
                        else defaults_text().encode()))
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    tmp.replace(out)
    return out
