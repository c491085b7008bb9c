"""Benchmark: the CPU of one conditional poll (a 304) in one process, layer by layer.

    python bench/bench_poll_parts.py [--feeds 2000] [--n 2000] [--reps 2] [MODE ...]
    python bench/bench_poll_parts.py --pace 0.03 poll            # one poll every 30 ms
    python bench/bench_poll_parts.py --pace 1 --batch 33 poll    # 33 together every second

bench/_server.py's feeds (each on its own loopback address) are fetched once (200), then
polled conditionally, each poll on a fresh connection as in the daemon. A MODE is one layer
of the daemon's poll, each including the ones before it:

- raw: asyncio streams alone (connect, write the request, read the answer, close);
- transport: monitor/transport.py called directly, with an httpx.Request;
- client: the same under httpx.AsyncClient.stream;
- get: monitor.http.Http.get, as a source calls it;
- poll: the whole pipeline.run_source (the store's side included);
- store: the store's side of a 304 alone (its statements and commit).

Figures are this process's CPU time (time.process_time) per poll. With --pace the polls are
made --batch at a time with a sleep between, as a daemon makes them: on a VM, each wake-up
of an idle process costs CPU of its own (bench/README.md, 2026-12-07, session 2). With
--loop asyncio the polls run on asyncio's own event loop rather than the monitor's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))
from bench_poll import Server  # noqa: E402

MODES = ("raw", "transport", "client", "get", "poll", "store")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("modes", nargs="*", help=f"any of {', '.join(MODES)} (default: all)")
    p.add_argument("--feeds", type=int, default=2000)
    p.add_argument("--n", type=int, default=2000, help="polls per mode and rep")
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--pace", type=float, default=0.0, help="seconds of sleep between batches")
    p.add_argument("--batch", type=int, default=1, help="polls run together")
    p.add_argument("--loop", choices=("monitor", "asyncio"), default="monitor",
                   help="the monitor's event loop (uvloop's: monitor.eventloop) or asyncio's")  # fmt: skip
    args = p.parse_args()
    args.modes = args.modes or list(MODES)
    if unknown := set(args.modes) - set(MODES):
        p.error(f"unknown mode {', '.join(sorted(unknown))}: choose from {', '.join(MODES)}")
    server = Server(args.feeds, 20, 0.0, 3600)
    try:
        if args.loop == "asyncio":
            asyncio.run(run(args, server))
        else:
            from monitor import eventloop

            eventloop.run(run(args, server))
    finally:
        server.close()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


async def run(args: argparse.Namespace, server: Server) -> None:
    import httpx

    from monitor.archive.sqlite import SaveResult, now_iso
    from monitor.config import load_config
    from monitor.match import match_pending
    from monitor.pipeline import run_source
    from monitor.runner import make_http, open_store
    from monitor.transport import Transport

    work = Path(tempfile.mkdtemp(prefix="bench-poll-parts-"))
    lines = [f'[monitor]\ndatabase = "{work / "m.db"}"\nevery = "1m"\nallow_private = true\n']
    lines += [
        f'[sources.s{i:05d}]\ntype = "feed"\nurl = "{u}"\n' for i, u in enumerate(server.urls)
    ]
    (work / "m.toml").write_text("\n".join(lines))
    config = load_config(work / "m.toml")
    store, http = open_store(config), make_http(config)
    sources = list(config.sources.values())
    for source in sources:  # the first fetch of each: a 200, its validators saved
        await run_source(source, config, store, http)
    transport, client = Transport(), httpx.AsyncClient(transport=Transport())

    def etag(source: object) -> str:
        return str(store.source_state(source.id)["validators"][source.url]["etag"])

    async def raw(source: object) -> None:
        u = urlsplit(source.url)
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        writer.write(f"GET {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\n"
                     f"If-None-Match: {etag(source)}\r\n\r\n".encode())  # fmt: skip
        head = await reader.read(65536)
        writer.close()
        assert b" 304 " in head[:20], head[:80]

    async def direct(source: object) -> None:
        request = httpx.Request(
            "GET", source.url, headers={"If-None-Match": etag(source)},
            extensions={"timeout": {"connect": 10.0, "read": 20.0}},
        )  # fmt: skip
        resp = await transport.handle_async_request(request)
        async for _ in resp.stream:
            pass
        assert resp.status_code == 304

    async def via_client(source: object) -> None:
        async with client.stream("GET", source.url, headers={"If-None-Match": etag(source)}) as r:
            async for _ in r.aiter_raw():
                pass
        assert r.status_code == 304

    async def get(source: object) -> None:
        resp = await http.get(source.url, state=store.source_state(source.id), timeout=20.0)
        assert resp.status == 304

    async def poll(source: object) -> None:
        assert (await run_source(source, config, store, http)).not_modified

    async def store_side(source: object) -> None:
        started_at = now_iso()
        before, state = store.fetch_start(source.id)
        with store.transaction(ordered=False) as db:
            store.newer_fetch_saved(db, source.id, started_at, before)
            store.finish_fetch_ok(db, source.id, started_at, 304, SaveResult(), state, [])
            match_pending(db, store, config)

    layers = {"raw": raw, "transport": direct, "client": via_client, "get": get, "poll": poll,
              "store": store_side}  # fmt: skip
    gc.collect()
    gc.freeze()  # as the daemon does after start-up
    shape = f"{args.batch} at a time, {args.pace:g} s apart" if args.pace else "back to back"
    print(f"{args.n} polls a mode, {shape}, over {len(sources)} feeds", flush=True)
    for rep in range(args.reps):
        for mode in args.modes:
            fn = layers[mode]
            cpu, wall = time.process_time(), time.perf_counter()
            for k in range(0, args.n, args.batch):
                batch = [sources[(rep * args.n + k + j) * 7 % len(sources)]
                         for j in range(args.batch)]  # fmt: skip
                await asyncio.gather(*(fn(s) for s in batch))
                if args.pace:
                    await asyncio.sleep(args.pace)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(f"  rep {rep + 1}: {mode:9s} {cpu / args.n * 1e6:7.0f} µs of CPU per poll "
                  f"(wall {wall / args.n * 1e6:.0f} µs)", flush=True)  # fmt: skip
    await client.aclose()
    await transport.aclose()
    await http.aclose()
    store.close()


if __name__ == "__main__":
    main()
