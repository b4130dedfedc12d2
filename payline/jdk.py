"""The JDK the stack runs on: ``java``, and the tools beside it (javac, jar, keytool)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from payline.errors import StackError


def java_bin() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise StackError("java not found: install Java 17 and put it on PATH or set JAVA_HOME")
    return found


def jdk_tool(name: str) -> Path:
    """A tool of the JDK that ``java`` belongs to (it may not exist: a JRE has none)."""
    return Path(java_bin()).resolve().parent / name
