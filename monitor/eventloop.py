"""The event loop the monitor runs on: uvloop's where it is installed, asyncio's otherwise.

uvloop is asyncio's event loop written over libuv in Cython: the same API, with sockets,
timers and callbacks handled in C. A poll that gets a 304 is mostly that work (a connection
made, a request written, an answer read, the socket closed, all on a fresh connection), so
the loop's own Python code was about a third of the daemon's CPU per poll (bench_daemon.py
--profile, 2026-12-07: 38% in asyncio and selectors).

Measured with bench/bench_poll_parts.py --pace 1 --batch 33 poll (2,000 feeds, 33 polls
together each second, as the daemon makes them; CPU per poll, alternating runs, 2026-12-07):

    asyncio's loop     1,328   1,344   1,393 µs
    uvloop             1,081   1,045   1,086 µs      (a fifth less)

It is a dependency everywhere but Windows, which uvloop does not support; there, and
wherever it is missing (`pip uninstall uvloop` is the way to rule it out when chasing a
fault), the monitor runs on asyncio's loop, unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the monitor's event loop (the tests run theirs on the same)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the monitor's event loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)
