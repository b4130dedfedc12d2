"""The project's Java functions for Flink SQL (infra/flink-udfs) are compiled by `payline up`
(payline.local.java_build.ensure_udf_jar) with the JDK's javac against the wheel's Flink jars,
and rebuilt when a source is newer than the jar."""

import os
import zipfile

from payline.local.java_build import ensure_udf_jar, udf_sources
from runtime import config


def test_the_jar_is_built_once_and_again_after_a_source_changes(tmp_path):
    cfg = config.load(None, [f"flink.udf_jar={tmp_path / 'lib' / 'udfs.jar'}"])
    jar = ensure_udf_jar(cfg)
    assert jar == tmp_path / "lib" / "udfs.jar"
    with zipfile.ZipFile(jar) as zf:
        assert "dev/payline/flink/DedupFirstCopy.class" in zf.namelist()
    built = jar.stat().st_mtime_ns
    assert ensure_udf_jar(cfg).stat().st_mtime_ns == built  # up to date: kept

    source = udf_sources(cfg.root)[0]
    os.utime(jar, ns=(built, source.stat().st_mtime_ns - 10**9))  # the jar is older now
    ensure_udf_jar(cfg)
    assert jar.stat().st_mtime_ns > source.stat().st_mtime_ns - 10**9
