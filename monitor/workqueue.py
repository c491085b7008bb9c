"""I/O: on a PostgreSQL archive, the sources shared by every daemon as Procrastinate jobs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from monitor.archive.sqlite import iso_to_epoch, now_iso
from monitor.errors import ArchiveError, SetupError
from monitor.models import Segment

if TYPE_CHECKING:
    from monitor.schedule import Daemon
    from monitor.sources.base import SourceConfig

log = logging.getLogger("monitor.run")

# Each enabled source is one job at a time in Procrastinate's queue, on the archive's own
# server (no second service): `todo` until its time, then `doing` on one daemon, which defers
# the next one before it finishes. The job's `lock` (the source) keeps two fetches of one source
# from running at once, whichever daemons hold them; its `queueing_lock` keeps a second from
# being queued. Any daemon takes whichever job falls due first, so one that is added takes its
# share, and the sources of one that is killed are never its own: only the jobs it was running
# stall, and the others find them by its silent heartbeat (Procrastinate's `procrastinate_workers`
# table) and queue them again.
QUEUE = "fetch"
TASK = "monitor.fetch_source"
# Speech to text, on whichever daemon has the `transcribe` role: one job per video, one at a
# time per daemon; the segments wait in `transcriptions` for the next fetch of the source.
STT_QUEUE = "transcribe"
STT_TASK = "monitor.transcribe"
POLL_EVERY = 1.0  # a job scheduled for later is taken at most this late (inserts are NOTIFYed)
RETRY_EVERY = (1.0, 60.0)  # a worker that lost the server starts again after this, doubling
FILL_EVERY = 15.0  # how often a daemon looks for sources without a job


def lock_of(source_id: str) -> str:
    return f"source:{source_id}"


def next_slot(slot: float, every: float, started: float) -> float:
    """The first of the source's slots (`slot + k * every`) after `started`, and at least the next
    one: a fetch that began late, after hours stopped say, takes up the rhythm without catching up."""
    return slot + every * max(1, math.floor((started - slot) / every) + 1)


# Procrastinate's fetch of the next job asks, for each due job it looks at, whether another
# job of its lock runs or waits before it. Its indexes answer that with a scan of one that
# holds every job ((id, lock)): 8 pages a look at 1,000 sources, and a fetch that looked at
# each of 759 due jobs (a plan cached while the table's statistics said it was near empty)
# read 6,000 pages, 36 ms. By lock, a look reads two or three.
JOBS_BY_LOCK = (
    "CREATE INDEX IF NOT EXISTS monitor_jobs_by_lock "
    "ON procrastinate_jobs (lock) WHERE status IN ('todo', 'doing')"
)
# Queueing this many jobs at once (a start on an empty queue) changes the table past what its
# statistics say until autovacuum comes (a minute or more): the fetch is planned on fresh ones.
ANALYZE_AFTER = 100


class WorkQueue:
    """The sources of one configuration, fetched by whichever daemon is free when one falls due."""

    def __init__(self, daemon: Daemon) -> None:
        try:
            from procrastinate import App, PsycopgConnector
        except ImportError:
            raise SetupError(
                "[monitor] database: daemons on PostgreSQL share the sources through Procrastinate,"
                " which is not installed: pip install -e '.[postgresql]'"
            ) from None
        self.daemon = daemon
        self.config = daemon.config
        sources = [s for s in self.config.sources.values() if s.enabled]
        self.sources = {s.id: s for s in sources} if "fetch" in daemon.roles else {}
        shortest = min((self.every(s) for s in sources), default=60.0)
        # A daemon silent for this long is taken for dead and its running jobs queued again:
        # half the shortest `every`, so that a source it was fetching misses one turn at most,
        # and at most half a minute; never below 2.5 s (five missed heartbeats), as a daemon
        # parsing a big document can hold its event loop for a few hundred milliseconds.
        self.stalled_after = min(30.0, max(2.5, shortest / 2))
        self.beat_every = self.stalled_after / 5  # also how often the others look
        self.app = App(
            connector=PsycopgConnector(
                conninfo=daemon.store.url,  # type: ignore[attr-defined]
                min_size=1,
                max_size=4,
                kwargs={"application_name": "outlet-monitor (job queue)"},
            )
        )
        self.app.task(name=TASK, queue=QUEUE)(self._job)
        self.app.task(name=STT_TASK, queue=STT_QUEUE)(self._transcribe)
        self.workers: list[asyncio.Task[None]] = []
        self.checker: asyncio.Task[None] | None = None
        self.local_stt: Any = None  # this daemon's speech-to-text process, for `transcribe`

    def every(self, source: SourceConfig) -> float:
        return source.every or self.config.monitor.every

    def jitter(self, source: SourceConfig) -> float:
        return min(self.config.monitor.jitter, self.every(source) / 10)

    async def start(self) -> None:
        """Make Procrastinate's tables if the archive has none, queue what is missing, start."""
        try:
            self._install()
            for handler in logging.getLogger().handlers:
                handler.addFilter(_one_line)
            await self.app.open_async()
            if "fetch" in self.daemon.roles:
                await self._fill()
        except Exception as exc:  # noqa: BLE001 - the daemon can't run without its queue
            raise ArchiveError(
                f"[monitor] database = {self.daemon.store.path}: the job queue could not start:"
                f" {_oneline(exc)}"
            ) from None
        if "fetch" in self.daemon.roles:
            from monitor import stt

            stt.use(SharedTranscriber(self))
            self.workers.append(
                asyncio.ensure_future(self._work(QUEUE, self.config.monitor.concurrency))
            )
            self.checker = asyncio.ensure_future(self._keep_checking())
            log.info(
                "sharing %d sources with the other daemons on this archive "
                "(Procrastinate queue %r)", len(self.sources), QUEUE,
            )  # fmt: skip
        if "transcribe" in self.daemon.roles:
            self.workers.append(asyncio.ensure_future(self._work(STT_QUEUE, 1)))
            log.info(
                "transcribing the videos the daemons queue (Procrastinate queue %r)", STT_QUEUE
            )

    async def stop(self, grace: float) -> None:
        """Stop taking jobs; the running ones get `grace` seconds (the daemon drains them)."""
        if self.checker is not None:
            self.checker.cancel()
        for worker in self.workers:
            worker.cancel()  # Procrastinate stops taking jobs and waits for those it runs
        if self.workers:
            await asyncio.wait(self.workers, timeout=grace + 5)
        with contextlib.suppress(Exception):
            await self.app.close_async()

    def _install(self) -> None:
        """Procrastinate's schema, once per database: under the archive's write lock, so that
        two daemons starting at once do not both make it."""
        from procrastinate.schema import SchemaManager

        store = self.daemon.store
        with store.transaction() as db:
            (have,) = db.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if have is None:
                db.con.execute(SchemaManager.get_schema())
                log.info("made Procrastinate's tables in the archive's database")
            db.execute(JOBS_BY_LOCK)

    async def _work(self, queue: str, concurrency: int) -> None:
        """Procrastinate's worker for `queue`, started again (with backoff) when it loses the
        server."""
        wait = RETRY_EVERY[0]
        while not self.daemon.stop.is_set():
            started = time.monotonic()
            try:
                await self.app.run_worker_async(
                    queues=[queue],
                    name=f"{self.daemon.ident}/{queue}",
                    concurrency=concurrency,
                    fetch_job_polling_interval=POLL_EVERY,
                    update_heartbeat_interval=self.beat_every,
                    stalled_worker_timeout=self.stalled_after,
                    shutdown_graceful_timeout=self.daemon.grace,
                    install_signal_handlers=False,  # the daemon's handlers stop it
                    delete_jobs="always",  # the `fetches` table is the history
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the server went away: try again
                log.warning("job queue: %s; trying again in %gs", _oneline(exc), wait)
            else:
                if self.daemon.stop.is_set():
                    return
                log.warning("job queue: the worker stopped; starting it again in %gs", wait)
            if time.monotonic() - started > 60:
                wait = RETRY_EVERY[0]  # it ran a while: this is a new outage
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.daemon.stop.wait(), wait)
            wait = min(wait * 2, RETRY_EVERY[1])

    async def _keep_checking(self) -> None:
        """Look for the jobs of dead daemons at each heartbeat, and for sources without a job
        (a job whose successor could not be queued, a source added to the configuration)
        every FILL_EVERY."""
        filled = time.monotonic()
        while True:
            await asyncio.sleep(self.beat_every * random.uniform(0.8, 1.2))
            try:
                await self._rescue()
                if time.monotonic() - filled >= FILL_EVERY:
                    filled = time.monotonic()
                    await self._fill()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next check tries again
                log.warning("job queue: cannot check the sources' jobs: %s", _oneline(exc))

    async def _rescue(self) -> None:
        """The jobs a dead daemon was running are ended, and their sources queued again at once,
        ahead of the jobs that are merely due. Every daemon looks: ending a job is done once."""
        from procrastinate import exceptions, jobs

        manager = self.app.job_manager
        stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=self.stalled_after)
        for job in stalled:
            try:
                # Ended rather than retried: it may already have queued its successor. A
                # transcription is asked for again by the next fetch of its source.
                await manager.finish_job(job, status=jobs.Status.FAILED, delete_job=True)
            except exceptions.ProcrastinateException:
                continue  # another daemon ended it first
            if job.task_name != TASK:
                continue
            source = self.sources.get(job.task_kwargs.get("source", ""))
            if source is None:
                continue
            log.warning("%s: the daemon fetching it went silent; queued again", source.id)
            now = time.time()
            with contextlib.suppress(exceptions.AlreadyEnqueued):
                await manager.defer_job_async(self._job_for(source, now, now, priority=1))

    async def _fill(self) -> None:
        """Every source without a job gets one. The queueing lock lets only one of two daemons
        that queue the same source at once succeed."""
        from procrastinate import exceptions

        manager = self.app.job_manager
        rows = await self.app.connector.execute_query_all_async(
            "SELECT DISTINCT lock FROM procrastinate_jobs "
            "WHERE queue_name = %(queue)s AND status IN ('todo', 'doing')",
            queue=QUEUE,
        )
        queued = {r["lock"] for r in rows}
        missing = [s for sid, s in self.sources.items() if lock_of(sid) not in queued]
        if not missing:
            return
        states = {r["id"]: r for r in self.daemon.store.source_rows()}
        from monitor.schedule import next_due_at

        now = time.time()
        new = []
        for source in missing:
            due = iso_to_epoch(next_due_at(states.get(source.id), self.every(source))) or now
            # Sources due now are spread over a few seconds rather than fetched at once.
            slot = max(due, now) + random.uniform(0, min(self.jitter(source), 5.0))
            new.append(self._job_for(source, slot, slot))
        done = 0
        for i in range(0, len(new), 500):
            batch = new[i : i + 500]
            try:
                await manager.batch_defer_jobs_async(batch)
                done += len(batch)
            except exceptions.AlreadyEnqueued:  # another daemon queued some: one by one
                for job in batch:
                    with contextlib.suppress(exceptions.AlreadyEnqueued):
                        await manager.defer_job_async(job)
                        done += 1
        if done:
            log.info("job queue: queued %d sources that had no job", done)
        if done >= ANALYZE_AFTER:
            await self.app.connector.execute_query_async("ANALYZE procrastinate_jobs")

    def _job_for(self, source: SourceConfig, slot: float, at: float, priority: int = 0) -> Any:
        from procrastinate import jobs

        return jobs.Job(
            id=None,
            queue=QUEUE,
            priority=priority,
            lock=lock_of(source.id),
            queueing_lock=lock_of(source.id),
            task_name=TASK,
            task_kwargs={"source": source.id, "slot": slot},
            scheduled_at=datetime.fromtimestamp(at, UTC),
        )

    async def _job(self, source: str, slot: float) -> str:
        """One fetch of `source`, then its next job: at its next slot, or its retry time."""
        config = self.sources.get(source)
        if config is None:
            # Removed from this daemon's configuration (or not yet added): no next job. A daemon
            # whose configuration has it queues it again at its next check.
            return "not in this daemon's configuration"
        started = time.time()
        retry_at: float | None = started  # a fetch that never ran is due at once
        try:
            retry_at = await self.daemon.fetch_source(config)
        finally:
            await self._defer_next(config, slot, started, retry_at)
        return "done"

    async def _defer_next(
        self, source: SourceConfig, slot: float, started: float, retry_at: float | None
    ) -> None:
        from procrastinate import exceptions

        if retry_at is not None:
            # A failure's backoff, or a fetch the daemon gave up as it stopped (due now, for
            # another daemon): the slots start again from there.
            slot = at = retry_at
        else:
            # From when the fetch began, not ended: a slow fetch is followed by its next turn.
            slot = next_slot(slot, self.every(source), started)
            jitter = self.jitter(source)
            at = slot + random.uniform(-jitter / 2, jitter / 2)
        try:
            await self.app.job_manager.defer_job_async(self._job_for(source, slot, at))
        except exceptions.AlreadyEnqueued:
            pass  # a check found it without a job while it ran, and queued one
        except Exception as exc:  # noqa: BLE001 - the next check queues it
            log.warning("%s: its next fetch could not be queued: %s", source.id, _oneline(exc))
        else:
            log.debug("%s: next at %s", source.id, now_iso(at))

    # -- speech to text -------------------------------------------------------------------

    async def _transcribe(self, key: str, url: str, model: str, language: str | None) -> str:
        """Speech to text for one video, in this daemon's worker process, its segments (or
        the reason it failed) left in `transcriptions` for the next fetch of the source."""
        from monitor import stt

        if self.local_stt is None:
            self.local_stt = stt.Transcriber()
        self.local_stt.submit(key, url, model=model, language=language)
        while (result := self.local_stt.take(key)) is None:
            await asyncio.sleep(0.5)  # the process works; the event loop goes on
        failed = isinstance(result, str)
        payload = {"error": result} if failed else [[s.start, s.end, s.text] for s in result]
        with self.daemon.store.transaction(ordered=False) as db:
            db.execute(
                "INSERT INTO transcriptions (key, result, made_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET result = excluded.result, "
                "made_at = excluded.made_at",
                (key, json.dumps(payload, ensure_ascii=False), now_iso()),
            )
        if failed:
            log.warning("%s: speech to text failed: %s", url, result)
        else:
            log.info("%s: transcribed, %d segments", url, len(result))
        return "failed" if failed else "done"

    async def defer_transcription(
        self, key: str, url: str, model: str, language: str | None
    ) -> None:
        from procrastinate import exceptions, jobs

        job = jobs.Job(
            id=None, queue=STT_QUEUE, lock=f"stt:{key}", queueing_lock=f"stt:{key}",
            task_name=STT_TASK,
            task_kwargs={"key": key, "url": url, "model": model, "language": language},
        )  # fmt: skip
        try:
            await self.app.job_manager.defer_job_async(job)
        except exceptions.AlreadyEnqueued:
            pass
        except Exception as exc:  # noqa: BLE001 - the next fetch of the source asks again
            log.warning("%s: speech to text could not be queued: %s", url, _oneline(exc))


