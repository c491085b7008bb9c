"""The SQLite archive's WAL is checkpointed on a thread of its own, and nothing is lost."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from monitor.archive import walcheckpoint
from monitor.archive.sqlite import Store
from monitor.models import Post
from tests.test_daemon import wait_for


def _posts(n: int, start: int = 0) -> list[Post]:
    # About 10 KiB each, and as much again in post_versions: 300 of them take the WAL well
    # past 1,000 pages of 4 KiB.
    return [
        Post(
            external_id=f"p{i}",
            url=f"https://example.org/{i}",
            title=f"Post {i}",
            text=f"words of post {i} " * 600,
        )  # fmt: skip
        for i in range(start, start + n)
    ]


def _save(store: Store, posts: list[Post]) -> None:
    with store.transaction() as db:
        store.save_posts(db, "src", posts)
        store.index_pending(db)


def _threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "wal-checkpoint"]


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "a.db")
    s.sync_sources([("src", "feed", "https://example.org/feed")])
    yield s
    s.close()


def test_the_writer_leaves_checkpoints_to_the_thread(store: Store) -> None:
    assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    _save(store, _posts(5))
    assert not _threads()  # a short WAL: nothing to do, no thread
    _save(store, _posts(300, start=5))
    assert store._checkpoints is not None
    # The thread copies the WAL into the archive; the writer never waited for it.
    assert wait_for(lambda: store._checkpoints._pending() == 0, 10)  # type: ignore[union-attr]
    assert len(_threads()) == 1
    _save(store, _posts(300, start=305))  # the WAL starts again from its beginning
    assert wait_for(lambda: store._checkpoints._pending() == 0, 10)  # type: ignore[union-attr]
    assert len(_threads()) == 1


def test_close_stops_the_thread_and_the_archive_is_whole(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    store.sync_sources([("src", "feed", "https://example.org/feed")])
    for start in range(0, 900, 300):
        _save(store, _posts(300, start=start))
    assert _threads()
    store.close()
    assert not _threads()
    # The last connection closed checkpointed the rest: no WAL is left behind.
    assert not (tmp_path / "a.db-wal").exists()
    with sqlite3.connect(tmp_path / "a.db") as db:
        assert db.execute("SELECT count(*) FROM posts").fetchone()[0] == 900
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_thread_that_cannot_connect_gives_the_checkpoints_back_to_sqlite(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refused(*args: object, **kwargs: object) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(walcheckpoint.sqlite3, "connect", refused)
    with caplog.at_level(logging.WARNING, logger="monitor"):
        _save(store, _posts(300))
        assert wait_for(lambda: not any(t.is_alive() for t in _threads()), 10)
        _save(store, _posts(300, start=300))
    assert "no background checkpoints" in caplog.text
    assert store._checkpoints is None
    assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == walcheckpoint.PAGES
    # From the next commit on, SQLite checkpoints in the commit, as it does by itself.
    _save(store, _posts(1, start=600))
    assert walcheckpoint.Checkpoints(store.path)._pending() == 0
    assert store.db.execute("SELECT count(*) FROM posts").fetchone()[0] == 601


def test_a_failing_checkpoint_loses_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # A reader on an old snapshot: the thread can copy nothing past it (a PASSIVE checkpoint
    # leaves those frames), and the writer goes on writing into the WAL.
    reader = sqlite3.connect(store.path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM posts").fetchone()
    _save(store, _posts(300))
    _save(store, _posts(300, start=300))
    assert store._checkpoints is not None
    time.sleep(0.2)
    assert store._checkpoints._pending() > walcheckpoint.PAGES
    reader.execute("COMMIT")
    reader.close()
    _save(store, _posts(1, start=600))  # the next commit wakes the thread again
    assert wait_for(lambda: store._checkpoints._pending() == 0, 10)  # type: ignore[union-attr]
    assert store.db.execute("SELECT count(*) FROM posts").fetchone()[0] == 601


def test_an_archive_in_memory_has_no_wal_and_no_thread() -> None:
    memory = Store(":memory:")
    assert memory._checkpoints is None
    memory.close()
