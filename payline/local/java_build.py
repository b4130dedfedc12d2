"""What the stack needs built or fetched before it starts: the Kafka broker's and Flink's jars
from Maven Central (``infra/*/pom.xml``), and the project's own Java functions for Flink SQL
(``infra/flink-udfs``), compiled with the JDK's javac against the wheel's Flink jars."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from payline.assets import ASSETS, asset
from payline.errors import StackError
from payline.flink.dist import flink_home
from payline.jdk import java_bin, jdk_tool
from runtime.settings import Config


def ensure_jars(cfg: Config) -> None:
    """Fetch the Maven Central jars once (`mvn dependency:copy-dependencies`); skip if present.
    Then build the project's own Flink functions (:func:`ensure_udf_jar`)."""
    fetch_jars(cfg)
    ensure_udf_jar(cfg)


UDF_SOURCES = Path("infra") / "flink-udfs" / "src"


def udf_sources(root: Path) -> list[Path]:
    """The Java sources of the project's Flink functions under ``root`` (a checkout, the
    wheel's copies: :mod:`payline.assets`, or the tree a release is made from)."""
    return sorted((root / UDF_SOURCES).rglob("*.java"))


def ensure_udf_jar(cfg: Config) -> Path:
    """The project's Java functions for Flink SQL (``infra/flink-udfs``: the dedup state's
    process table function) as ``flink.udf_jar``, compiled with the JDK's javac against the
    Flink jars of the apache-flink wheel, the very classes the cluster runs. Rebuilt when a
    source is newer than the jar; the jobs add it with ``env.add_jars``."""
    return build_udf_jar(ASSETS, cfg.flink.udf_jar)


def build_udf_jar(root: Path, jar: Path) -> Path:
    """:func:`ensure_udf_jar` for the sources under ``root`` (a checkout, the wheel's
    copies, or the tree a release is made from) into ``jar``."""
    sources = udf_sources(root)
    if not sources:
        raise StackError(f"no Java sources in {root / UDF_SOURCES}")
    if jar.exists() and jar.stat().st_mtime >= max(s.stat().st_mtime for s in sources):
        return jar
    javac, jar_tool = jdk_tool("javac"), jdk_tool("jar")
    if not javac.exists() or not jar_tool.exists():
        raise StackError(f"javac and jar not found next to {java_bin()}: the Flink functions "
                         f"in {UDF_SOURCES} need a JDK 17 (not a JRE)")
    classes = jar.parent / "classes"
    shutil.rmtree(classes, ignore_errors=True)
    classes.mkdir(parents=True)
    lib = flink_home() / "lib"
    for cmd in ([str(javac), "--release", "17", "-cp", f"{lib}/*", "-d", str(classes),
                 *map(str, sources)],
                [str(jar_tool), "cf", str(jar.with_suffix(".tmp")), "-C", str(classes), "."]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise StackError(f"building {jar.name} failed ({Path(cmd[0]).name}):\n"
                             f"{(proc.stdout + proc.stderr)[-2000:]}")
    jar.with_suffix(".tmp").replace(jar)
    return jar


def fetch_jars(cfg: Config) -> None:
    for name, lib in (("kafka", cfg.kafka.jars_dir), ("flink", cfg.flink.jars_dir)):
        if lib.is_dir() and any(lib.glob("*.jar")):
            continue
        pom = asset(f"infra/{name}/pom.xml")
        mvn = shutil.which("mvn")
        if not mvn:
            raise StackError(f"{lib} has no jars and mvn is not on PATH: install Maven")
        proc = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
             f"-Dpayline.lib.dir={lib}"],
            capture_output=True, text=True,
        )
        if proc.returncode != 0 or not any(lib.glob("*.jar")):
            raise StackError(
                f"fetching the {name} jars with Maven failed ({pom}):\n{proc.stdout[-2000:]}"
            )
