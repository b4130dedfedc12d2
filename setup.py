"""The wheel's build step (everything else is in pyproject.toml): an installed payline runs
outside a checkout, so the wheel carries copies of the files that `payline up` needs besides
code, copied here from where the checkout keeps them, which stay the only ones to edit:

* ``conf/payline.toml`` as ``runtime/defaults.toml``, the defaults
  (``runtime.config.DEFAULTS_IN_ZIP``, the same entry a release's bundle has);
* the Kafka and Flink templates (``conf/kafka``, ``conf/flink``), the Maven poms
  (``infra/kafka``, ``infra/flink``) and the Java sources of the Flink functions
  (``infra/flink-udfs/src``) under ``payline/share/`` in the same layout (``payline.assets``).

An editable install skips the step: its code runs from the checkout, which has the files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# in the checkout -> in the wheel
SHIPPED = {
    "conf/payline.toml": "runtime/defaults.toml",
    "conf/kafka": "payline/share/conf/kafka",
    "conf/flink": "payline/share/conf/flink",
    "infra/kafka/pom.xml": "payline/share/infra/kafka/pom.xml",
    "infra/flink/pom.xml": "payline/share/infra/flink/pom.xml",
    "infra/flink-udfs/src": "payline/share/infra/flink-udfs/src",
}


class BuildWithAssets(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        for src, dest in SHIPPED.items():
            source, target = HERE / src, Path(self.build_lib) / dest
            if not source.exists():  # a partial tree would make a wheel that cannot run
                raise FileNotFoundError(f"setup.py: {source} is missing")
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(source, target)
            else:
                shutil.copyfile(source, target)


setup(cmdclass={"build_py": BuildWithAssets})
