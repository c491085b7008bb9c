"""I/O: the daemon — the only importer of APScheduler; a job per source; a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import random
import signal
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from monitor import eventloop
from monitor.archive import describe
from monitor.archive.sqlite import iso_to_epoch, now_iso
from monitor.errors import SetupError

if TYPE_CHECKING:
    from monitor.archive.commits import GroupCommit
    from monitor.config import Config
    from monitor.sources.base import SourceConfig

log = logging.getLogger("monitor.run")
OUTBOX_EVERY = 15.0
SOURCE_HEALTH_EVERY = 60.0  # how often source-health alerts look at the sources' rows
STOP_GRACE = 10.0  # seconds in-flight fetches get to finish after SIGTERM
# After a write to the archive fails (a full disk), fetching and delivering wait this long,
# doubling to the second figure, before one source tries again: no fetch of what cannot be
# kept, no stream of errors, and no WAL growing with writes that fail.
ARCHIVE_WAIT = (5.0, 300.0)
# Sources' runs fall on whole multiples of this many seconds (within their jitter): see on_tick.
TICK = 1.0


def next_due_at(row: Any, every: float) -> str:
    """When a source is next due, from its row in `sources`: resume where the archive left off."""
    if row is None or not row["last_fetched_at"]:
        return now_iso()
    if row["failures"] and iso_to_epoch(row["next_attempt_at"]) is not None:
        # A failing source is tried again at its backoff, as the running daemon does: the
        # backoff's jitter may put that a little before `every` has passed.
        return str(row["next_attempt_at"])
    return now_iso((iso_to_epoch(row["last_fetched_at"]) or 0) + every)


def next_slot_time(anchor: float, every: float, jitter: float, previous: float) -> float:
    """The run after the one at `previous`, for a source on slots `anchor + k * every`.

    Each run is its slot moved by up to half the jitter either way, and the next slot is
    found from the previous run's time by rounding to the nearest slot: jitter is spread
    around the schedule rather than added to it, so a source averages `every` and its
    runs never drift from where they began, however long the daemon runs. (APScheduler's
    own jitter is added to the previous, already jittered, run: with `every = "1m"` a
    source averaged 63 s, and the bursts of a cycle widened by a few seconds every hour.)
    A run moved off its slot (a failing source's backoff) takes the slot nearest to it.
    """
    slot = anchor + (round((previous - anchor) / every) + 1) * every
    return on_tick(slot + random.uniform(-jitter / 2, jitter / 2), slot, jitter)


def on_tick(at: float, slot: float, jitter: float) -> float:
    """`at` moved to the nearest whole TICK that is still within half the jitter of `slot`.

    The runs of a cycle then fall on a few shared instants rather than each at its own: the
    daemon wakes once per TICK and polls the sources due then together, their waits for the
    network overlapping. Every wake-up of an idle process costs CPU (on the 2-vCPU VMs of
    bench/bench_daemon.py, ~0.2 ms of a cold cache and the event loop's round): one per poll,
    and several in a poll, were about half of the daemon's CPU per poll at 2,000 sources.
    A jitter narrower than a TICK keeps its runs where they fell.
    """
    snapped = round(at / TICK) * TICK
    if snapped < slot - jitter / 2:
        snapped += TICK
    elif snapped > slot + jitter / 2:
        snapped -= TICK
    return snapped if abs(snapped - slot) <= jitter / 2 else at


@functools.cache
def _slot_trigger() -> type:
    """The APScheduler trigger of `next_slot_time` (made once, on first use: the import is slow)."""
    from apscheduler.triggers.base import BaseTrigger

    class SlotTrigger(BaseTrigger):  # type: ignore[misc]
        def __init__(self, anchor: float, every: float, jitter: float) -> None:
            self.anchor, self.every, self.jitter = anchor, every, jitter

        def get_next_fire_time(
            self, previous_fire_time: datetime | None, now: datetime
        ) -> datetime:
            if previous_fire_time is None:
                return datetime.fromtimestamp(self.anchor, UTC)
            at = next_slot_time(
                self.anchor, self.every, self.jitter, previous_fire_time.timestamp()
            )
            return datetime.fromtimestamp(at, UTC)

        def __str__(self) -> str:
            return f"every {self.every:g}s from {now_iso(self.anchor)}, jitter {self.jitter:g}s"

    return SlotTrigger


def slot_trigger(anchor: float, every: float, jitter: float) -> Any:
    """A trigger that runs a job at `anchor`, then about every `every` after it (see above)."""
    return _slot_trigger()(anchor, every, jitter)


# `monitor run --only`. On SQLite, speech to text runs in the daemon that fetches.
ROLES = ("fetch", "deliver", "transcribe")


def run_daemon(config: Config, roles: tuple[str, ...] = ROLES) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        eventloop.run(Daemon(config, roles).run())
    return 0


class Daemon:
    def __init__(self, config: Config, roles: tuple[str, ...] = ROLES) -> None:
        self.config = config
        self.roles = roles
        self.stop = asyncio.Event()
        self.hurry = asyncio.Event()  # a second signal: stop without waiting for fetches
        self.inflight: set[asyncio.Task[Any]] = set()
        self.archive_failures = 0  # writes to the archive that failed in a row
        self.archive_wait_until = 0.0
        self.probing = False  # one source is trying whether the archive can be written again
        self.delivering: dict[str, asyncio.Task[Any]] = {}  # notifier → its delivery run
        self.grace = STOP_GRACE
        self.commits: GroupCommit | None = None  # the saves' group commit, on SQLite (`run`)

    async def run(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        from monitor.archive.commits import GroupCommit
        from monitor.match import match_pending
        from monitor.outbox import SendLimits
        from monitor.runner import make_http, open_store

        config = self.config
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        self.store = open_store(config)
        # Polls that end in the same turn of the event loop (a tick's sources, see on_tick)
        # share one transaction, with no wait: a 304's commit was a tenth of its CPU. On
        # PostgreSQL each save keeps its own (a group would make every 304 take the turn
        # that matching needs).
        self.commits = None if self.store.shared else GroupCommit(self.store)
        try:
            with self.store.transaction() as db:
                # Posts an interrupted process saved but never matched get their alerts first.
                found = match_pending(db, self.store, config)
        except self.store.errors as exc:  # a full disk: they are matched with the first save
            self._archive_result(str(exc))
        else:
            for sid, matches in found.matches.items():
                n = len(matches)
                log.info("%s: %d %s of posts saved before the restart", sid, n,
                         "match" if n == 1 else "matches")  # fmt: skip
        self.metrics, metrics_server = self._serve_metrics()
        from monitor import health

        self.ident, started_at = health.daemon_id(), now_iso()
        self.store.fetched_by = self.ident
        self.http = make_http(config)
        self.limits = SendLimits()  # messages in flight, across the notifiers' runs
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.queue = None
        if not self.store.shared and self.roles == ("transcribe",):
            raise SetupError(
                "--only transcribe: a daemon that only transcribes needs a PostgreSQL archive;"
                " on SQLite, speech to text runs in the daemon that fetches"
            )
        if self.store.shared and {"fetch", "transcribe"} & set(self.roles):
            # On PostgreSQL every daemon is a worker of one queue of sources (monitor.workqueue).
            from monitor.workqueue import WorkQueue

            self.queue = WorkQueue(self)
            await self.queue.start()
        # On SQLite this daemon schedules the sources itself, from where the archive left off.
        scheduled = "fetch" in self.roles and self.queue is None
        rows = {r["id"]: r for r in self.store.source_rows()} if scheduled else {}
        now = time.time()
        for source in config.sources.values():
            if not source.enabled or not scheduled:
                continue
            every = source.every or config.monitor.every
            jitter = min(config.monitor.jitter, every / 10)
            due = iso_to_epoch(next_due_at(rows.get(source.id), every)) or now
            # Sources due at start-up are spread over a few seconds rather than fired at once.
            first = max(due, now) + random.uniform(0, min(jitter, 5.0))
            self.scheduler.add_job(
                self._run_source, slot_trigger(first, every, jitter),
                args=[source], id=f"source:{source.id}", name=source.id,
                next_run_time=datetime.fromtimestamp(first, UTC),
                max_instances=1, coalesce=True, misfire_grace_time=None,
            )  # fmt: skip
            log.info("%s: every %gs, next at %s", source.id, every, now_iso(first))
        if "deliver" in self.roles:
            self.scheduler.add_job(
                self._deliver, IntervalTrigger(seconds=OUTBOX_EVERY, timezone=UTC), id="outbox",
                next_run_time=datetime.now(UTC), max_instances=1, coalesce=True,
                misfire_grace_time=None,
            )  # fmt: skip
        self.scheduler.add_job(
            self._beat, IntervalTrigger(seconds=health.BEAT_EVERY, timezone=UTC), id="heartbeat",
            args=[started_at], next_run_time=datetime.now(UTC), max_instances=1, coalesce=True,
            misfire_grace_time=None,
        )  # fmt: skip
        if any(a.watches_sources for a in config.alerts.values()):
            # On a clock of its own: a source crosses `failing_for` or `silent_for` while
            # nothing is fetched, and a recovery is seen within a minute of the fetch.
            self.scheduler.add_job(
                self._check_sources, IntervalTrigger(seconds=SOURCE_HEALTH_EVERY, timezone=UTC),
                id="source-health", next_run_time=datetime.now(UTC), max_instances=1, coalesce=True,
                misfire_grace_time=None,
            )  # fmt: skip
        self.scheduler.start()
        # What start-up made (the configuration, a job per source, the modules) lives as long
        # as the daemon: frozen, it is out of the collector's way, rather than walked by every
        # full collection a busy daemon's polls set off (bench/bench_daemon.py).
        gc.freeze()
        log.info(
            "monitor running: %d sources; database %s",
            len(config.sources),
            describe(config.database),
        )
        try:
            await self.stop.wait()
        finally:
            log.info("stopping")
            self.scheduler.shutdown(wait=False)
            if self.queue is not None:
                await self.queue.stop(self.grace)
            await self._drain()
            ytdlp = sys.modules.get("monitor.ytdlp")
            if ytdlp is not None:
                ytdlp.shutdown()  # its worker processes must not outlive the daemon
            await self.http.aclose()
            with contextlib.suppress(Exception), self.store.transaction() as db:
                health.stopped(db, self.ident)  # best effort: a full disk must not stop a stop
            self.store.close()
            if metrics_server is not None:
                metrics_server.shutdown()
            log.info("stopped")

    def _serve_metrics(self) -> tuple[Any, Any]:
        """The metrics and their server, when `[monitor] metrics` asks for them."""
        address = self.config.monitor.metrics
        if not address:
            return None, None
        from monitor.metrics import Metrics

        types = {s.id: s.type for s in self.config.sources.values()}
        metrics = Metrics(self.config.database, types)
        try:
            server = metrics.serve(address)
        except OSError as e:
            raise SetupError(f"monitor.metrics: cannot serve metrics at {address}: {e}") from None
        log.info("metrics at http://%s/metrics", address)
        return metrics, server

    async def _beat(self, started_at: str) -> None:
        # A coroutine, so that it runs on the event loop: APScheduler runs a plain function
        # in a thread, whose transaction would collide with the loop's on the one connection.
        from monitor import health

        try:
            with self.store.transaction() as db:
                health.beat(db, self.ident, started_at, ",".join(self.roles))
        except self.store.errors as e:  # a full disk: `monitor health` will say the beat stopped
            log.warning("heartbeat not written: %s", e)

    def _on_signal(self) -> None:
        if self.stop.is_set():
            self.hurry.set()
        self.stop.set()

    async def _drain(self) -> None:
        if not self.inflight:
            return
        log.warning(
            "stopping: waiting up to %gs for %d %s in flight (signal again to stop now)",
            self.grace, len(self.inflight), "fetch" if len(self.inflight) == 1 else "fetches",
        )  # fmt: skip
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace
        hurry = asyncio.ensure_future(self.hurry.wait())
        pending = set(self.inflight)
        while pending and not hurry.done() and (left := deadline - loop.time()) > 0:
            done, _ = await asyncio.wait(
                pending | {hurry}, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            pending -= done
        hurry.cancel()
        for task in pending:
            task.cancel()  # a cancelled fetch rolls its transaction back: nothing half-written
        if pending:
            await asyncio.wait(pending, timeout=5)

    async def _tracked(self, coro: Any) -> Any:
        if self.stop.is_set():
            coro.close()
            return None
        task = asyncio.ensure_future(coro)
        self.inflight.add(task)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled() or self.stop.is_set():
                # Abandoned at shutdown: its transaction was rolled back, nothing to report.
                return None
            raise
        finally:
            self.inflight.discard(task)

    def _archive_closed(self, probe: bool = True) -> float | None:
        """While the archive cannot be written, a job waits, rather than fetch or send what it
        could not record: when it may try again, else None. After the wait, one source tries
        (`probe`), and the others wait for it."""
        if not self.archive_failures:
            return None
        now = time.time()
        if now >= self.archive_wait_until and not self.probing and probe:
            self.probing = True
            return None
        return max(self.archive_wait_until, now) + random.uniform(1.0, 5.0)

    def _put_off(self, job_id: str, at: float) -> None:
        if self.stop.is_set():
            return  # the scheduler is shut down: the next start resumes from the archive
        job = self.scheduler.get_job(job_id)
        if job is not None:
            job.modify(next_run_time=datetime.fromtimestamp(at, UTC))

    def _archive_result(self, error: str | None) -> None:
        """A write was tried: `error` when it failed for the archive's sake, else None."""
        self.probing = False
        if error is None:
            # A write that began before the wait and ended in it proves little (a small one
            # may fit where the next save does not): only one after the wait resumes the rest.
            if self.archive_failures and time.time() >= self.archive_wait_until:
                self.archive_failures = 0
                log.warning("the archive can be written again: fetching and delivering resume")
                with contextlib.suppress(*self.store.errors):
                    self.store.checkpoint()  # what the WAL gathered meanwhile goes in, and it shrinks
            return
        self.archive_failures += 1
        first, longest = ARCHIVE_WAIT
        wait = min(first * 2 ** min(self.archive_failures - 1, 16), longest)
        self.archive_wait_until = time.time() + wait
        log.error(
            "%s; fetching and delivering wait %gs, until %s (then one source tries again)",
            error, wait, now_iso(self.archive_wait_until),
        )  # fmt: skip

    async def _run_source(self, source: SourceConfig) -> None:
        """A source's job on this daemon's own schedule (on SQLite)."""
        at = await self.fetch_source(source)
        if at is not None:
            self._put_off(f"source:{source.id}", at)

    async def fetch_source(self, source: SourceConfig) -> float | None:
        """Fetch, store and match one source now. Returns when to try it again if that is not
        its next turn (a failure's backoff, the archive's wait, a fetch given up as the daemon
        stops), else None."""
        from monitor.pipeline import run_source

        if (wait := self._archive_closed()) is not None:
            return wait
        try:
            result = await self._tracked(
                run_source(source, self.config, self.store, self.http, commits=self.commits)
            )
        finally:
            self.probing = False  # however the try ended, the next source may try
        if result is None:
            return time.time()
        if self.metrics is not None:
            self.metrics.fetched(result)
        self._archive_result(result.archive_error)
        if result.ok:
            what = (
                "not modified"
                if result.not_modified
                else f"{result.new} new, {result.updated} updated"
            )
            n = len(result.matches)
            log.info("%s: %s, %d %s", source.id, what, n, "match" if n == 1 else "matches")
            for notice in result.notices:
                log.info("%s: note: %s", source.id, self.config.redact(notice))
        else:
            log.warning(
                "%s: failed: %s (next attempt %s)", source.id, result.error, result.next_attempt_at
            )
        if result.matches:
            self._put_off("outbox", time.time())
        return None if result.ok else iso_to_epoch(result.next_attempt_at)

    async def _check_sources(self) -> None:
        from monitor.source_health import check_sources

        async def check() -> list[Any]:
            with self.store.transaction() as db:
                return check_sources(db, self.store, self.config)

        try:
            events = await self._tracked(check())
        except Exception as exc:  # noqa: BLE001 - tried again at the next tick
            log.warning("source-health alerts could not run: %s", exc)
            return
        for event in events or []:
            log.info("%s: %s (alert %s)", event.source_id, event.event, event.alert_id)
        if events:
            self._put_off("outbox", time.time())

    async def _deliver(self) -> None:
        """Start a delivery run for each notifier with deliveries pending and none running.

        The job itself returns at once: a receiver that hangs keeps its own run busy until
        its timeouts, while a new match for another notifier goes out at once.
        """
        from monitor.outbox import due_notifiers

        if (wait := self._archive_closed(probe=False)) is not None:
            self._put_off("outbox", wait)
            return
        try:
            due = due_notifiers(self.store)
        except self.store.errors as exc:  # the archive could not be read: the next tick tries again
            log.warning("deliveries: %s", exc)
            return
        for notifier in due:
            if notifier not in self.delivering and not self.stop.is_set():
                task = asyncio.ensure_future(self._deliver_to(notifier))
                self.delivering[notifier] = task
                task.add_done_callback(lambda _, n=notifier: self.delivering.pop(n, None))

    async def _deliver_to(self, notifier: str) -> None:
        from monitor.outbox import deliver_due
        from monitor.pipeline import describe_error

        try:
            result = await self._tracked(
                deliver_due(
                    self.store, self.config, self.http, notifier=notifier, limits=self.limits
                )
            )
        except Exception as exc:  # noqa: BLE001 - the archive failed: the next run tries again
            log.warning("deliveries to %s: %s", notifier, describe_error(exc))
            return
        if result is None:
            return
        if result.archive_error or result.sent or result.retrying or result.failed:
            self._archive_result(result.archive_error)
        if result.sent or result.retrying or result.failed:
            log.info(
                "deliveries to %s: %d sent, %d to retry, %d failed",
                notifier,
                result.sent,
                result.retrying,
                result.failed,
            )
        for err in result.errors:
            if err != result.archive_error:  # said above
                log.warning("delivery error: %s", err)
