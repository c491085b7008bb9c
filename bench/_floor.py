"""The least a warm pass can cost on the monitor's stack, for bench_poll.py to show beside it.

    python bench/_floor.py ARCHIVE LOG_DB

Starts Python, imports asyncio, httpx and sqlite3, reads each source's validators from the
monitor's ARCHIVE, sends every conditional GET at once through one httpx client over the
monitor's own transport, writes one row per answer to LOG_DB in one transaction, and exits
without tearing the interpreter down. No configuration, archive schema, per-host limits,
deadlines, redirects or fetch log: whatever the monitor does beyond this is its own cost.
"""

# ruff: noqa: I001  (monitor before httpx, as in the monitor: it keeps httpx's CLI unimported)
from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys

import monitor  # noqa: F401
import httpx
from monitor.transport import Transport


async def poll(targets: list[tuple[str, dict[str, str]]]) -> list[tuple[str, int]]:
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


def main() -> None:
    archive = sqlite3.connect(sys.argv[1])
    targets = [
        (url, validators)
        for (state,) in archive.execute("SELECT state FROM sources")
        for url, validators in json.loads(state).get("validators", {}).items()
    ]
    answers = asyncio.run(poll(targets))
    log = sqlite3.connect(sys.argv[2])
    with log:
        log.execute("CREATE TABLE IF NOT EXISTS answers (url TEXT, status INTEGER)")
        log.executemany("INSERT INTO answers VALUES (?, ?)", answers)
    print(f"{len(answers)} answers: {sorted({s for _, s in answers})}")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
