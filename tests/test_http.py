"""The shared client: conditional GET, size cap, compression, User-Agent, clear errors."""

from __future__ import annotations

import pytest

from monitor.http import FetchError, Http, retry_after_seconds
from tests.origin import Origin, Route


@pytest.fixture
def origin():
    with Origin() as o:
        yield o


async def test_conditional_get_remembers_etag_and_gets_304(origin):
    origin.routes["/feed"] = Route(
        b"<rss/>", etag='"v1"', headers={"Last-Modified": "Tue, 24 Nov 2026 10:00:00 GMT"}
    )
    state: dict = {}
    async with Http() as http:
        first = await http.get(origin.url("/feed"), state=state)
        second = await http.get(origin.url("/feed"), state=state)
    assert first.status == 200 and first.body == b"<rss/>"
    assert second.not_modified
    sent = origin.gets("/feed")[1].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == "Tue, 24 Nov 2026 10:00:00 GMT"


async def test_configured_user_agent_is_sent(origin):
    origin.routes["/"] = Route(b"hi")
    async with Http(user_agent="desk-monitor/1.0 (+mailto:desk@example.org)") as http:
        await http.get(origin.url("/"))
    assert (
        origin.gets("/")[0].headers["user-agent"] == "desk-monitor/1.0 (+mailto:desk@example.org)"
    )


async def test_gzip_responses_are_decompressed(origin):
    origin.routes["/z"] = Route(b"<rss>" + b"x" * 10_000 + b"</rss>", gzip=True)
    async with Http() as http:
        r = await http.get(origin.url("/z"))
    assert r.body.startswith(b"<rss>") and len(r.body) == 10_011


async def test_body_over_the_cap_is_refused(origin):
    origin.routes["/big"] = Route(b"x" * 50_000)
    async with Http(max_body=10_000) as http:
        with pytest.raises(FetchError, match="too large"):
            await http.get(origin.url("/big"))


async def test_gzip_bomb_is_stopped_at_the_cap_after_decompression(origin):
    origin.routes["/bomb"] = Route(b"\0" * 5_000_000, gzip=True)  # ~5 KB on the wire
    async with Http(max_body=100_000) as http:
        with pytest.raises(FetchError, match="too large"):
            await http.get(origin.url("/bomb"))


async def test_error_status_is_a_readable_failure(origin):
    origin.routes["/gone"] = Route(b"", status=410)
    async with Http() as http:
        with pytest.raises(FetchError, match="HTTP 410 Gone") as e:
            await http.get(origin.url("/gone"))
    assert e.value.status == 410


async def test_retry_after_is_reported_on_429(origin):
    origin.routes["/slow"] = Route(b"", status=429, headers={"Retry-After": "120"})
    async with Http() as http:
        with pytest.raises(FetchError, match="429") as e:
            await http.get(origin.url("/slow"))
    assert e.value.retry_after == 120


async def test_timeout_is_a_readable_failure(origin):
    origin.routes["/hang"] = Route(b"late", delay=3)
    async with Http(timeout=0.5) as http:
        with pytest.raises(FetchError, match="timed out"):
            await http.get(origin.url("/hang"))


async def test_refused_connection_is_a_readable_failure():
    async with Http(timeout=2) as http:
        with pytest.raises(FetchError, match="network error"):
            await http.get("http://127.0.0.1:9/feed")


def test_retry_after_accepts_seconds_and_http_dates():
    assert retry_after_seconds("30") == 30
    assert retry_after_seconds("Tue, 24 Nov 2026 10:01:00 GMT", now=1795514400.0) == 60
    assert retry_after_seconds("soon") is None


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_retry_after_date_without_a_zone_is_gmt_whatever_the_local_zone(monkeypatch, zone):
    import time

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        for value in ("Tue, 24 Nov 2026 10:01:00 -0000", "Tue, 24 Nov 2026 10:01:00"):
            assert retry_after_seconds(value, now=1795514400.0) == 60, value
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    ("chain", "moved"),
    [
        ([301], True),
        ([308], True),
        ([301, 308], True),
        ([302], False),
        ([301, 307], False),  # a temporary hop on the way: the old address stays right
        ([], False),
    ],
)
async def test_a_redirect_chain_that_is_all_permanent_says_where_the_url_moved(
    origin, chain, moved
):
    hops = [f"/hop{i}" for i in range(len(chain))] + ["/feed"]
    for path, status, target in zip(hops, chain, hops[1:], strict=False):
        origin.routes[path] = Route(status=status, headers={"Location": target})
    origin.routes["/feed"] = Route(b"<rss/>")
    async with Http() as http:
        r = await http.get(origin.url(hops[0]))
    assert r.body == b"<rss/>"
    assert r.moved_to == (origin.url("/feed") if moved else None)


async def test_a_cookie_the_server_sets_is_sent_back_and_answers_without_one_keep_it(origin):
    # The jar reads only answers that set a cookie (monitor/http.py `_Cookies`): one that
    # sets none must neither lose nor change what an earlier answer set.
    origin.routes["/login"] = Route(b"ok", headers={"Set-Cookie": "session=abc123; Path=/"})
    origin.routes["/plain"] = Route(b"plain")
    async with Http() as http:
        await http.get(origin.url("/login"))
        await http.get(origin.url("/plain"))
        await http.get(origin.url("/plain"))
    assert "cookie" not in origin.gets("/login")[0].headers
    assert [r.headers.get("cookie") for r in origin.gets("/plain")] == ["session=abc123"] * 2
