"""One real `monitor fetch` pass over every fault at once: each bounded, named, and contained.

All the faulty sources and a healthy feed share one pass (and one loopback host), so the
suite proves what a user needs: the pass ends within the deadline, each fault is recorded
against its own source with a reason a person can read, and the healthy source is stored as
if nothing happened.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from monitor.archive.sqlite import iso_to_epoch
from tests.faults.conftest import Pass, fetch, install_routes, source_toml, write_config
from tests.faults.hostile import Hostile, Tripwire

TIMEOUT = 1.0  # each source's `timeout`; a fetch's deadline
DEADLINE = 3 * TIMEOUT  # the pipeline's bound on a whole collection
SLACK = 0.75  # scheduling and parsing on a loaded CI machine

T, D = TIMEOUT, DEADLINE
ENTITIES = r"^refusing XML with entity declarations \(<!ENTITY at byte \d+\)$"
NESTED = r"^refusing XML nested more than 256 levels deep$"
TOO_LARGE = r"^response too large: more than 1000000 bytes$"
TOO_MANY = r"^too many redirects \(more than 5\), last to http://127\.0\.0\.1:\d+/"
RESET = r"^network error: connection reset by peer$"
REFUSED = r"^refused redirect from http://127\.0\.0\.1:\d+/[\w-]+ to "
METADATA = r"169\.254\.169\.254 is a cloud metadata address"

# id: (type, path, the reason `monitor sources` must show, seconds the source may take)
FAILING: dict[str, tuple[str, str, str, float]] = {
    "hang-after-headers": ("feed", "/hang-after-headers", r"^timed out after 1s$", T),
    "hang-before-headers": ("feed", "/hang-before-headers", r"^timed out after 1s$", T),
    "trickle": ("feed", "/trickle", r"^timed out after 1s$", T),
    "http-404": ("feed", "/status/404", r"^HTTP 404 Not Found$", T),
    "http-410": ("feed", "/status/410", r"^HTTP 410 Gone$", T),
    "http-429": ("feed", "/status/429", r"^HTTP 429 Too Many Requests \(Retry-After 120s\)$", T),
    "http-500": ("feed", "/status/500", r"^HTTP 500 Internal Server Error$", T),
    "http-503": ("feed", "/status/503", r"^HTTP 503 Service Unavailable \(Retry-After 120s\)$", T),
    "http-503-date": ("feed", "/status/503-date", r"^HTTP 503 .*\(Retry-After (29\d|300)s\)$", T),
    "http-429-forever": ("feed", "/status/429-forever", r"\(Retry-After 86400s\)$", T),
    "reset": ("feed", "/reset", RESET, T),
    "reset-mid-body": ("feed", "/reset-mid-body", RESET, T),
    "redirect-loop": ("feed", "/loop", TOO_MANY + "loop$", T),
    "redirect-6-hops": ("feed", "/hops/6", TOO_MANY + "healthy.xml$", T),
    "endless": ("feed", "/endless", TOO_LARGE, T),
    "endless-gzip": ("feed", "/endless-gzip", TOO_LARGE, T),
    "huge-declared": (
        "feed", "/huge-declared",
        r"^response too large: 53687091200 bytes declared, limit 1000000$", T,
    ),
    "garbage": ("feed", "/garbage", r"^broken HTTP response: illegal status line", T),
    "garbage-body": ("feed", "/garbage-body", r"^not a feed: no RSS, Atom or JSON Feed", D),
    "laughs-feed": ("feed", "/laughs.xml", ENTITIES, D),
    "laughs-sitemap": ("sitemap", "/laughs-sitemap.xml", ENTITIES, D),
    "xxe-feed": ("feed", "/xxe.xml", ENTITIES, D),
    "xxe-sitemap": ("sitemap", "/xxe-sitemap.xml", ENTITIES, D),
    "nested-xml": ("feed", "/nested.xml", NESTED, D),
    "nested-xml-sitemap": ("sitemap", "/nested.xml", NESTED, D),
    "nested-json": ("feed", "/nested.json", r"^not a JSON Feed: invalid JSON \(maximum recurs", D),
    "to-metadata": (
        "feed", "/to-metadata",
        REFUSED + r"http://169\.254\.169\.254/latest/meta-data/iam/: " + METADATA + "$", T,
    ),
    "to-mapped-metadata": (
        "feed", "/to-mapped-metadata",
        REFUSED + r"http://\[::ffff:a9fe:a9fe\]/latest/meta-data/: ::ffff:a9fe:a9fe is a cloud "
        r"metadata address \(as IPv4 169\.254\.169\.254\)$", T,
    ),
    "to-private": (
        "feed", "/to-private", REFUSED + r"http://10\.0\.0\.1/admin: 10\.0\.0\.1 is a private", T,
    ),
    "to-other-port": (
        "feed", "/to-other-port",
        REFUSED + r"http://127\.0\.0\.1:\d+/secret: 127\.0\.0\.1 is a loopback address$", T,
    ),
    "to-file": (
        "feed", "/to-file",
        REFUSED + r"file:/+etc/passwd: refusing a file: URL \(only http and https", T,
    ),
}  # fmt: skip
# Sources whose schedule is short enough that Retry-After, not the backoff, sets the next try.
SHORT_EVERY = {"http-429", "http-503", "http-503-date", "http-429-forever", "http-500"}
HEALTHY = {
    "healthy": ("feed", "/healthy.xml"),
    "redirect-5-hops": ("feed", "/hops/5"),  # five redirects are allowed
    "invalid-utf8": ("feed", "/invalid-utf8.xml"),
    "nested-html": ("page", "/nested.html"),
    "private-links": ("page", "/private-links.html"),
    "external-dtd": ("feed", "/external-dtd.xml"),
    "external-dtd-broken": ("feed", "/external-dtd-broken.xml"),
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pass]:
    """The pass, once for the module: every test below reads its outcome."""
    tmp = tmp_path_factory.mktemp("faults")
    with pytest.MonkeyPatch.context() as mp, Hostile() as other, Hostile() as server:
        wire = Tripwire()
        wire.install(mp)
        install_routes(server, other.port)
        toml = ""
        for sid, (kind, path, _, _) in FAILING.items():
            extra = {"every": "10s"} if sid in SHORT_EVERY else {}
            toml += source_toml(sid, kind, server.url(path), **extra)
        for sid, (kind, path) in HEALTHY.items():
            page = {"item": "article", "link": "h2 a", "summary": "p"} if kind == "page" else {}
            toml += source_toml(sid, kind, server.url(path), **page)
        config = write_config(tmp, toml, timeout=f"{TIMEOUT:g}s")
        outcome = fetch(config)
        outcome.hits = list(server.hits) + list(other.hits)
        outcome.wire = wire
    yield outcome


def test_pass_exits_1_and_nothing_escapes(run: Pass) -> None:
    assert run.code == 1, run.err
    assert "Traceback" not in run.err
    assert not run.escapes, (run.escapes.tracebacks(), run.escapes.unraisable)
    doc = run.doc
    assert doc["ok"] is False
    assert {s["id"] for s in doc["sources"]} == set(FAILING) | set(HEALTHY)


def test_whole_pass_ends_within_one_deadline(run: Pass) -> None:
    # Concurrent sources: the pass takes as long as its slowest source, which is bounded.
    assert run.seconds < DEADLINE + SLACK


def test_nothing_reached_a_private_address_or_another_port(run: Pass) -> None:
    assert run.wire.attempts == []
    assert "/secret" not in run.hits


@pytest.mark.parametrize("sid", FAILING)
def test_faulty_source_fails_with_a_readable_reason_within_its_bound(run: Pass, sid: str) -> None:
    _, _, reason, bound = FAILING[sid]
    result = run.result(sid)
    assert result["ok"] is False
    assert re.search(reason, result["error"]), result["error"]
    assert "internal error" not in result["error"] and "Traceback" not in result["error"]
    assert result["seconds"] <= bound + SLACK
    row = run.row(sid)
    assert row["last_error"] == result["error"]
    assert row["failures"] == 1 and row["last_ok_at"] is None
    assert row["next_attempt_at"] is not None
    assert run.posts(sid) == []


@pytest.mark.parametrize("sid", ["hang-after-headers", "hang-before-headers", "trickle"])
def test_hanging_sources_are_cut_at_the_fetch_deadline_not_before(run: Pass, sid: str) -> None:
    # Waiting the full second shows the deadline did the cutting, not some other error.
    assert run.result(sid)["seconds"] >= TIMEOUT * 0.9


def test_healthy_feed_is_stored_normally(run: Pass) -> None:
    result = run.result("healthy")
    assert result["ok"] is True and result["new"] == 2 and result["error"] is None
    assert result["seconds"] < TIMEOUT  # it never waited on the hanging sources
    assert [p["title"] for p in run.posts("healthy")] == [
        "Ceasefire talks resume",
        "Parliament votes",
    ]
    row = run.row("healthy")
    assert row["failures"] == 0 and row["last_error"] is None and row["last_ok_at"]


def test_five_redirects_are_followed(run: Pass) -> None:
    assert run.result("redirect-5-hops")["new"] == 2


def next_attempt_in(run: Pass, sid: str) -> float:
    return iso_to_epoch(run.row(sid)["next_attempt_at"]) - run.finished


@pytest.mark.parametrize("sid", ["http-429", "http-503"])
def test_retry_after_sets_the_next_attempt(run: Pass, sid: str) -> None:
    # `every` is 10s, so without Retry-After the next try would be ~10s away.
    wait = next_attempt_in(run, sid)
    assert 115 <= wait <= 125


def test_retry_after_as_an_http_date_is_honoured(run: Pass) -> None:
    wait = next_attempt_in(run, "http-503-date")
    assert 290 <= wait <= 305


def test_absurd_retry_after_is_capped_at_a_day(run: Pass) -> None:
    wait = next_attempt_in(run, "http-429-forever")
    assert 86_000 <= wait <= 86_405


def test_failure_without_retry_after_backs_off_by_the_schedule(run: Pass) -> None:
    wait = next_attempt_in(run, "http-500")
    assert 7 <= wait <= 12  # every 10s, ±10% jitter, second-resolution timestamps


def test_external_entity_is_never_read(run: Pass) -> None:
    texts = [str(v) for sid in run.doc["sources"] for p in run.posts(sid["id"]) for v in p.values()]
    assert not any("root:" in t for t in texts)


def test_invalid_utf8_feed_is_read_leniently(run: Pass) -> None:
    # Not a failure: the lenient parser replaces the bad bytes and the post is worth keeping.
    result = run.result("invalid-utf8")
    assert result["ok"] is True and result["new"] == 1
    (post,) = run.posts("invalid-utf8")
    assert post["url"] == "https://news.example/utf8" and "news" in post["title"]


def test_deeply_nested_html_page_is_parsed_not_a_failure(run: Pass) -> None:
    # lexbor builds the tree without recursion; a post 10,000 levels down is still a post.
    assert run.result("nested-html")["ok"] is True
    (post,) = run.posts("nested-html")
    assert post["title"] == "Deep story" and post["url"].endswith("/deep")


def test_private_links_in_a_page_are_stored_as_data_and_not_fetched(run: Pass) -> None:
    result = run.result("private-links")
    assert result["ok"] is True and result["new"] == 3
    urls = {p["url"] for p in run.posts("private-links")}
    assert "http://169.254.169.254/latest/meta-data/iam/" in urls
    assert any(u.startswith("http://127.0.0.1:") and u.endswith("/secret") for u in urls)


@pytest.mark.parametrize("sid", ["external-dtd", "external-dtd-broken"])
def test_external_dtd_is_never_fetched_and_its_entities_stay_inert(run: Pass, sid: str) -> None:
    # Both XML paths (lxml for well-formed documents, feedparser for broken ones) read the
    # item without loading the DTD, so the entity it would declare is never defined.
    assert "/evil.dtd" not in run.hits
    assert run.result(sid)["ok"] is True
    (post,) = run.posts(sid)
    assert "root:" not in (post["title"] or "") and post["title"].endswith("dtd")
