"""The least a warm pass can cost on the monitor's stack, for bench_poll.py to show beside it.

    python bench/_floor.py ARCHIVE LOG_DB [--without-httpx]

Starts Python, imports asyncio, httpx and sqlite3, reads each source's validators from the
monitor's ARCHIVE, sends every conditional GET at once through one httpx client over the
monitor's own transport, writes one row per answer to LOG_DB in one transaction, and exits
without tearing the interpreter down. No configuration, archive schema, per-host limits,
deadlines, redirects or fetch log: whatever the monitor does beyond this is its own cost.

`--without-httpx` never imports httpx: each GET is h11 over a plain asyncio stream, with the
same imports otherwise. The gap between the two floors is what the stack's "one shared httpx
client" costs a warm pass before the monitor does anything of its own.
"""

# ruff: noqa: I001  (monitor before httpx, as in the monitor: it keeps httpx's CLI unimported)
from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys


async def poll(targets: list[tuple[str, dict[str, str]]]) -> list[tuple[str, int]]:
    import monitor  # noqa: F401
    import httpx
    from monitor.transport import Transport

    async with httpx.AsyncClient(transport=Transport()) as client:

        async def one(url: str, validators: dict[str, str]) -> tuple[str, int]:
            headers = {}
            if "etag" in validators:
                headers["If-None-Match"] = validators["etag"]
            if "last_modified" in validators:
                headers["If-Modified-Since"] = validators["last_modified"]
            response = await client.get(url, headers=headers)
            return url, response.status_code

        return await asyncio.gather(*(one(u, v) for u, v in targets))


async def poll_without_httpx(targets: list[tuple[str, dict[str, str]]]) -> list[tuple[str, int]]:
    from urllib.parse import urlsplit

    import h11

    async def one(url: str, validators: dict[str, str]) -> tuple[str, int]:
        u = urlsplit(url)
        reader, writer = await asyncio.open_connection(u.hostname, u.port or 80)
        conn = h11.Connection(h11.CLIENT)
        headers = [("Host", u.netloc), ("Accept-Encoding", "gzip, deflate")]
        if "etag" in validators:
            headers.append(("If-None-Match", validators["etag"]))
        if "last_modified" in validators:
            headers.append(("If-Modified-Since", validators["last_modified"]))
        request = h11.Request(method="GET", target=u.path or "/", headers=headers)
        writer.write(conn.send(request) + conn.send(h11.EndOfMessage()))
        status = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        writer.close()
        return url, status

    return await asyncio.gather(*(one(u, v) for u, v in targets))


def main() -> None:
    archive = sqlite3.connect(sys.argv[1])
    targets = [
        (url, validators)
        for (state,) in archive.execute("SELECT state FROM sources")
        for url, validators in json.loads(state).get("validators", {}).items()
    ]
    answers = asyncio.run(
        poll_without_httpx(targets) if "--without-httpx" in sys.argv[3:] else poll(targets)
    )
    log = sqlite3.connect(sys.argv[2])
    with log:
        log.execute("CREATE TABLE IF NOT EXISTS answers (url TEXT, status INTEGER)")
        log.executemany("INSERT INTO answers VALUES (?, ?)", answers)
    print(f"{len(answers)} answers: {sorted({s for _, s in answers})}")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
