"""A directory made read-only for a while (the soak's ``checkpoint_readonly`` fault)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from payline.errors import SoakError


class ReadOnly:
    """The directory read-only for a while: a read-only bind mount over it (root with
    CAP_SYS_ADMIN), else ``chmod a-w`` on its tree (a non-root user). ``how`` says which;
    ``start()`` raises SoakError when neither works."""

    def __init__(self, path: Path):
        self.path = path.resolve()
        self.how: str | None = None
        self._modes: dict[Path, int] = {}

    def start(self) -> None:
        if os.geteuid() == 0:
            bind = subprocess.run(["mount", "--bind", str(self.path), str(self.path)],
                                  capture_output=True, text=True)
            if bind.returncode == 0:
                ro = subprocess.run(["mount", "-o", "remount,bind,ro", str(self.path)],
                                    capture_output=True, text=True)
                if ro.returncode == 0:
                    self.how = "read-only bind mount"
                    self._verify()
                    return
                subprocess.run(["umount", str(self.path)], capture_output=True)
            raise SoakError(f"cannot make {self.path} read-only: running as root without the "
                            f"right to mount ({(bind.stderr or '').strip()[:200]})")
        for p in [self.path, *self.path.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                self._modes[p] = p.stat().st_mode
                p.chmod(self._modes[p] & ~0o222)
        self.how = "chmod a-w"
        self._verify()

    def _verify(self) -> None:
        probe = self.path / ".soak-probe"
        try:
            probe.write_text("x")
        except OSError:
            return
        probe.unlink()
        self.stop()
        raise SoakError(f"{self.path} is still writable after {self.how}")

    def stop(self) -> None:
        if self.how == "read-only bind mount":
            subprocess.run(["umount", str(self.path)], capture_output=True, check=True)
        for p, mode in self._modes.items():
            p.chmod(mode)
        self._modes.clear()
        self.how = None
