"""A second process for the pure parsers, so a pass parses on one core while it stores on another.

A cold pass is CPU-bound: reading feeds into posts costs about as much as storing and
indexing them, and one Python process uses one core. The worker is a fresh interpreter
(`python -m monitor.parsework`), never a fork of the running event loop and its threads;
it is started before the configuration is read, so its imports overlap the parent's. Until
it says it is ready, and after it has gone, the parent parses inline: a pass never waits
for the worker and never depends on it.

Jobs and answers are length-prefixed pickles on the worker's stdin and stdout. Only the
functions in ALLOWED can be asked for; they return posts, and an answer carries the folded
form of their text too, for the parent's search index. A document that kills the worker (a
crash in a C parser) fails its own source with a readable reason; the other queued jobs are
parsed inline.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import os
import pickle
import struct
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from monitor.errors import ParseError

if TYPE_CHECKING:
    # Imported where the parent uses them: the worker needs neither, and asyncio is a fifth
    # of its start-up (its answers are late by that much, and a cold pass waits for them).
    import asyncio
    import subprocess

# monitor.text too is imported where it is used (folds, in both processes): `monitor fetch`
# imports this module before it launches the worker, and with monitor.text (email.utils
# and the rest) the launch came 15-30 ms later.

# The parsers the worker runs: pure functions, bytes and strings in, posts out. A source asks
# for the name on the left (the wrapper in monitor.sources, which imports the parsers when
# called); the worker imports the one on the right, and with it lxml, before it says it is
# ready, and not the sources' layer, which brings the event loop with it.
ALLOWED = {
    "monitor.sources.feed:parse_feed": "monitor.feeds.document:parse_feed",
    "monitor.sources.feed:read_feed": "monitor.feeds.document:read_feed",
}
_HEADER = struct.Struct("!Q")
_HELLO = -1  # the job id of the worker's first frame: imports done, ready for jobs
_INLINE = object()  # a job the parent runs itself (the worker went away first, or it took it)
# Documents handed to the worker and not yet answered, past which the parent parses the next
# small one itself, so that a worker far behind does not leave the parent idle at the end of
# a pass. Not lower: over many hosts the answers come in bursts of up to 32 (the client's
# limit), and at 16 the parent parsed 96 of bench_poll's 200 feeds in those bursts while the
# worker waited for its next ones (wall time +20% against no sharing, `--hosts many`); at 64
# it parses 10-45 of them, on either layout.
QUEUE = 64
SHARE_BELOW = 256 * 1024  # larger documents always go to the worker: here they hold the loop
# Documents at the worker at once; the rest wait in the parent, which can still take them
# back (see `idle`). 24 is about 110 ms of the worker's work on bench_poll's feeds: longer
# than the parent's longest step (a batch of matches, 25-40 ms), in which it refills nothing.
# At 8 the worker went hungry during those steps (asleep 0.15 s of a cold pass, not 0.05).
IN_FLIGHT = 24
# The parent also saves every document, its own and the worker's (about 2.5 ms each against
# 4.7 ms to parse one, in bench_timeline's cold pass): the two finish together when it
# parses about a quarter of the backlog, one for every three the worker answers. Taking one
# per answer left the worker asleep 0.17-0.27 s of the pass while the parent caught up.
TAKE_EVERY = 3


# A job: its id, the parser's key, its arguments, and the future its source waits on.
_Job = tuple[int, str, tuple[Any, ...], "asyncio.Future[Any]"]


def _key(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


class ParseWorker:
    """The parent's end: `await worker.parse(fn, *args)` runs `fn(*args)` there, or here."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._ready = False
        self._gone = False
        self._pending: dict[int, asyncio.Future[Any]] = {}  # at the worker
        self._queued: collections.deque[_Job] = collections.deque()  # not sent to it yet
        self._next_id = 0
        # Set by the pass: whether the parent has nothing else coming (every fetch is in).
        # Then every TAKE_EVERY-th answer from the worker lets the parent take the newest
        # waiting document and parse it itself. Only then: while answers still arrive, a
        # parent that parses them late slows every fetch (tried with an idle probe instead:
        # +10% on a cold pass).
        self.idle: Callable[[], bool] | None = None
        self._answered = 0
        self._writer: asyncio.WriteTransport | None = None
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    def start(cls) -> ParseWorker:
        """Launch the process (blocking, a few ms); `attach` it once the event loop runs."""
        import subprocess

        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.parsework", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        _widen(proc.stdin, proc.stdout)
        return cls(proc)

    async def attach(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        reader = asyncio.StreamReader(limit=1 << 30)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), self.proc.stdout)
        self._writer, _ = await loop.connect_write_pipe(asyncio.Protocol, self.proc.stdin)
        self._reader = asyncio.create_task(self._answers(reader))

    async def parse(self, fn: Callable[..., Any], *args: Any) -> Any:
        import asyncio

        key = _key(fn)
        if not self._ready or self._gone or self._writer is None or key not in ALLOWED:
            return fn(*args)
        if len(self._pending) + len(self._queued) >= QUEUE and _size(args) < SHARE_BELOW:
            # The worker is far behind: parsing this one here costs the parent a few ms,
            # where waiting costs it the worker's whole backlog.
            return fn(*args)
        job = self._next_id
        self._next_id += 1
        future = asyncio.get_running_loop().create_future()
        if len(self._pending) < IN_FLIGHT:
            self._send((job, key, args, future))
        else:
            self._queued.append((job, key, args, future))
        try:
            result = await future
        finally:
            self._pending.pop(job, None)
        return fn(*args) if result is _INLINE else result

    def _send(self, entry: _Job) -> None:
        assert self._writer is not None
        job, key, args, future = entry
        self._pending[job] = future
        data = pickle.dumps((job, key, args), protocol=pickle.HIGHEST_PROTOCOL)
        self._writer.write(_HEADER.pack(len(data)) + data)

    def _refill(self) -> None:
        """After an answer: the oldest waiting documents to the worker, up to IN_FLIGHT, and
        now and then the newest to the parent when it is idle."""
        queued = self._queued
        while queued and len(self._pending) < IN_FLIGHT:
            entry = queued.popleft()
            if not entry[3].done():  # else its source gave up waiting
                self._send(entry)
        self._answered += 1
        if self._answered % TAKE_EVERY:
            return
        while queued and self.idle is not None and self.idle():
            entry = queued[-1]
            if entry[3].done():
                queued.pop()
                continue
            if _size(entry[2]) < SHARE_BELOW:
                queued.pop()
                entry[3].set_result(_INLINE)  # its own source's task parses it, here
            break

    async def _answers(self, reader: asyncio.StreamReader) -> None:
        from monitor.text import remember_folds

        try:
            while True:
                size = _HEADER.unpack(await reader.readexactly(_HEADER.size))[0]
                job, ok, value, folds = pickle.loads(await reader.readexactly(size))
                if folds:
                    remember_folds(folds)
                if job == _HELLO:
                    self._ready = True
                    continue
                future = self._pending.pop(job, None)
                if future is not None and not future.done():  # else its source gave up
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
                self._refill()
        except Exception:  # noqa: BLE001 - EOF, or a frame that does not unpickle: it is gone
            pass
        finally:
            self._went_away()

    def _went_away(self) -> None:
        self._gone = True
        waiting = [f for f in self._pending.values() if not f.done()]
        if waiting:
            # The worker answers in order: the first job still waiting is the one it died on.
            code = self.proc.poll()
            why = f" (exit code {code})" if code is not None else ""
            waiting[0].set_exception(ParseError(f"the parser process died on this document{why}"))
            for future in waiting[1:]:
                future.set_result(_INLINE)
        while self._queued:  # never sent: parsed here, each by its own source
            future = self._queued.popleft()[3]
            if not future.done():
                future.set_result(_INLINE)

    async def aclose(self) -> None:
        """Detach from the event loop and kill the worker; `stop` reaps it.

        Nothing to flush in the worker (its answers are all in or abandoned): it is stopped
        outright rather than left to finish starting up or to drain its queue. Not waited
        for here: its exit (the kernel freeing tens of MB) takes 5-6 ms, which overlaps with
        the parent closing the archive when the parent reaps it last (`monitor fetch`).
        """
        import asyncio

        if self._writer is not None:
            self._writer.close()
        self.proc.kill()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def stop(self) -> None:
        """Kill the process if it still runs, and reap it (outside the event loop too)."""
        self.proc.kill()  # nothing is sent to a process already reaped
        self.proc.wait()  # at once: it was killed
        if self._writer is None:  # not attached: the pipes are still ours to close
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()


