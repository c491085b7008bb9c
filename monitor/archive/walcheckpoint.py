"""The SQLite archive's write-ahead log copied into it on a thread of its own.

SQLite checkpoints the WAL itself in the commit that takes it past 1,000 pages, and that
commit waits for the copy and for two fsyncs (the WAL's, then the archive's). In
`monitor fetch` and the daemon the commit runs on the event loop, so every fetch and parse
waited with it: on bench_poll's cold pass of 200 feeds (11 MB of archive), the commits held
the loop for 161-204 ms (with synchronous = OFF, to see the waits alone, about 110 ms less).
Here the writer turns SQLite's own checkpoints off and, after a commit that leaves 1,000
pages or more in the WAL, wakes a thread that checkpoints through a connection of its own.
The commits then took 75-82 ms; the thread's copying cost 45-50 ms of CPU, which the commits
paid before (bench/README.md, 2026-12-07 session 4).

A checkpoint of this kind (PASSIVE) never blocks the writer, and SQLite's rules for what a
checkpoint may copy are the same whichever connection runs it. The connection that closes
last still checkpoints what is left, as before, so a closed archive is whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import struct
import threading

log = logging.getLogger("monitor")

# SQLite's own threshold (PRAGMA wal_autocheckpoint's default), kept: the same WAL sizes.
PAGES = 1000
# The wal-index header at the start of the -shm file (https://www.sqlite.org/walformat.html,
# 2.1 and 2.2), in the machine's byte order: its version, mxFrame (frames in the WAL) and
# nBackfill (frames already copied into the archive).
_HEADER = struct.Struct("=I12xI76xI")
_VERSION = 3007000
# Where that header can't be read (a WAL without shared memory), a checkpoint after every
# commit, at most this often.
_UNMEASURED_GAP = 0.25


class Checkpoints:
    """One archive file's checkpoints: `written()` after each commit, `close()` at the end."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._due = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shm: int | None = None
        self._measured = True

    def written(self) -> bool:
        """Called by the writer after its commit: wake the thread if the WAL is long enough.

        False when the thread could not run (no connection of its own): the writer must
        checkpoint as SQLite does by itself, or its WAL would grow without end.
        """
        pending = self._pending()
        if pending is not None and pending < PAGES:
            return True
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
            self._thread.start()
        elif not self._thread.is_alive():
            return False
        self._due.set()
        return True

    def close(self) -> None:
        """Stop the thread, after the checkpoint it is in; the writer closes after this."""
        self._stop.set()
        self._due.set()
        if self._thread is not None:
            self._thread.join()
        if self._shm is not None:
            os.close(self._shm)
            self._shm = None

    def _pending(self) -> int | None:
        """Frames in the WAL not yet in the archive, or None when the header can't be read."""
        if not self._measured:
            return None
        try:
            if self._shm is None:
                self._shm = os.open(self.path + "-shm", os.O_RDONLY)
            version, frames, copied = _HEADER.unpack(os.pread(self._shm, _HEADER.size, 0))
        except (OSError, struct.error):
            version = frames = copied = 0
        if version != _VERSION:
            self._measured = False
            return None
        return max(frames - copied, 0)

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            log.warning("%s: no background checkpoints (%s); SQLite's own instead", self.path, exc)
            return
        try:
            while True:
                self._due.wait()
                self._due.clear()
                if self._stop.is_set():
                    return
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    # A full disk, say: the WAL keeps what it holds, and the next commit
                    # past the threshold tries again. Nothing written is lost.
                    log.debug("%s: checkpoint failed: %s", self.path, exc)
                if not self._measured:
                    self._stop.wait(_UNMEASURED_GAP)
        finally:
            with contextlib.suppress(sqlite3.Error):
                db.close()
