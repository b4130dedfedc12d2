"""jobs.batch.reconcile.driver_java_options: what a driver JVM this process starts is given."""

from jobs.batch.reconcile import BATCH_JAVA_OPTIONS, driver_java_options


def test_without_an_archive_only_the_collector(tmp_path):
    assert driver_java_options(tmp_path / "missing.jsa") == BATCH_JAVA_OPTIONS
    assert driver_java_options(None) == BATCH_JAVA_OPTIONS


def test_an_existing_archive_is_passed(tmp_path):
    archive = tmp_path / "spark-classes.jsa"
    archive.write_bytes(b"x")
    assert driver_java_options(archive) == (
        f"{BATCH_JAVA_OPTIONS} -XX:SharedArchiveFile={archive}")


def test_a_path_with_a_space_stays_one_option(tmp_path):
    """Spark splits extraJavaOptions at spaces unless they are quoted."""
    archive = tmp_path / "with space" / "spark-classes.jsa"
    archive.parent.mkdir()
    archive.write_bytes(b"x")
    assert driver_java_options(archive) == (
        f'{BATCH_JAVA_OPTIONS} "-XX:SharedArchiveFile={archive}"')