def _size(args: tuple[Any, ...]) -> int:
    return sum(len(a) for a in args if isinstance(a, bytes | str))


def _widen(*pipes: Any) -> None:
    """Give the pipes 1 MiB instead of 64 KiB (Linux), so that neither side stalls the other.

    An answer is a feed's worth of posts, tens of KiB: with the default size the worker
    blocks on its second answer whenever the parent is busy storing, and the two processes
    take turns instead of working at once. Measured on a 200-feed pass: 0.94 -> 0.86 s.
    """
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        return
    size = getattr(fcntl, "F_SETPIPE_SZ", None)
    for pipe in pipes:
        if size is not None and pipe is not None:
            with contextlib.suppress(OSError):  # over /proc/sys/fs/pipe-max-size: keep 64 KiB
                fcntl.fcntl(pipe.fileno(), size, 1 << 20)


def _resolve(key: str) -> Callable[..., Any]:
    module, _, name = key.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _start_up() -> tuple[dict[str, Callable[..., Any]], Callable[..., dict[str, str]]]:
    """What the worker imports before it says it is ready: its parsers, and the folding."""
    from monitor.text import folds_of

    return {key: _resolve(where) for key, where in ALLOWED.items()}, folds_of


def _serve() -> None:
    """The worker: answer jobs until stdin closes."""
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the answers
    parsers, folds_of = _start_up()

    def send(frame: tuple[int, bool, Any, dict[str, str] | None]) -> None:
        try:
            data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # noqa: BLE001 - an unpicklable result or error
            error = RuntimeError(f"{type(e).__name__}: {e}")
            data = pickle.dumps((frame[0], False, error, None))
        out.write(_HEADER.pack(len(data)) + data)
        out.flush()

    send((_HELLO, True, None, None))
    while True:
        header = inp.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        payload = inp.read(_HEADER.unpack(header)[0])
        job, key, args = pickle.loads(payload)
        try:
            result = parsers[key](*args)
        except ParseError as e:
            send((job, False, e, None))
        except Exception as e:  # noqa: BLE001 - a parser's bug, named, for the source's error
            send((job, False, RuntimeError(f"{type(e).__name__}: {e}"), None))
        else:
            # The parent indexes these posts next: folding their text here, on the other
            # core, takes that off the parent's (a cold pass is bound by the parent's CPU).
            # A parser answers posts, or (posts, notices).
            posts = result[0] if isinstance(result, tuple) else result
            send(
                (job, True, result, folds_of(t for p in posts for t in (p.title, p.text, p.author)))
            )


def _die_with_parent(parent: int) -> None:
    """On Linux, have the kernel end this worker when its parent ends, however it ends.

    The worker reads its jobs until stdin closes, but a parent killed outright (SIGKILL, the
    OOM killer) while the worker is deep in a 10 MB document would leave it parsing for
    nobody, and holding the terminal's process group, until it next reads.
    """
    import signal

    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: stdin's EOF is the only signal
        return
    if os.getppid() != parent:  # it ended before the line above: nobody to answer
        os._exit(0)


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _die_with_parent(int(sys.argv[1]))
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        _serve()
