"""A disk that fills up and empties again: a real small tmpfs as root, else SQLite's page cap."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PAGECAP = Path(__file__).resolve().parent / "pagecap"


class Disk:
    """`dir` holds the archive. `fill(leave)` takes all but `leave` bytes of the space (with the
    page cap: all growth of the archive); `free()` gives it back."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "disk"
        self.dir.mkdir()
        self.ballast = root / "disk" / "ballast"
        self.cap_file = root / "page-cap"
        # MONITOR_TEST_PAGE_CAP_ONLY=1 tries the fallback as root.
        wanted = os.geteuid() == 0 and not os.environ.get("MONITOR_TEST_PAGE_CAP_ONLY")
        self.tmpfs = wanted and self._mount()
        self.kind = "tmpfs" if self.tmpfs else "page cap"

    def _mount(self) -> bool:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(self.dir)],
            capture_output=True,
        )
        return done.returncode == 0

    @property
    def env(self) -> dict[str, str]:
        """For a `monitor` process: with the page cap, the hook that applies it."""
        if self.tmpfs:
            return {}
        path = os.environ.get("PYTHONPATH", "")
        return {
            "PYTHONPATH": f"{PAGECAP}{os.pathsep}{path}" if path else str(PAGECAP),
            "MONITOR_TEST_PAGE_CAP": str(self.cap_file),
        }

    def install_here(self, monkeypatch: Any) -> None:
        """With the page cap, this process's connections apply it too (in-process commands)."""
        if not self.tmpfs:
            spec = importlib.util.spec_from_file_location("pagecap", PAGECAP / "sitecustomize.py")
            assert spec is not None and spec.loader is not None
            hook = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(hook)
            monkeypatch.setattr(sqlite3, "connect", hook.capped_connect(str(self.cap_file)))

    def free_bytes(self) -> int:
        st = os.statvfs(self.dir)
        return st.f_bavail * st.f_frsize

    def fill(self, archive: Path, leave: int = 0, db: sqlite3.Connection | None = None) -> None:
        if self.tmpfs:
            with self.ballast.open("ab", buffering=0) as f:
                for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
                    with contextlib.suppress(OSError):
                        while self.free_bytes() - chunk >= leave:
                            f.write(b"\0" * chunk)
            return
        con = db or sqlite3.connect(archive)
        (pages,) = con.execute("PRAGMA page_count").fetchone()
        if db is not None:  # the process's own connection: capped at once
            db.execute(f"PRAGMA max_page_count = {pages}")
        else:
            con.close()
        self.cap_file.write_text(str(pages))

    def free(self, db: sqlite3.Connection | None = None) -> None:
        if self.tmpfs:
            self.ballast.unlink(missing_ok=True)
            return
        self.cap_file.write_text(str(1 << 30))
        if db is not None:
            db.execute(f"PRAGMA max_page_count = {1 << 30}")

    def close(self) -> None:
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.dir)], capture_output=True)


@contextlib.contextmanager
def disk(root: Path) -> Iterator[Disk]:
    d = Disk(root)
    try:
        yield d
    finally:
        d.close()
