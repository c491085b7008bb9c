"""Source-health alerts: once when a source fails or falls silent too long, once when it recovers."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import pytest

from monitor.archive.sqlite import SCHEMA_VERSION, Store, iso_to_epoch
from monitor.config import ConfigError, parse_config
from monitor.http import Http
from monitor.outbox import deliver_due
from monitor.runner import fetch_pass, open_store
from monitor.source_health import check_sources
from tests.origin import Origin, Route
from tests.test_end_to_end import LAVROV, OTHER, rss

HOUR = 3600.0


def make_config(database: str, origin: Origin, alert: dict[str, Any], notify: list[str]) -> Any:
    return parse_config(
        {
            "monitor": {"database": database},
            "sources": {"tass": {"type": "feed", "url": origin.url("/rss")}},
            "alerts": {"dark": {**alert, "notify": notify}},
            "notifiers": {"hook": {"type": "webhook", "url": origin.url("/hook")}},
        },
        env={},
    )


async def fetch(config: Any, store: Store) -> Any:
    async with Http(timeout=5.0) as http:
        return await fetch_pass(config, store, http, list(config.sources.values()), deliver=False)


def check(store: Store, config: Any, at: float) -> list[str]:
    with store.transaction() as db:
        return [e.event for e in check_sources(db, store, config, now=at)]


async def test_a_failing_source_fires_once_after_failing_for_and_once_when_it_recovers(database):
    with Origin() as origin:
        origin.routes["/rss"] = Route(status=404, body=b"gone")
        config = make_config(database, origin, {"failing_for": "6h"}, ["hook"])
        store = open_store(config)
        outcome = await fetch(config, store)
        assert outcome.health == []  # failing, but not for 6 hours yet
        began = iso_to_epoch(store.source("tass")["failing_since"])
        assert check(store, config, began + 5 * HOUR) == []
        assert check(store, config, began + 6 * HOUR) == ["source_failing"]
        await fetch(config, store)  # fails again: the same episode
        assert check(store, config, began + 7 * HOUR) == []
        origin.routes["/rss"] = Route(body=rss(LAVROV))
        outcome = await fetch(config, store)
        assert [e.event for e in outcome.health] == ["source_recovered"]
        async with Http(timeout=5.0) as http:
            sent = await deliver_due(store, config, http)
        bodies = [json.loads(p.body) for p in origin.posts()]
    assert sent.sent == 2
    failing, recovered = sorted(bodies, key=lambda b: b["type"])
    assert failing["type"] == "source_failing" and failing["source"]["id"] == "tass"
    assert failing["alert"] == "dark" and "404" in failing["last_error"]
    assert failing["seconds"] >= 6 * HOUR and failing["threshold"] == 6 * HOUR
    assert recovered["type"] == "source_recovered" and recovered["condition"] == "failing"
    rows = store.db.execute("SELECT post_id, event FROM deliveries ORDER BY event").fetchall()
    assert [tuple(r) for r in rows] == [(None, "source_failing"), (None, "source_recovered")]
    store.close()


async def test_a_silent_source_fires_and_recovers_with_its_next_new_post(database):
    with Origin() as origin:
        origin.routes["/rss"] = Route(body=rss(LAVROV))
        config = make_config(database, origin, {"silent_for": "3d"}, ["hook"])
        store = open_store(config)
        await fetch(config, store)
        # Its one post came a while ago (times are to the second: the next fetch is not).
        store.db.execute("UPDATE sources SET last_new_at = '2026-01-01T00:00:00Z'")
        last_new = iso_to_epoch(store.source("tass")["last_new_at"])
        assert check(store, config, last_new + 2 * 86400) == []
        assert check(store, config, last_new + 3 * 86400) == ["source_silent"]
        await fetch(config, store)  # the same post again: still silent
        assert check(store, config, last_new + 4 * 86400) == []
        origin.routes["/rss"] = Route(body=rss(LAVROV, OTHER))
        outcome = await fetch(config, store)
    assert [e.event for e in outcome.health] == ["source_recovered"]
    assert outcome.health[0].payload["condition"] == "silent"
    (pending,) = store.db.execute("SELECT count(*) FROM deliveries WHERE status = 'pending'")
    assert pending[0] == 2
    store.close()


async def test_a_failing_source_is_reported_as_failing_not_also_as_silent(database):
    with Origin() as origin:
        origin.routes["/rss"] = Route(body=rss(LAVROV))
        config = make_config(database, origin, {"failing_for": "6h", "silent_for": "1d"}, [])
        store = open_store(config)
        await fetch(config, store)
        origin.routes["/rss"] = Route(status=500)
        await fetch(config, store)
        began = iso_to_epoch(store.source("tass")["failing_since"])
    assert check(store, config, began + 2 * 86400) == ["source_failing"]
    assert check(store, config, began + 3 * 86400) == []
    store.close()


async def test_a_pass_over_some_sources_checks_only_those(database):
    with Origin() as origin:
        origin.routes["/rss"] = Route(status=404)
        # An hour, not a second: the pass checks its own sources too, and with times kept to
        # the second a failure at 10.99 s had lasted "1 s" by 11.01 s, so the pass opened
        # the episode itself now and then, and the checks below found nothing new.
        config = make_config(database, origin, {"failing_for": "1h"}, [])
        store = open_store(config)
        await fetch(config, store)
        later = time.time() + 7200
        with store.transaction() as db:
            assert check_sources(db, store, config, source_ids=[], now=later) == []
            found = check_sources(db, store, config, source_ids=["tass"], now=later)
    assert [e.event for e in found] == ["source_failing"]
    store.close()


def test_an_alert_watches_posts_or_sources_not_both_and_needs_one() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({"alerts": {"a": {"query": "x", "failing_for": "6h"}, "b": {}}}, env={})
    assert e.value.problems == [
        "alerts.a: an alert watches posts (query) or sources (failing_for, silent_for), not both:"
        " make it two alerts",
        "alerts.b.query: missing (required; or failing_for / silent_for, for an alert on the"
        " sources themselves)",
    ]
    with pytest.raises(ConfigError) as e:
        parse_config({"alerts": {"a": {"silent_for": "3d", "max_age": "1d"}}}, env={})
    assert e.value.problems == ["alerts.a.max_age: applies to alerts on posts (query) only"]
    with pytest.raises(ConfigError) as e:
        parse_config({"alerts": {"a": {"silent_for": "3"}}}, env={})
    assert e.value.problems[0].startswith("alerts.a.silent_for: a duration needs its unit")


def test_an_archive_from_schema_version_8_takes_deliveries_without_a_post(tmp_path):
    path = tmp_path / "v8.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE sources (id TEXT PRIMARY KEY, type TEXT NOT NULL, url TEXT, last_fetched_at"
        " TEXT, last_ok_at TEXT, last_error TEXT, failures INTEGER NOT NULL DEFAULT 0,"
        " next_attempt_at TEXT, notices TEXT, state TEXT NOT NULL DEFAULT '{}', last_new_at TEXT);"
        "CREATE TABLE fetches (id INTEGER PRIMARY KEY, source_id TEXT NOT NULL, started_at TEXT"
        " NOT NULL, finished_at TEXT, ok INTEGER, http_status INTEGER, new INTEGER NOT NULL"
        " DEFAULT 0, updated INTEGER NOT NULL DEFAULT 0, error TEXT);"
        "CREATE TABLE deliveries (id TEXT PRIMARY KEY, alert_id TEXT NOT NULL, post_id TEXT NOT"
        " NULL, notifier TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER"
        " NOT NULL DEFAULT 0, last_error TEXT, created_at TEXT NOT NULL, sent_at TEXT,"
        " next_attempt_at TEXT, claimed_until TEXT, batch TEXT, payload TEXT NOT NULL,"
        " UNIQUE (alert_id, post_id, notifier));"
        "CREATE INDEX deliveries_due ON deliveries(status, next_attempt_at);"
        "INSERT INTO sources (id, type, last_ok_at, failures) VALUES"
        " ('down', 'feed', '2026-11-01T09:00:00Z', 2), ('up', 'feed', '2026-11-02T09:00:00Z', 0);"
        "INSERT INTO fetches (source_id, started_at, ok, error) VALUES"
        " ('down', '2026-11-01T08:00:00Z', 1, NULL), ('down', '2026-11-01T10:00:00Z', 0, 'HTTP 500'),"
        " ('down', '2026-11-01T11:00:00Z', 0, 'HTTP 500');"
        "INSERT INTO deliveries (id, alert_id, post_id, notifier, created_at, payload, batch)"
        " VALUES ('msg_1', 'nato', 'p1', 'hook', '2026-11-01T10:00:00Z', '{}', 'msg_1');"
        # Its post is gone (archives from before foreign keys were on): the row is kept.
        "PRAGMA user_version = 8;"
    )
    db.close()
    s = Store(path)
    assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 12
    kept = s.db.execute("SELECT id, post_id, batch, episode_id FROM deliveries").fetchall()
    assert [tuple(r) for r in kept] == [("msg_1", "p1", "msg_1", None)]
    notnull = {r[1]: r[3] for r in s.db.execute("PRAGMA table_info(deliveries)")}
    assert notnull["post_id"] == 0
    since = dict(s.db.execute("SELECT id, failing_since FROM sources").fetchall())
    assert since == {"down": "2026-11-01T10:00:00Z", "up": None}
    with s.transaction() as db:
        episode = s.open_episode(db, "dark", "down", "failing", since["down"], "HTTP 500",
                                 ["hook"], {"type": "source_failing"})  # fmt: skip
    row = s.db.execute("SELECT post_id, episode_id, event FROM deliveries WHERE episode_id")
    assert [tuple(r) for r in row] == [(None, episode, "source_failing")]
    s.close()


def test_email_of_a_source_event_says_what_happened_to_which_source() -> None:
    from monitor.notifiers.email import build_message

    event = {
        "type": "source_recovered", "alert": "dark", "condition": "failing",
        "source": {"id": "nato", "type": "feed", "url": "https://www.nato.int/rss"},
        "since": "2026-12-01T04:00:00Z", "seconds": 2 * 86400 + 3 * 3600 + 59,
        "failures": 0, "last_error": None, "last_ok_at": "2026-12-03T07:00:59Z",
        "at": "2026-12-03T07:00:59Z", "link": "https://www.nato.int/rss",
    }  # fmt: skip
    msg = build_message([event], "msg_1", "monitor@example.org", ["desk@example.org"])
    assert msg["Subject"] == "[dark] nato recovered after failing for 2d 3h"
    text = msg.get_body(("plain",)).get_content()
    assert "Source:       nato (feed)" in text and "Since:        2026-12-01 04:00 UTC" in text
    assert "https://www.nato.int/rss" in text
    digest = build_message([event, {**event, "type": "source_silent"}], "m", "a@b.c", ["d@e.f"])
    assert digest["Subject"].startswith("[2 alerts] dark: nato recovered")


def test_an_archive_from_schema_version_9_gets_source_health_too(tmp_path):
    """Version 9 added only the `daemons` table: its deliveries still need a post."""
    path = tmp_path / "v9.db"
    s = Store(path)
    s.sync_sources([("src", "feed", None)])
    s.db.executescript(
        "DROP TABLE source_episodes; DROP INDEX deliveries_episode;"
        "ALTER TABLE deliveries DROP COLUMN episode_id; ALTER TABLE deliveries DROP COLUMN event;"
        "ALTER TABLE deliveries DROP COLUMN reached; ALTER TABLE sources DROP COLUMN failing_since;"
        "PRAGMA user_version = 9;"
    )
    s.close()
    s = Store(path)
    columns = {r[1] for r in s.db.execute("PRAGMA table_info(deliveries)")}
    assert {"episode_id", "event", "reached"} <= columns
    assert s.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'source_episodes'").fetchone()
    assert s.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'daemons'").fetchone()
    assert s.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    s.close()
