"""Group commit: the writes of sources that finish together, in one transaction.

A source's save is small (its posts, their first versions, the fetch log, the validators),
but each commit rewrites every page it touched, and post ids are hashes: thirty posts land
on thirty leaf pages of each index. Two hundred commits of a cold pass wrote 63 MB of WAL
for a 25 MB archive, and committing was a fifth of the fetching process's time. Saves that
are ready in the same turn of the event loop share one transaction instead.

A pass may also have a write wait a little (`wait`) for the next sources' to share its
transaction: writes come about one per parsed feed, a few milliseconds apart, so a group
formed only of what is ready in one turn holds one or two, and every commit rewrites the
index pages its posts landed on. Saving a cold pass's 200 feeds in groups of 1, 2, 5 and 10
costs 311, 263, 214 and 198 ms of CPU (bench_poll's feeds, in process).

Nothing is claimed before it is committed: `run` returns once the transaction holding the
write is committed. If one write of a group fails, the group is rolled back and each write
is run again in a transaction of its own, so only the failing one fails, as it would alone.
No transaction spans an `await`: a group is written in one go, in one callback.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from monitor.archive.sqlite import Store

T = TypeVar("T")
Write = Callable[[sqlite3.Connection], Any]


class GroupCommit:
    def __init__(
        self, store: Store, wait: float = 0.0, most: int = 16, writers: int | None = None
    ) -> None:
        self.store = store
        self.wait = wait  # seconds the first write of a group waits for others to join it
        self.most = most  # a group this large is written at once
        # The tasks that may still queue a write (a pass's sources not yet done; None: not
        # known). Once each has a write queued, no other can join the group: it is written at
        # once. The last sources of a pass otherwise waited `wait` for no one, with nothing
        # else left to do.
        self.writers = writers
        self._queue: list[tuple[Write, asyncio.Future[Any]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self.groups = 0  # transactions committed, for tests and benchmarks
        self.writes = 0

    async def run(self, write: Callable[[sqlite3.Connection], T], wait: bool = True) -> T:
        """`write(db)` inside a transaction shared with the writes queued in this turn, or in
        the next `self.wait` seconds; with `wait=False`, the group is written in this turn."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((write, future))
        if self._all_in():
            wait = False
        if len(self._queue) == 1 and wait and self.wait > 0:
            self._timer = loop.call_later(self.wait, self._commit)
        elif len(self._queue) == 1 or (
            self._timer is not None and (not wait or len(self._queue) >= self.most)
        ):
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            # After the callbacks already scheduled: the sources resumed in this turn (a
            # burst of parse answers, say) queue their writes before the group is written.
            loop.call_soon(self._commit)
        return await future

    def done_writing(self) -> None:
        """One of the `writers` will queue no more writes (its source is done)."""
        if self.writers is None:
            return
        self.writers -= 1
        if self._timer is not None and self._all_in():
            self._timer.cancel()
            self._timer = None
            asyncio.get_running_loop().call_soon(self._commit)

    def _all_in(self) -> bool:
        return self.writers is not None and len(self._queue) >= self.writers

    def _commit(self) -> None:
        if self._timer is not None:  # called early (a full group): the timer is not needed
            self._timer.cancel()
            self._timer = None
        group, self._queue = self._queue, []
        group = [(w, f) for w, f in group if not f.cancelled()]
        if not group:
            return
        self.writes += len(group)
        try:
            with self.store.transaction(ordered=False) as db:
                results = [write(db) for write, _ in group]
        except Exception:  # noqa: BLE001 - one write failed: each alone, so only it fails
            for write, future in group:
                self.groups += 1
                try:
                    with self.store.transaction(ordered=False) as db:
                        result = write(db)
                except Exception as exc:  # noqa: BLE001 - the source's own failure, or the disk's
                    future.set_exception(exc)
                else:
                    # Only once COMMIT has returned: a COMMIT can fail too (a full disk), and a
                    # write told it was saved must not then be told otherwise, nor the writers
                    # after it be left waiting for an answer.
                    future.set_result(result)
            return
        self.groups += 1
        for (_, future), result in zip(group, results, strict=True):
            future.set_result(result)
