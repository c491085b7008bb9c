"""The outbox: digests group a window's matches; secrets never reach the database or output."""

from __future__ import annotations

import asyncio
import json
import time

from monitor.archive import open_archive
from monitor.archive.sqlite import Store, now_iso
from monitor.cli import main
from monitor.config import parse_config
from monitor.http import Http
from monitor.outbox import deliver_due
from tests.origin import Origin, Route
from tests.test_end_to_end import LAVROV, OTHER, db_rows, rss


def seed(store: Store, n: int, notifier: str = "hook", first: int = 0) -> None:
    store.sync_sources([("a", "feed", None)])
    with store.transaction() as db:
        for i in range(first, first + n):
            db.execute(
                "INSERT INTO posts (id, source_id, external_id, first_seen_at, updated_at, rev, title) "
                "VALUES (?, 'a', ?, ?, ?, ?, ?)",
                (f"p{i}", f"e{i}", now_iso(), now_iso(), i + 1, f"NATO {i}"),
            )
            store.add_match(db, "nato", f"p{i}", f"[NATO] {i}", None, [notifier],
                            {"type": "match", "alert": "nato", "post": {"id": f"p{i}"}})  # fmt: skip


async def test_digest_waits_for_its_window_then_sends_one_message(database):
    with Origin() as hook:
        config = parse_config(
            {"monitor": {"database": database},
             "notifiers": {"hook": {"type": "webhook", "url": hook.url("/h"), "digest": "15m"}}},
            env={},
        )  # fmt: skip
        store = open_archive(config.database)
        seed(store, 3)
        async with Http() as http:
            early = await deliver_due(store, config, http)
            later = await deliver_due(store, config, http, now=time.time() + 16 * 60)
        posts = hook.posts()
    assert early.sent == 0 and later.sent == 3
    assert len(posts) == 1
    body = json.loads(posts[0].body)
    assert body["type"] == "digest" and [m["post"]["id"] for m in body["matches"]] == [
        "p0",
        "p1",
        "p2",
    ]
    assert {r[0] for r in store.db.execute("SELECT status FROM deliveries")} == {"sent"}
    store.close()


async def test_a_digest_that_failed_is_sent_again_as_it_was_and_new_matches_go_apart(database):
    """A receiver drops a webhook-id it has seen: one id must never carry other matches."""
    with Origin() as hook:
        hook.post_statuses = [503, 200]  # the first POST fails, every later one succeeds
        config = parse_config(
            {"monitor": {"database": database},
             "notifiers": {"hook": {"type": "webhook", "url": hook.url("/h"), "digest": "15m"}}},
            env={},
        )  # fmt: skip
        store = open_archive(config.database)
        seed(store, 2)
        later = time.time() + 16 * 60
        async with Http() as http:
            failed = await deliver_due(store, config, http, now=later)
            seed(store, 1, first=2)  # a match made after the digest was first tried
            retried = await deliver_due(store, config, http, force=True, now=later + 16 * 60)
        posts = hook.posts()
        store.close()
    assert failed.retrying == 2 and retried.sent == 3
    bodies = [json.loads(p.body) for p in posts]  # a digest of one match goes out as a match
    sent = [
        (p.headers["webhook-id"], [m["post"]["id"] for m in b.get("matches", [b])])
        for p, b in zip(posts, bodies, strict=True)
    ]
    # The retry and the new digest go out side by side (a few messages at a time per
    # notifier): either may arrive first.
    first_try, *later = sent
    again, new = sorted(later, key=lambda s: s[0] != first_try[0])
    assert again == first_try and first_try[1] == ["p0", "p1"]
    assert new[1] == ["p2"] and new[0] != first_try[0]


def test_secrets_from_the_environment_never_reach_the_database_or_json(
    tmp_path, capsys, monkeypatch
):
    token = "s3cr3t-feed-token-123"
    monkeypatch.setenv("FEED_TOKEN", token)
    with Origin() as origin:
        origin.routes["/feed?key=" + token] = Route(rss(LAVROV, OTHER))
        origin.routes["/down?key=" + token] = Route(b"", status=500)
        cfg = tmp_path / "m.toml"
        cfg.write_text(
            f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n'
            f'[sources.ok]\ntype = "feed"\nurl = "{origin.url("/feed")}?key=${{FEED_TOKEN}}"\n'
            f'[sources.down]\ntype = "feed"\nurl = "{origin.url("/down")}?key=${{FEED_TOKEN}}"\n'
        )
        main(["fetch", "--config", str(cfg), "--json"])
        main(["sources", "--config", str(cfg), "--json"])
        main(["alerts", "--config", str(cfg), "--json"])
    out = capsys.readouterr()
    assert token not in out.out and token not in out.err
    assert "key=***" in out.out
    dump = "\n".join(str(tuple(r)) for t in ("sources", "fetches", "posts")
                     for r in db_rows(tmp_path / "m.db", f"SELECT * FROM {t}"))  # fmt: skip
    assert token not in dump


async def test_two_processes_delivering_at_once_send_each_delivery_once(database):
    with Origin() as hook:
        hook.routes["/h"] = Route(b"")
        config = parse_config(
            {"monitor": {"database": database},
             "notifiers": {"hook": {"type": "webhook", "url": hook.url("/h")}}},
            env={},
        )  # fmt: skip
        first, second = open_archive(config.database), open_archive(config.database)
        seed(first, 5)
        async with Http() as http:
            a, b = await asyncio.gather(
                deliver_due(first, config, http), deliver_due(second, config, http)
            )
        posts = hook.posts()
    assert a.sent + b.sent == 5
    assert sorted(p.headers["webhook-id"] for p in posts) == sorted(
        r[0] for r in first.db.execute("SELECT id FROM deliveries")
    )
    first.close()
    second.close()


async def test_a_failing_delivery_is_retried_from_30s_doubling_to_1h_for_about_a_day(
    tmp_path, monkeypatch
):
    import random

    from monitor.archive.sqlite import iso_to_epoch

    clock = [float(int(time.time()))]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    monkeypatch.setattr(random, "uniform", lambda a, b: 1.0)  # the nominal schedule
    with Origin() as hook:
        hook.post_statuses = [503]
        config = parse_config(
            {"monitor": {"database": str(tmp_path / "m.db")},
             "notifiers": {"hook": {"type": "webhook", "url": hook.url("/h")}}},
            env={},
        )  # fmt: skip
        store = Store(config.database)
        seed(store, 1)
        start, waits = clock[0], []
        async with Http() as http:
            while True:
                await deliver_due(store, config, http, now=clock[0])
                status, next_at = store.db.execute(
                    "SELECT status, next_attempt_at FROM deliveries"
                ).fetchone()
                if status == "failed":
                    break
                waits.append(iso_to_epoch(next_at) - clock[0])
                clock[0] = iso_to_epoch(next_at)
        ids = {p.headers["webhook-id"] for p in hook.posts()}
        store.close()
    assert waits[:8] == [30, 60, 120, 240, 480, 960, 1920, 3600]
    assert set(waits[8:]) == {3600}
    assert 22 * 3600 <= clock[0] - start <= 26 * 3600  # then `failed`
    assert len(ids) == 1  # the same webhook-id on every retry
