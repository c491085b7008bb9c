"""Group commit: writes ready together share a transaction; one failing write fails alone."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from monitor.archive.commits import GroupCommit
from monitor.archive.sqlite import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "archive.db")
    s.sync_sources([(f"s{i}", "feed", None) for i in range(5)])
    yield s
    s.close()


def log_fetch(source_id: str):
    def write(db: sqlite3.Connection) -> str:
        db.execute(
            "INSERT INTO fetches (source_id, started_at, finished_at, ok) VALUES (?, 'a', 'b', 1)",
            (source_id,),
        )
        return source_id

    return write


def logged(store: Store) -> list[str]:
    return [r[0] for r in store.db.execute("SELECT source_id FROM fetches ORDER BY source_id")]


async def test_writes_ready_together_share_one_transaction(store):
    commits = GroupCommit(store)
    results = await asyncio.gather(*(commits.run(log_fetch(f"s{i}")) for i in range(5)))
    assert results == [f"s{i}" for i in range(5)]
    assert (commits.groups, commits.writes) == (1, 5)
    assert logged(store) == [f"s{i}" for i in range(5)]
    assert not store.db.in_transaction  # committed, not left open


async def test_writes_of_different_turns_commit_separately(store):
    commits = GroupCommit(store)
    await commits.run(log_fetch("s0"))
    assert logged(store) == ["s0"]  # committed before run() returned
    await commits.run(log_fetch("s1"))
    assert commits.groups == 2


async def test_a_failing_write_fails_alone_and_the_others_are_committed(store):
    commits = GroupCommit(store)

    def broken(db: sqlite3.Connection) -> None:
        log_fetch("s9")(db)  # written, then undone with the failure
        raise sqlite3.IntegrityError("this source's own failure")

    results = await asyncio.gather(
        commits.run(log_fetch("s0")), commits.run(broken), commits.run(log_fetch("s2")),
        return_exceptions=True,
    )  # fmt: skip
    assert results[0] == "s0" and results[2] == "s2"
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert logged(store) == ["s0", "s2"]


async def test_a_write_whose_caller_was_cancelled_is_not_committed(store):
    commits = GroupCommit(store)
    first = asyncio.ensure_future(commits.run(log_fetch("s0")))
    second = asyncio.ensure_future(commits.run(log_fetch("s1")))
    await asyncio.sleep(0)  # both queued, the group not yet written
    second.cancel()
    assert await first == "s0"
    with pytest.raises(asyncio.CancelledError):
        await second
    assert logged(store) == ["s0"]


async def test_a_failed_commit_fails_its_writer_and_every_writer_gets_an_answer(store):
    # A constraint checked at COMMIT makes COMMIT itself fail, as a full disk does (the real
    # full disk is tests/faults/test_disk_full.py): the write ran, then its commit did not.
    store.db.execute("PRAGMA defer_foreign_keys = ON")
    commits = GroupCommit(store)

    def orphan(db: sqlite3.Connection) -> str:
        db.execute("PRAGMA defer_foreign_keys = ON")  # reset by each COMMIT and ROLLBACK
        db.execute(
            "INSERT INTO post_versions (post_id, version, seen_at) VALUES ('nobody', 1, 'a')"
        )
        return "claimed saved"

    results = await asyncio.wait_for(
        asyncio.gather(
            commits.run(log_fetch("s0")), commits.run(orphan), commits.run(log_fetch("s2")),
            return_exceptions=True,
        ),
        timeout=10,
    )  # fmt: skip
    assert results[0] == "s0" and results[2] == "s2"
    assert isinstance(results[1], sqlite3.IntegrityError)  # not "claimed saved"
    assert logged(store) == ["s0", "s2"]
    assert store.db.execute("SELECT count(*) FROM post_versions").fetchone()[0] == 0


async def test_a_write_waits_for_the_next_ones_to_share_its_transaction(store):
    # A pass's saves come a few ms apart (one per parsed feed): with `wait`, they share one
    # commit rather than making one each.
    commits = GroupCommit(store, wait=0.05)

    async def later(i: int) -> str:
        await asyncio.sleep(0.005 * i)
        return await commits.run(log_fetch(f"s{i}"))

    assert await asyncio.gather(*(later(i) for i in range(4))) == ["s0", "s1", "s2", "s3"]
    assert (commits.groups, commits.writes) == (1, 4)
    assert logged(store) == ["s0", "s1", "s2", "s3"]


async def test_a_full_group_or_a_write_that_cannot_wait_is_written_at_once(store):
    commits = GroupCommit(store, wait=30.0, most=3)  # the timer would outlast the test
    done = await asyncio.wait_for(
        asyncio.gather(*(commits.run(log_fetch(f"s{i}")) for i in range(3))), timeout=5
    )
    assert done == ["s0", "s1", "s2"] and commits.groups == 1
    waiting = asyncio.ensure_future(commits.run(log_fetch("s3")))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # waits for company
    assert await asyncio.wait_for(commits.run(log_fetch("s4"), wait=False), timeout=5) == "s4"
    assert waiting.done() and commits.groups == 2  # written with the one that could not wait
    assert logged(store) == ["s0", "s1", "s2", "s3", "s4"]


async def test_once_every_writer_left_has_a_write_queued_the_group_goes_at_once(store):
    # The last sources of a pass: no one else can join, so nothing is gained by waiting.
    commits = GroupCommit(store, wait=30.0, writers=3)  # the timer would outlast the test
    first = asyncio.ensure_future(commits.run(log_fetch("s0")))
    await asyncio.sleep(0.01)
    assert not first.done()  # two writers may still come
    commits.done_writing()  # one of them is done without a write (a failed fetch, say)
    await asyncio.sleep(0.01)
    assert not first.done()
    assert await asyncio.wait_for(commits.run(log_fetch("s1")), timeout=5) == "s1"
    assert first.done() and (commits.groups, commits.writes) == (1, 2)


async def test_the_last_writer_to_finish_releases_a_waiting_group(store):
    commits = GroupCommit(store, wait=30.0, writers=2)
    waiting = asyncio.ensure_future(commits.run(log_fetch("s0")))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    commits.done_writing()  # the other writer is done: no one left to wait for
    assert await asyncio.wait_for(waiting, timeout=5) == "s0"
    assert logged(store) == ["s0"]
