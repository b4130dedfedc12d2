"""The batch job's SparkSession (jobs/batch/reconcile.py, the operator tool's ``reconcile`` and
``schedule``, the tests and the benchmark all start theirs here)."""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

BATCH_JAVA_OPTIONS = "-XX:+UseParallelGC"


def spark_session(master: str | None, app: str = "payline-reconcile",
                  extra: dict[str, str] | None = None):
    """The job's session: ``local[*]`` unless a master is given or spark-submit launched it
    (then spark-submit's own settings, e.g. ``--driver-memory``, apply). ``extra``: more
    settings, e.g. ``spark.driver.memory`` for a local run (only before the JVM starts). A
    JVM this process starts runs the parallel collector (``BATCH_JAVA_OPTIONS``) unless
    ``extra`` sets ``spark.driver.extraJavaOptions``."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app)
    extra = dict(extra or {})
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # this process starts the driver's JVM
        # the throughput collector for a batch job: 10 M events, the recompute 2-4 s faster
        # than with Java 17's default G1, whose concurrent threads take one of 2 cores
        # (bench/RESULTS.md, 2026-11-27, commit a763f9b). Under spark-submit:
        # --driver-java-options
        extra.setdefault("spark.driver.extraJavaOptions", BATCH_JAVA_OPTIONS)
    for key, value in extra.items():
        builder = builder.config(key, value)
    if master:
        builder = builder.master(master)
    elif "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit: local
        builder = builder.master("local[*]")
    session = (builder.config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", "8")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               # the cached frames (the deduplicated rows, the judged aggregate pairs, the
               # alerts) are read back a few times each: building them uncompressed costs far
               # less than compressing them
               # (10 M events: the recompute 68-75 s -> 43-44 s, the caches 1.5 -> 2.6 GB;
               # MEMORY_AND_DISK, so a smaller heap spills instead of failing)
               .config("spark.sql.inMemoryColumnarStorage.compressed", "false")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               # the lake's date=/hour= folders stay strings ("05", not 5)
               .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    return session
