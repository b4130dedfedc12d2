"""The batch layer's code as one zip for ``spark-submit --py-files`` (a cluster's executors have
pyspark, pandas and pyarrow, not this project): the ``payline``, ``udfs`` and ``jobs`` packages,
plus the checked-in defaults ``conf/payline.toml`` as ``payline/defaults.toml`` (read by
:func:`payline.config.load` when no ``conf/`` is next to the code).

    payline package-batch --out dist/payline-batch.zip
    spark-submit --master spark://host:7077 --py-files dist/payline-batch.zip \\
        jobs/batch/reconcile.py --start ... --end ... --conf cluster.toml

Entries are written in sorted order with a fixed timestamp, so the same code gives the same
bytes.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from payline.config import DEFAULTS_IN_ZIP, PROJECT_ROOT

PACKAGES = ("payline", "udfs", "jobs")
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def build(out: Path, root: Path = PROJECT_ROOT) -> Path:
    files = sorted(p for pkg in PACKAGES for p in (root / pkg).rglob("*.py")
                   if "__pycache__" not in p.parts)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        entries = [(p.relative_to(root).as_posix(), p.read_bytes()) for p in files]
        entries.append((DEFAULTS_IN_ZIP, (root / "conf" / "payline.toml").read_bytes()))
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    tmp.replace(out)
    return out
