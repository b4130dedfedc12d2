"""The README's picture of the analyst report, ``docs/img/report.png``: a real reconciliation
run over the small lake of tests/support/report_lake.py (Spark in local mode, in a temporary
folder), its report opened in headless Chromium with the network off, the top of the page
captured and stored as a 256-colour PNG. ``--report`` takes an existing report instead (e.g.
one `make demo` wrote).

    flock /tmp/payline-jvm.lock .venv/bin/python -m tests.support.report_screenshot \\
        [--report reports/<run>/index.html] [--out docs/img/report.png]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from jobs.batch import reconcile
from runtime import config
from tests.support import report_lake
from tests.support.browser import console_errors, offline_chromium, open_file
from tests.support.stack import ROOT

WIDTH, HEIGHT = 1100, 1250


def reconciled_report(work: Path) -> Path:
    cfg = config.load(None, [f"paths.data_dir={work}", f"paths.reports_dir={work / 'reports'}"])
    report_lake.build(cfg.paths.raw_dir)
    spark = reconcile.spark_session("local[2]", "payline-report-screenshot")
    try:
        return reconcile.run(cfg, *report_lake.INTERVAL, spark)["report"]
    finally:
        spark.stop()


def screenshot(report: Path, out: Path) -> int:
    """Capture ``report``'s top into ``out``; returns its size in bytes."""
    with offline_chromium(WIDTH, HEIGHT) as driver:
        open_file(driver, report)
        time.sleep(0.5)  # the SVG charts are decoded after the load event
        errors = console_errors(driver)
        if errors:
            raise SystemExit(f"report_screenshot: the page logged errors: {errors}")
        png = driver.get_screenshot_as_png()
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(256)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, optimize=True)
    return out.stat().st_size


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="report_screenshot", description=__doc__.split("\n")[0])
    p.add_argument("--report", help="an existing report's index.html (default: reconcile the "
                                    "small lake and use its report)")
    p.add_argument("--out", default=str(ROOT / "docs" / "img" / "report.png"))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="payline-report-") as work:
        report = Path(args.report) if args.report else reconciled_report(Path(work))
        size = screenshot(report, Path(args.out))
    print(f"{args.out}: {size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
