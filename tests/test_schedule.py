"""The daemon's schedule keeps time: each source averages `every`, its jitter spread around it."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime

from monitor.config import load_config
from monitor.schedule import Daemon
from tests.origin import Origin, Route
from tests.test_end_to_end import LAVROV, rss


async def _source_trigger(cfg) -> object:
    """The trigger the daemon gave a source's job, read from the running daemon."""
    daemon = Daemon(load_config(cfg))
    task = asyncio.create_task(daemon.run())
    try:
        for _ in range(200):
            scheduler = getattr(daemon, "scheduler", None)
            if scheduler is not None and scheduler.running:
                return scheduler.get_job("source:tass").trigger
            await asyncio.sleep(0.05)
        raise AssertionError("the daemon did not start")
    finally:
        daemon.stop.set()
        await asyncio.wait_for(task, 30)


def test_an_hour_of_runs_every_minute_averages_a_minute_with_no_drift(tmp_path):
    with Origin() as origin:
        origin.routes["/tass.xml"] = Route(rss(LAVROV))
        cfg = tmp_path / "m.toml"
        cfg.write_text(
            f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\nevery = "1m"\njitter = "6s"\n'
            f'[sources.tass]\ntype = "feed"\nurl = "{origin.url("/tass.xml")}"\n'
        )
        trigger = asyncio.run(_source_trigger(cfg))

    # An hour as APScheduler lives it: each run's time is handed back to get the next.
    first = trigger.get_next_fire_time(None, datetime.now(UTC))
    runs = [first]
    for _ in range(60 * 5):  # five hours
        runs.append(trigger.get_next_fire_time(runs[-1], runs[-1]))
    times = [r.timestamp() for r in runs]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    hour = times[60] - times[0]
    # 60 runs an hour, not 57: the jitter (6 s here) does not add up from run to run.
    assert abs(hour / 60 - 60) <= 0.1 + 1e-6, hour / 60
    # No drift: the 300th run is within half the jitter of its slot, as the first ones are,
    # so the runs of a cycle stay as close together as they began.
    for k, at in enumerate(times):
        assert abs(at - (times[0] + 60 * k)) <= 3 + 1e-6, (k, at - times[0])
    assert min(gaps) >= 60 - 6 - 1e-6 and max(gaps) <= 60 + 6 + 1e-6
    # Jitter is spread both ways around the slot, not only added.
    assert min(gaps) < 60 < max(gaps)


def test_runs_fall_on_whole_seconds_within_their_jitter_so_a_cycle_shares_its_wake_ups():
    from monitor.schedule import TICK, next_slot_time

    anchor, every, jitter = 1_800_000_000.37, 60.0, 6.0
    at = anchor
    for k in range(1, 500):
        at = next_slot_time(anchor, every, jitter, at)
        slot = anchor + k * every
        # On the daemon's shared grid, so sources due about then are polled at one wake-up...
        assert at / TICK == round(at / TICK), at
        # ...and still within half the jitter of its own slot, on both sides of it.
        assert abs(at - slot) <= jitter / 2 + 1e-6, (k, at - slot)


def test_a_jitter_narrower_than_a_tick_keeps_runs_where_they_fall():
    from monitor.schedule import next_slot_time

    anchor = 1_800_000_000.37
    assert next_slot_time(anchor, 60.0, 0.0, anchor) == anchor + 60.0  # no jitter: on its slot
    for _ in range(50):
        at = next_slot_time(anchor, 60.0, 0.5, anchor)
        assert abs(at - (anchor + 60.0)) <= 0.25 + 1e-6


def test_the_daemons_saves_go_through_its_group_commit(tmp_path):
    """Polls that end together share a transaction (each still logged as its own fetch)."""

    async def run(cfg) -> tuple[int, int]:
        daemon = Daemon(load_config(cfg))
        task = asyncio.create_task(daemon.run())
        try:
            for _ in range(400):
                commits = daemon.commits
                if commits is not None and commits.writes >= 4:
                    return commits.writes, commits.groups
                await asyncio.sleep(0.05)
            raise AssertionError("the daemon did not save its sources")
        finally:
            daemon.stop.set()
            await asyncio.wait_for(task, 30)

    with Origin() as origin:
        lines = [f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\nevery = "1h"\njitter = "0s"\n']
        for i in range(4):
            origin.routes[f"/f{i}.xml"] = Route(rss(LAVROV), etag=f'"v{i}"')
            lines.append(f'[sources.s{i}]\ntype = "feed"\nurl = "{origin.url(f"/f{i}.xml")}"\n')
        cfg = tmp_path / "m.toml"
        cfg.write_text("\n".join(lines))
        writes, groups = asyncio.run(run(cfg))
    assert writes == 4 and 1 <= groups <= 4
    with sqlite3.connect(tmp_path / "m.db") as db:
        assert db.execute("SELECT count(*) FROM fetches WHERE ok = 1").fetchone()[0] == 4
