"""One pass for one source: stored, matched once, failures recorded, the others unaffected."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import ClassVar

import pytest

from monitor import sources as registry
from monitor.archive.sqlite import Store
from monitor.config import parse_config
from monitor.http import FetchError, Http
from monitor.match import stored_snippets
from monitor.models import Post
from monitor.pipeline import run_source
from monitor.runner import fetch_pass
from monitor.sources.base import Collected, FetchContext, SourceConfig


@dataclass(frozen=True, kw_only=True)
class FakeSource(SourceConfig):
    """Serves whatever the test put in `FakeSource.feeds[name]`, or raises it."""

    name: str
    feeds: ClassVar[dict[str, list[Post] | Exception]] = {}
    # A fetch of a gated source takes its answer, then waits for the gate before it returns
    # (a slow answer): `held` says it has its answer.
    gates: ClassVar[dict[str, asyncio.Event]] = {}
    held: ClassVar[set[str]] = set()

    async def collect(self, ctx: FetchContext) -> Collected:
        ctx.state["calls"] = ctx.state.get("calls", 0) + 1
        found = self.feeds[self.name]
        if isinstance(found, Exception):
            raise found
        gate = self.gates.pop(self.name, None)
        if gate is not None:
            self.held.add(self.name)
            await gate.wait()
        return Collected(list(found), http_status=200)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.TYPES, "fake", "tests.test_pipeline:FakeSource")
    FakeSource.feeds.clear()
    FakeSource.gates.clear()
    FakeSource.held.clear()
    config = parse_config(
        {
            "monitor": {"database": str(tmp_path / "m.db")},
            "sources": {"a": {"type": "fake", "name": "a"}, "b": {"type": "fake", "name": "b"}},
            "alerts": {
                "troops": {"query": "NATO troops Ukraine", "notify": ["hook"]},
                "only-b": {"query": "Lavrov", "sources": ["b"]},
            },
            "notifiers": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}},
        },
        env={},
    )
    store = Store(config.database)
    store.sync_sources((s.id, s.type, s.describe()) for s in config.sources.values())
    yield config, store
    store.close()


async def run(config, store, sid):
    async with Http() as http:
        return await run_source(config.sources[sid], config, store, http)


LAVROV = Post("t1", "https://tass.com/politics/1", title="Lavrov laughs",
              text="Asked about NATO troops in Ukraine, Lavrov laughed.")  # fmt: skip


async def test_new_matching_post_records_a_match_and_a_pending_delivery(env):
    config, store = env
    FakeSource.feeds["a"] = [LAVROV, Post("t2", None, title="Weather")]
    r = await run(config, store, "a")
    assert r.ok and r.new == 2
    assert [(m.alert_id, m.snippet) for m in r.matches] == [
        ("troops", "Asked about [NATO] [troops] in [Ukraine], Lavrov laughed.")
    ]
    d = store.db.execute("SELECT * FROM deliveries").fetchone()
    assert d["status"] == "pending" and d["notifier"] == "hook" and d["id"].startswith("msg_")
    payload = json.loads(d["payload"])
    assert (
        payload["post"]["title"] == "Lavrov laughs"
        and payload["link"] == "https://tass.com/politics/1"
    )


async def test_a_snippet_waits_for_a_reader_unless_the_match_is_sent(env, tmp_path):
    # A busy pass matches thousands of posts nobody is sent or shown: their snippets were most
    # of a match's cost. A sent match is given its snippet in its frozen payload; any other
    # keeps the alert's query, and its snippet is made from it when it is read.
    _, store = env
    config = parse_config(
        {
            "monitor": {"database": str(tmp_path / "m.db")},
            "sources": {"a": {"type": "fake", "name": "a"}},
            "alerts": {
                "sent": {"query": "NATO troops Ukraine", "notify": ["hook"]},
                "kept": {"query": '"Lavrov laughed" OR Antalya', "notify": []},
            },
            "notifiers": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}},
        },
        env={},
    )
    FakeSource.feeds["a"] = [LAVROV]
    r = await run(config, store, "a")
    rows = {
        x["alert_id"]: x
        for x in store.db.execute("SELECT alert_id, snippet, query FROM matches").fetchall()
    }
    sent = "Asked about [NATO] [troops] in [Ukraine], Lavrov laughed."
    assert rows["sent"]["snippet"] == sent and rows["sent"]["query"] == "NATO troops Ukraine"
    (payload,) = [json.loads(x[0]) for x in store.db.execute("SELECT payload FROM deliveries")]
    assert payload["snippet"] == sent
    assert (
        rows["kept"]["snippet"] is None and rows["kept"]["query"] == '"Lavrov laughed" OR Antalya'
    )
    assert {m.alert_id: m.snippet for m in r.matches} == {"sent": sent, "kept": None}
    pid = r.matches[0].post_id
    assert stored_snippets(store.db, r.matches) == {
        ("sent", pid): sent,
        ("kept", pid): "Asked about NATO troops in Ukraine, [Lavrov] [laughed].",
    }


async def test_alert_fires_once_per_post_across_passes(env):
    config, store = env
    FakeSource.feeds["a"] = [LAVROV]
    await run(config, store, "a")
    edited = Post("t1", LAVROV.url, title="Lavrov laughs (updated)", text=LAVROV.text)
    FakeSource.feeds["a"] = [edited]
    r = await run(config, store, "a")
    assert r.updated == 1 and r.matches == []
    assert store.db.execute("SELECT count(*) FROM matches").fetchone()[0] == 1
    assert store.db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 1


async def test_edit_that_makes_a_post_match_fires_the_alert_then(env):
    config, store = env
    FakeSource.feeds["a"] = [Post("t1", None, title="Talks in Antalya", text="No comment.")]
    assert (await run(config, store, "a")).matches == []
    FakeSource.feeds["a"] = [
        Post("t1", None, title="Talks in Antalya", text="On NATO troops in Ukraine: no.")
    ]
    r = await run(config, store, "a")
    assert [m.alert_id for m in r.matches] == ["troops"]


async def test_alert_restricted_to_sources_ignores_the_others(env):
    config, store = env
    FakeSource.feeds["a"] = [LAVROV]
    r = await run(config, store, "a")
    assert "only-b" not in [m.alert_id for m in r.matches]


async def test_failing_source_is_recorded_and_the_others_carry_on(env):
    config, store = env
    FakeSource.feeds["a"] = FetchError("HTTP 503 Service Unavailable", status=503, retry_after=600)
    FakeSource.feeds["b"] = [LAVROV]
    ra = await run(config, store, "a")
    rb = await run(config, store, "b")
    assert not ra.ok and ra.error == "HTTP 503 Service Unavailable" and ra.http_status == 503
    assert rb.ok and rb.new == 1
    src = store.source("a")
    assert src["last_error"] == "HTTP 503 Service Unavailable" and src["failures"] == 1
    assert src["next_attempt_at"] >= ra.next_attempt_at  # Retry-After honoured
    f = store.db.execute(
        "SELECT ok, http_status, error FROM fetches WHERE source_id = 'a'"
    ).fetchone()
    assert tuple(f) == (0, 503, "HTTP 503 Service Unavailable")


async def test_a_bug_in_a_parser_is_a_source_failure_not_a_crash(env):
    config, store = env
    FakeSource.feeds["a"] = KeyError("guid")
    r = await run(config, store, "a")
    assert not r.ok and r.error == "internal error: KeyError: 'guid'"


async def test_success_resets_failures_and_saves_state(env):
    config, store = env
    FakeSource.feeds["a"] = FetchError("timed out")
    await run(config, store, "a")
    FakeSource.feeds["a"] = [LAVROV]
    await run(config, store, "a")
    src = store.source("a")
    assert (src["failures"], src["last_error"]) == (0, None)
    # A failed fetch does not persist the state it changed; the successful one does.
    assert json.loads(src["state"]) == {"calls": 1}


async def test_a_pass_matches_once_after_its_sources_and_reports_matches_by_source(env):
    config, store = env
    FakeSource.feeds["a"] = [LAVROV]
    FakeSource.feeds["b"] = [Post("b1", None, title="Lavrov in Antalya")]
    async with Http() as http:
        outcome = await fetch_pass(config, store, http, list(config.sources.values()),
                                   deliver=False)  # fmt: skip
    by_source = {r.source_id: [m.alert_id for m in r.matches] for r in outcome.sources}
    assert by_source == {"a": ["troops"], "b": ["only-b"]}
    assert store.db.execute("SELECT count(*) FROM matches").fetchone()[0] == 2


@pytest.mark.parametrize("above", [0, 10**9], ids=["own-index", "archive-index"])
async def test_a_batch_matches_the_same_on_its_own_index_and_the_archives(env, monkeypatch, above):
    config, store = env
    monkeypatch.setattr(Store, "PASS_INDEX_ABOVE", above)
    FakeSource.feeds["a"] = [LAVROV, Post("t0", None, title="NATO troops leave Ukraine")]
    FakeSource.feeds["b"] = [Post("b1", None, title="Lavrov in Antalya")]
    sources = list(config.sources.values())
    async with Http() as http:
        await fetch_pass(config, store, http, sources, deliver=False)
        FakeSource.feeds["a"] = [
            *FakeSource.feeds["a"],
            Post("t3", None, text="Ukraine: NATO troops"),
        ]
        FakeSource.feeds["b"] = [Post("b1", None, title="Lavrov in Antalya, updated"),
                                 Post("b2", None, title="Weather")]  # fmt: skip
        outcome = await fetch_pass(config, store, http, sources, deliver=False)
    found = {r.source_id: [(m.alert_id, m.snippet) for m in r.matches] for r in outcome.sources}
    # The edited b1 had matched already; t0 and LAVROV are unchanged: only t3 is new.
    assert found == {"a": [("troops", "[Ukraine]: [NATO] [troops]")], "b": []}
    assert store.db.execute("SELECT count(*) FROM matches").fetchone()[0] == 4


async def test_posts_a_dead_pass_saved_but_never_matched_are_matched_once_by_the_next(env):
    config, store = env
    FakeSource.feeds["a"] = [LAVROV]
    FakeSource.feeds["b"] = []
    async with Http() as http:
        # A pass saves each source, then matches the lot; this one dies in between.
        r = await run_source(config.sources["a"], config, store, http, match=False)
    assert r.new == 1 and r.matches == []
    store.close()
    store = Store(config.database)
    try:
        for expected in (1, 0):
            async with Http() as http:
                outcome = await fetch_pass(config, store, http, [config.sources["b"]],
                                           deliver=False)  # fmt: skip
            assert outcome.sources[0].matches == []  # not b's: a's, recorded all the same
            assert store.db.execute("SELECT count(*) FROM matches").fetchone()[0] == 1
            assert store.db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 1
            assert (
                expected == 1
                or store.db.execute(
                    "SELECT indexed_rev = (SELECT max(rev) FROM posts) FROM search_state"
                ).fetchone()[0]
            )
    finally:
        store.close()


def one_source_and_alert(tmp_path, alert_id: str, alert: dict) -> tuple:
    """A configuration of fake source `a`, one alert and a webhook, and its archive."""
    config = parse_config(
        {
            "monitor": {"database": str(tmp_path / "m.db")},
            "sources": {"a": {"type": "fake", "name": "a"}},
            "alerts": {alert_id: alert},
            "notifiers": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}},
        },
        env={},
    )
    store = Store(config.database)
    store.sync_sources([("a", "fake", None)])
    return config, store


@pytest.mark.parametrize("batched", [False, True], ids=["per-source", "per-pass"])
async def test_max_per_hour_records_matches_but_sends_no_more(tmp_path, monkeypatch, batched):
    monkeypatch.setitem(registry.TYPES, "fake", "tests.test_pipeline:FakeSource")
    config, store = one_source_and_alert(
        tmp_path, "storm", {"query": "NATO", "notify": ["hook"], "max_per_hour": 2}
    )
    FakeSource.feeds["a"] = [Post(f"n{i}", None, title=f"NATO item {i}") for i in range(5)]
    if batched:
        async with Http() as http:
            (r,) = (await fetch_pass(config, store, http, [config.sources["a"]])).sources
    else:
        r = await run(config, store, "a")
    assert len(r.matches) == 5
    assert store.db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 2
    held = "alert storm: max_per_hour (2) reached, 3 matches recorded but not sent"
    assert r.notices == [held]
    assert json.loads(store.source("a")["notices"]) == [held]  # `monitor sources` shows it
    store.close()


async def test_max_per_hour_is_a_rolling_hour_and_held_matches_are_never_sent_later(
    tmp_path, monkeypatch
):
    monkeypatch.setitem(registry.TYPES, "fake", "tests.test_pipeline:FakeSource")
    clock = [float(int(time.time()))]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    config, store = one_source_and_alert(
        tmp_path, "storm", {"query": "NATO", "notify": ["hook"], "max_per_hour": 2}
    )

    def sent() -> list[str]:
        return sorted(
            r[0]
            for r in store.db.execute(
                "SELECT p.external_id FROM deliveries d JOIN posts p ON p.id = d.post_id"
            )
        )

    posts = [Post(f"n{i}", None, title=f"NATO item {i}") for i in range(3)]
    FakeSource.feeds["a"] = list(posts)
    await run(config, store, "a")
    assert sent() == ["n0", "n1"]  # n2 held
    clock[0] += 59 * 60  # the same rolling hour, though a clock hour may have turned
    FakeSource.feeds["a"] = posts = [*posts, Post("n3", None, title="NATO item 3")]
    await run(config, store, "a")
    assert sent() == ["n0", "n1"]
    clock[0] += 2 * 60  # an hour after the first two were matched
    FakeSource.feeds["a"] = [*posts, Post("n4", None, title="NATO item 4")]
    r = await run(config, store, "a")
    assert sent() == ["n0", "n1", "n4"]  # n2 and n3 stay recorded, searchable and unsent
    assert store.db.execute("SELECT count(*) FROM matches").fetchone()[0] == 5
    assert r.notices == []
    store.close()


async def test_a_pass_whose_alerts_cannot_run_says_so_and_the_next_pass_runs_them(env, monkeypatch):
    import sqlite3

    import monitor.runner

    config, store = env
    FakeSource.feeds["a"] = [LAVROV]
    FakeSource.feeds["b"] = []

    disk_full = True

    def match_pending(*args):
        if disk_full:
            raise sqlite3.OperationalError("database or disk is full")
        return real(*args)

    real = monitor.runner.match_pending
    monkeypatch.setattr(monitor.runner, "match_pending", match_pending)
    async with Http() as http:
        outcome = await fetch_pass(config, store, http, [config.sources["a"]], deliver=False)
    assert not outcome.ok and all(r.ok for r in outcome.sources)
    assert "database or disk is full" in (outcome.match_error or "")
    assert store.db.execute("SELECT count(*) FROM posts").fetchone()[0] == 1
    disk_full = False
    async with Http() as http:
        outcome = await fetch_pass(config, store, http, [config.sources["b"]], deliver=False)
    assert outcome.ok and outcome.match_error is None
    assert store.db.execute("SELECT count(*) FROM matches").fetchone()[0] == 1


async def test_an_edited_post_stays_searchable_while_its_pass_is_still_running(env):
    config, store = env
    FakeSource.feeds["a"] = [Post("t1", None, title="Talks in Antalya")]
    async with Http() as http:
        await fetch_pass(config, store, http, [config.sources["a"]], deliver=False)
        FakeSource.feeds["a"] = [Post("t1", None, title="Lavrov laughs in Antalya")]
        # Saved as a pass saves each source, before the pass's batch:
        await run_source(config.sources["a"], config, store, http, match=False)
    rows = store.db.execute(
        "SELECT p.title FROM posts_fts JOIN posts p ON p.rev = posts_fts.rowid "
        "WHERE posts_fts MATCH 'antalya'"
    ).fetchall()
    assert [r[0] for r in rows] == ["Lavrov laughs in Antalya"]


@pytest.mark.parametrize("batched", [False, True], ids=["per-source", "per-pass"])
async def test_max_age_records_matches_on_old_posts_but_sends_only_the_news(
    tmp_path, monkeypatch, batched
):
    from monitor.archive.sqlite import now_iso

    monkeypatch.setitem(registry.TYPES, "fake", "tests.test_pipeline:FakeSource")
    config, store = one_source_and_alert(
        tmp_path, "news", {"query": "NATO", "notify": ["hook"], "max_age": "2d", "max_per_hour": 2}
    )
    day = 86400
    FakeSource.feeds["a"] = [
        Post("old1", None, title="NATO backlog 1", published_at=now_iso(time.time() - 30 * day)),
        Post("old2", None, title="NATO backlog 2", published_at=now_iso(time.time() - 3 * day)),
        Post("new", None, title="NATO today", published_at=now_iso(time.time() - 3600)),
        Post("undated", None, title="NATO undated"),  # no date to judge it by: news
    ]
    if batched:
        async with Http() as http:
            (r,) = (await fetch_pass(config, store, http, [config.sources["a"]])).sources
    else:
        r = await run(config, store, "a")
    assert len(r.matches) == 4  # all recorded, and searchable
    sent = {
        row[0]
        for row in store.db.execute(
            "SELECT p.external_id FROM deliveries d JOIN posts p ON p.id = d.post_id"
        )
    }
    assert sent == {"new", "undated"}  # and the old ones used none of max_per_hour's two
    held = "alert news: 2 matches on posts older than max_age (2d) recorded but not sent"
    assert r.notices == [held]
    store.close()


@pytest.mark.parametrize("batched", [False, True], ids=["per-source", "per-pass"])
async def test_the_same_link_from_a_second_source_is_recorded_but_not_sent_again(env, batched):
    config, store = env
    FakeSource.feeds["a"] = [LAVROV]
    # The sitemap of the same site: its own item id, the same article (here with a fragment).
    FakeSource.feeds["b"] = [
        Post("sm-1", "https://tass.com/politics/1#comments", title="Lavrov on NATO troops",
             text="NATO troops in Ukraine: Lavrov laughed."),
        Post("sm-2", "https://tass.com/politics/2", title="NATO troops Ukraine, day two"),
    ]  # fmt: skip
    if batched:
        async with Http() as http:
            outcome = await fetch_pass(config, store, http, [config.sources["a"], config.sources["b"]],
                                       deliver=False)  # fmt: skip
        a, b = outcome.sources
    else:
        a, b = await run(config, store, "a"), await run(config, store, "b")
    troops = [[m for m in r.matches if m.alert_id == "troops"] for r in (a, b)]
    assert [len(t) for t in troops] == [1, 2]  # each post is matched, and searchable
    sent = [
        r[0]
        for r in store.db.execute(
            "SELECT p.external_id FROM deliveries d JOIN posts p ON p.id = d.post_id ORDER BY 1"
        )
    ]
    assert sent == ["sm-2", "t1"]
    assert b.notices == [
        "alert troops: 1 match on links it already matched from a recorded but not sent"
    ]


async def test_older_answer_saved_after_a_newer_one_does_not_bring_the_post_back(env):
    # Two processes fetch one source at once; the one that started first is answered first
    # but saves last. Its answer must not overwrite what the later fetch saved: the post would
    # go back to its old text (a spurious version, and an alert for an edit that never was),
    # then forward again at the next fetch. Its posts that are not in the archive yet are kept.
    config, store = env
    FakeSource.feeds["a"] = [
        Post("t1", None, title="Talks in Antalya", text="No comment."),
        Post("t3", None, title="Old news"),
    ]
    await run(config, store, "a")
    # t3 was saved before the older fetch began (a minute ago): only the older answer has
    # it (the newer one is a page that it fell off), and its edit there is news.
    store.db.execute("UPDATE posts SET updated_at = '2026-01-01T00:00:00Z'")
    other = Store(config.database)  # the other process: its own connection to the file
    try:
        FakeSource.feeds["a"] = [
            Post("t1", None, title="Talks in Antalya", text="On NATO troops in Ukraine: no."),
            Post("t2", None, title="Only the older answer has it"),
            Post("t3", None, title="Old news, corrected"),
        ]
        FakeSource.gates["a"] = gate = asyncio.Event()
        older = asyncio.create_task(run(config, store, "a"))
        while "a" not in FakeSource.held:
            await asyncio.sleep(0.01)
        FakeSource.feeds["a"] = [
            Post("t1", None, title="Talks in Antalya", text="Talks went well, no word on troops.")
        ]
        newer = await run(config, other, "a")
        assert newer.ok and newer.updated == 1
        assert (await run(config, other, "a")).updated == 0  # the source's state moves on
        gate.set()
        r = await older
    finally:
        other.close()
    assert r.ok and r.new == 1 and r.updated == 1 and r.matches == []
    assert any("newer" in n for n in r.notices), r.notices
    versions = store.db.execute(
        "SELECT v.text FROM post_versions v JOIN posts p ON p.id = v.post_id "
        "WHERE p.external_id = 't1' ORDER BY v.version"
    ).fetchall()
    assert [v[0] for v in versions] == ["No comment.", "Talks went well, no word on troops."]
    titles = [t[0] for t in store.db.execute("SELECT title FROM posts ORDER BY external_id")]
    assert titles == ["Talks in Antalya", "Only the older answer has it", "Old news, corrected"]
    assert store.db.execute("SELECT count(*) FROM matches").fetchone()[0] == 0
    # The newer fetches' validators and cursors are kept, not the older answer's.
    assert json.loads(store.source("a")["state"]) == {"calls": 3}