class SharedTranscriber:
    """stt.Transcriber's submit, busy and take, over the job queue: the videos a fetch hands
    to speech to text are transcribed by a daemon with the `transcribe` role (on this machine
    or another), and the segments wait in `transcriptions` until a fetch of the source, on
    any daemon, takes them."""

    def __init__(self, queue: WorkQueue) -> None:
        self.queue = queue
        self.store = queue.daemon.store
        self.deferring: dict[str, asyncio.Task[None]] = {}

    def submit(self, key: str, url: str, *, model: str, language: str | None = None) -> None:
        if self.busy(key):
            return
        task = asyncio.get_running_loop().create_task(
            self.queue.defer_transcription(key, url, model, language)
        )
        self.deferring[key] = task
        task.add_done_callback(lambda _: self.deferring.pop(key, None))

    def busy(self, key: str) -> bool:
        """Queued or running on some daemon. A job that ended without a result (its daemon
        died) is not: the fetch asks for it again."""
        if key in self.deferring:
            return True
        row = self.store.db.execute(
            "SELECT 1 FROM procrastinate_jobs WHERE lock = ? AND status IN ('todo', 'doing')",
            (f"stt:{key}",),
        ).fetchone()
        return row is not None

    def take(self, key: str) -> list[Segment] | str | None:
        row = self.store.db.execute(
            "DELETE FROM transcriptions WHERE key = ? RETURNING result", (key,)
        ).fetchone()
        if row is None:
            return None
        payload = json.loads(row[0])
        if isinstance(payload, dict):
            return str(payload.get("error") or "failed")
        return [Segment(*s) for s in payload]


def _one_line(record: logging.LogRecord) -> bool:
    """Procrastinate's own log lines, without their tracebacks: a connection the server dropped
    is a line in the daemon's log, not a page (the worker is started again, see `_work`)."""
    if record.name.startswith("procrastinate") and record.exc_info:
        exc = record.exc_info[1]
        record.msg, record.args = f"{record.getMessage()}: {_oneline(exc) if exc else ''}", None
        record.exc_info = record.exc_text = None
    return True


def _oneline(exc: BaseException) -> str:
    """An error on one line; Procrastinate's ("Database error.") with the driver's reason."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    cause = exc.__cause__
    return f"{text} ({' '.join(str(cause).split())})" if cause is not None else text
