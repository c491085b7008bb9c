"""HTTP politeness: a per-host limit, and one slow source never slows the others."""

from __future__ import annotations

import asyncio
import threading
import time

from monitor.http import FetchError, Http
from tests.origin import Origin, Route


async def test_at_most_per_host_requests_reach_one_host_at_once():
    active = 0
    peak = 0
    lock = threading.Lock()

    def slow(_req):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.2)
        with lock:
            active -= 1
        return Route(b"ok")

    with Origin() as origin:
        for i in range(6):
            origin.routes[f"/{i}"] = slow
        async with Http(per_host=2) as http:
            await asyncio.gather(*(http.get(origin.url(f"/{i}")) for i in range(6)))
    assert peak == 2


async def test_a_hanging_host_does_not_slow_the_others():
    with Origin() as slow, Origin(host="127.0.0.2") as fast:
        slow.routes["/feed"] = Route(b"late", delay=3)
        fast.routes["/feed"] = Route(b"ok")

        async def timed(coro):
            start = time.monotonic()
            try:
                await coro
            except FetchError as e:
                return time.monotonic() - start, str(e)
            return time.monotonic() - start, "ok"

        async with Http(timeout=1) as http:
            (t_slow, r_slow), *fast_results = await asyncio.gather(
                timed(http.get(slow.url("/feed"))),
                *(timed(http.get(fast.url("/feed"))) for _ in range(5)),
            )
    assert "timed out" in r_slow and t_slow < 2
    assert all(r == "ok" and t < 0.5 for t, r in fast_results)


def test_sources_queued_behind_a_busy_host_are_not_failed_for_waiting(tmp_path, capsys):
    """Eight feeds on one host, two at a time, each answer taking 1 s: the last waits 3 s for
    its turn, longer than its 3.6 s budget allows — but waiting is not work."""
    import json

    from monitor.cli import main
    from tests.test_end_to_end import LAVROV, rss

    with Origin() as origin:
        for i in range(8):
            origin.routes[f"/f{i}.xml"] = Route(rss(LAVROV), delay=1.0)
        cfg = tmp_path / "m.toml"
        cfg.write_text(
            f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\ntimeout = "1.2s"\nper_host = 2\n'
            + "".join(
                f'[sources.f{i}]\ntype = "feed"\nurl = "{origin.url(f"/f{i}.xml")}"\n'
                for i in range(8)
            )
        )
        code = main(["fetch", "--config", str(cfg), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0, [s["error"] for s in out["sources"]]
