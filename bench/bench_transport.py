"""Benchmark: CPU per conditional GET, monitor/transport.py against httpcore with a guarded backend.

    python bench/bench_transport.py [--feeds 200] [--rounds 10] [--reps 5]

Both sit under one httpx.AsyncClient, as in the monitor. The other side is httpx's own
transport, httpcore's connection pool over anyio, given an `httpcore.AsyncNetworkBackend`
that does what `Transport(guard=True)` does: resolve the host, check every address
(`netguard.check_addresses`), connect to a checked one. The feeds are bench/_server.py's, on
their own loopback addresses (allowed here: the check runs, and loopback passes it only
because the bench says so). Every request carries the feed's ETag, so every answer is a
304, as in a daemon's steady state and a warm pass. Two shapes:

- *daemon*: one request at a time, the connections kept alive between rounds, as
  `monitor run` polls sources each on its own schedule;
- *pass*: 32 at a time, as `monitor fetch` does.

Figures are the CPU time of this process (time.process_time) per request, medians of
`--reps`, the two transports alternating.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpcore  # noqa: E402
import httpx  # noqa: E402
from bench_poll import Server  # noqa: E402

from monitor import eventloop, netguard  # noqa: E402
from monitor.transport import Transport  # noqa: E402


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend, connecting only to addresses `netguard` has checked."""

    def __init__(self, allow_loopback: bool = False) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_loopback = allow_loopback

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [info[4][0] for info in infos]
        if not self._allow_loopback:
            netguard.check_addresses(host, addresses)
        return await self._inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def httpcore_transport() -> httpx.AsyncBaseTransport:
    transport = httpx.AsyncHTTPTransport()
    # The pool httpx would build, with the guarded backend under it.
    transport._pool = httpcore.AsyncConnectionPool(  # noqa: SLF001
        max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0,
        network_backend=GuardedBackend(allow_loopback=True),
    )  # fmt: skip
    return transport


async def measure(
    make: Any, urls: list[str], etags: dict[str, str], rounds: int, at_once: int
) -> float:
    """CPU µs per request over `rounds` rounds of one request per URL, `at_once` in flight."""
    async with httpx.AsyncClient(transport=make(), headers={"Accept-Encoding": "gzip"}) as client:
        gate = asyncio.Semaphore(at_once)

        async def one(url: str) -> None:
            async with gate:
                r = await client.get(url, headers={"If-None-Match": etags[url]})
                if r.status_code != 304:
                    raise SystemExit(f"{url}: {r.status_code}, expected 304")

        await asyncio.gather(*(one(u) for u in urls))  # connections open, not counted
        started = time.process_time()
        for _ in range(rounds):
            if at_once == 1:
                for u in urls:
                    await one(u)
            else:
                await asyncio.gather(*(one(u) for u in urls))
        return (time.process_time() - started) / (rounds * len(urls)) * 1e6


async def etags_of(urls: list[str]) -> dict[str, str]:
    async with httpx.AsyncClient() as client:
        return {u: (await client.get(u)).headers["etag"] for u in urls}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--feeds", type=int, default=200)
    p.add_argument("--rounds", type=int, default=10, help="requests per feed per measure")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    server = Server(args.feeds, 5, 0, 3600)
    try:
        etags = asyncio.run(etags_of(server.urls))
        results: dict[tuple[str, str], list[float]] = {}
        makers = {
            "monitor/transport.py": Transport,
            "httpcore + guarded backend": httpcore_transport,
        }
        for rep in range(args.reps):
            for shape, at_once in (("daemon", 1), ("pass", 32)):
                for name, make in makers.items():
                    # On the monitor's event loop (uvloop's), which both run on there.
                    us = eventloop.run(measure(make, server.urls, etags, args.rounds, at_once))
                    results.setdefault((name, shape), []).append(us)
            print(f"  rep {rep + 1}/{args.reps} done", flush=True)
    finally:
        server.close()
    print(f"\n{args.feeds} feeds, each answering 304; CPU µs per request, medians of {args.reps}")
    print(f"{'transport':<28} {'daemon (1 at a time)':>21} {'pass (32 at a time)':>20}")
    med = {k: statistics.median(v) for k, v in results.items()}
    for name in makers:
        print(f"{name:<28} {med[name, 'daemon']:>21.0f} {med[name, 'pass']:>20.0f}")
    ours, theirs = "monitor/transport.py", "httpcore + guarded backend"
    for shape in ("daemon", "pass"):
        saved = med[theirs, shape] - med[ours, shape]
        print(
            f"  {shape}: ours saves {saved:.0f} µs per request ({saved / med[theirs, shape]:.0%})"
        )


if __name__ == "__main__":
    main()
