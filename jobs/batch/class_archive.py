"""The driver JVM's class-data archive (AppCDS, JEP 350): the classes a whole reconciliation
run loads, parsed and verified once, so that every later driver JVM maps them instead of
loading them from the jars again.

A scheduled batch starts a fresh JVM for every interval, and on this 2-core machine loading
and verifying Spark's classes during the first query took about 4 s of a 10 M-event run's
aggregation part (bench/RESULTS.md, session 24). Java 17 has no automatic archive
(``-XX:+AutoCreateSharedArchive`` came in Java 19), so this module makes one:

1. a training run: ``payline.lakegen`` writes a small lake (``--events``, default 20 000) into
   a temporary directory, and ``reconcile.run`` runs over it whole (recompute, classification,
   result files, Great Expectations, drift, report) in a driver JVM started with
   ``-XX:ArchiveClassesAtExit``;
2. the JVM is stopped and the archive it dumps at exit is checked: a JVM started by
   ``spark-submit`` with ``-Xshare:on`` (which refuses to start on an archive it cannot map)
   must load a Spark class from it;
3. only then is it moved to ``reconcile.CLASS_ARCHIVE`` (``run/spark-classes.jsa``), which
   ``reconcile.spark_session`` passes to every driver JVM it starts.

``make setup`` runs it once (again after the Python packages change):

    .venv/bin/python -m jobs.batch.class_archive [--out run/spark-classes.jsa] [--events N]

Under ``spark-submit`` (cron, an orchestrator), give the archive with
``--driver-java-options "-XX:+UseParallelGC -XX:SharedArchiveFile=/path/spark-classes.jsa"``;
it must be built on the same Java and Spark jars.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from jobs.batch import reconcile  # noqa: E402
from payline import config as config_mod  # noqa: E402
from payline import lakegen  # noqa: E402

# a class every driver loads in its first query, not one the JVM's own base archive holds
PROBE_CLASS = "org.apache.spark.sql.execution.WholeStageCodegenExec"


class ArchiveError(RuntimeError):
    pass


def spark_submit() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-submit"


def train(archive: Path, events: int) -> None:
    """A whole run over a small generated lake in a JVM that dumps its classes to ``archive``
    at exit; returns after that JVM has exited."""
    from pyspark import SparkContext

    with tempfile.TemporaryDirectory(prefix="class-archive-") as tmp:
        cfg = config_mod.load(None, [f"paths.data_dir={tmp}/data",
                                     f"paths.reports_dir={tmp}/reports"])
        facts = lakegen.generate(cfg, events)
        spark = reconcile.spark_session(None, "payline-class-archive", {
            "spark.driver.extraJavaOptions":
                f"{reconcile.BATCH_JAVA_OPTIONS} -XX:ArchiveClassesAtExit={archive} "
                # classes CDS cannot hold (signed jars, old class files) are skipped, each
                # with a warning line; check() decides whether the archive works
                "-Xlog:cds*=error"})
        try:
            reconcile.run(cfg, facts["start_ms"], facts["end_ms"], spark)
        finally:
            gateway = SparkContext._gateway
            spark.stop()
            # the JVM exits when its stdin closes (PythonGatewayServer) and dumps the archive
            # on the way out; wait for it, so the archive is complete before it is checked
            gateway.shutdown()
            proc = gateway.proc
            proc.stdin.close()
            proc.wait(timeout=300)
            SparkContext._gateway = SparkContext._jvm = None


def check(archive: Path) -> None:
    """A driver JVM as spark-submit starts it must map ``archive`` and load ``PROBE_CLASS``
    from it; raises ArchiveError otherwise."""
    env = dict(os.environ, SPARK_HOME=str(spark_submit().parent.parent))
    env.pop("PYSPARK_GATEWAY_PORT", None)
    # -Xshare:on: a JVM that cannot map the archive does not start
    options = (f"-Xshare:on -XX:SharedArchiveFile={archive} "
               f"-Xlog:class+load=info:stdout -Xlog:cds=off")
    out = subprocess.run([str(spark_submit()), "--driver-java-options", options, "--version"],
                         capture_output=True, text=True, env=env, timeout=120)
    shared = [line for line in out.stdout.splitlines()
              if "org.apache.spark." in line and "shared objects file (top)" in line]
    if out.returncode != 0 or not shared:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        raise ArchiveError(f"the driver JVM did not load classes from {archive} "
                           f"(exit {out.returncode}): {' | '.join(tail)}")


def build(out: Path, events: int) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    partial.unlink(missing_ok=True)
    train(partial, events)
    if not partial.is_file() or partial.stat().st_size == 0:
        raise ArchiveError(f"the training run's JVM wrote no archive at {partial}")
    check(partial)
    partial.replace(out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=reconcile.CLASS_ARCHIVE,
                    help="where the archive goes (default: %(default)s)")
    ap.add_argument("--events", type=int, default=20_000,
                    help="transactions in the training run's lake (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.events < 1000:
        print(f"class_archive: --events: must be at least 1000, got {args.events}",
              file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        out = build(args.out.resolve(), args.events)
    except ArchiveError as exc:
        print(f"class_archive: {exc}", file=sys.stderr)
        return 1
    print(f"class_archive: {out} ({out.stat().st_size / 2**20:.0f} MiB) in "
          f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
