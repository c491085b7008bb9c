"""The parse worker: same posts as inline, errors carried back, a dead worker costs one source."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from monitor.errors import ParseError
from monitor.parsework import IN_FLIGHT, QUEUE, SHARE_BELOW, ParseWorker
from monitor.sources.feed import parse_feed
from tests.conftest import FIXTURES

FEED = next(p for p in sorted((FIXTURES / "feeds").glob("*")) if p.suffix in (".xml", ".rss"))


@pytest.fixture
async def worker() -> AsyncIterator[ParseWorker]:
    w = ParseWorker.start()
    await w.attach()
    for _ in range(300):  # its imports take a moment; jobs before that are parsed here
        if w._ready:
            break
        await asyncio.sleep(0.02)
    assert w._ready, "the worker never said it was ready"
    yield w
    await w.aclose()
    w.stop()


async def test_the_worker_gives_the_posts_inline_parsing_gives(worker: ParseWorker) -> None:
    body = FEED.read_bytes()
    got = await worker.parse(parse_feed, body, "https://example.org/feed", None)
    assert got and got == parse_feed(body, "https://example.org/feed", None)
    assert worker._next_id == 1  # it did go through the worker


def test_posts_cross_the_pipe_whole() -> None:
    import pickle

    from monitor.models import Media, Post, Segment

    post = Post(
        "guid-1", "https://example.org/a", "Titre", "Texte", "Auteur", "video",
        "2026-12-07T10:00:00Z", "fr",
        media=(Media("https://example.org/a.jpg", "image", "image/jpeg", 640, 360, None, "content"),),
        transcript="mot", segments=(Segment(0.0, 1.5, "mot"),), extra={"views": 3},
        former_ids=("https://example.org/feeds/1",),
    )  # fmt: skip
    again = pickle.loads(pickle.dumps(post, protocol=pickle.HIGHEST_PROTOCOL))
    assert again == post and again.media[0] == post.media[0] and again.segments == post.segments


async def test_the_worker_hands_over_the_folded_text_the_index_needs(
    worker: ParseWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor import text

    monkeypatch.setattr(text, "_GIVEN", {})
    body = ("<rss><channel><item><guid>1</guid><title>Élysée : НАТО</title>"
            "<description>Łódź, İstanbul</description><author>a@b.c (Desk)</author></item>"
            "</channel></rss>").encode()  # fmt: skip
    (post,) = await worker.parse(parse_feed, body, "https://example.org/feed", None)
    handed_over = dict(text._GIVEN)
    assert handed_over == {post.title: "elysee : нато", post.text: "lodz, istanbul"}
    assert text.fold(post.title) == "elysee : нато" and post.title not in text._GIVEN  # taken


def test_handed_over_folds_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor import text

    monkeypatch.setattr(text, "_GIVEN", {})
    monkeypatch.setattr(text, "_GIVEN_MAX", 2)
    text.remember_folds({"Aé": "ae", "Bé": "be", "Cé": "ce"})
    text.remember_folds({"Dé": "de"})
    left = dict(text._GIVEN)
    assert left == {"Dé": "de"}


async def test_a_parse_error_in_the_worker_is_the_sources_parse_error(worker: ParseWorker) -> None:
    with pytest.raises(ParseError):
        await worker.parse(parse_feed, b"<html><body>not a feed", "https://example.org/", None)
    # and the worker carries on
    assert await worker.parse(parse_feed, FEED.read_bytes(), "https://example.org/feed", None)


async def test_a_worker_that_dies_fails_one_document_and_the_rest_are_parsed_here(
    worker: ParseWorker,
) -> None:
    body = FEED.read_bytes()
    worker.proc.kill()
    worker.proc.wait()
    first, second = await asyncio.gather(
        worker.parse(parse_feed, body, "https://example.org/a", None),
        worker.parse(parse_feed, body, "https://example.org/b", None),
        return_exceptions=True,
    )
    assert isinstance(first, ParseError) and "parser process died" in str(first)
    assert second == parse_feed(body, "https://example.org/b", None)
    # Gone for good: later documents are parsed here at once.
    assert await worker.parse(parse_feed, body, "https://example.org/c", None)


async def test_documents_are_parsed_here_until_the_worker_is_ready() -> None:
    w = ParseWorker.start()
    try:
        body = FEED.read_bytes()
        # Not attached yet, so not ready: no waiting for its start-up.
        assert await w.parse(parse_feed, body, "https://example.org/feed", None)
        assert w._next_id == 0
    finally:
        await w.aclose()
        w.stop()


async def test_only_listed_parsers_are_sent_to_the_worker(worker: ParseWorker) -> None:
    assert await worker.parse(len, b"abc") == 3
    assert worker._next_id == 0


async def test_past_a_backlog_the_parent_parses_small_documents_itself(worker: ParseWorker) -> None:
    # Both processes parse while documents come faster than one can: the parent no longer
    # waits for the worker's whole backlog (the tasks all start in one turn of the loop,
    # before any answer can be read).
    body = FEED.read_bytes()
    urls = [f"https://example.org/{i}" for i in range(QUEUE + 2)]
    got = await asyncio.gather(*(worker.parse(parse_feed, body, u, None) for u in urls))
    assert worker._next_id == QUEUE  # the last two were parsed here
    assert got == [parse_feed(body, u, None) for u in urls]


async def test_a_large_document_goes_to_the_worker_however_busy(worker: ParseWorker) -> None:
    small = FEED.read_bytes()
    item = "<item><guid>{}</guid><title>t</title><description>{}</description></item>"
    items = "".join(item.format(i, "x" * 1000) for i in range(SHARE_BELOW // 1000 + 1))
    large = f"<rss><channel>{items}</channel></rss>".encode()
    jobs = [worker.parse(parse_feed, small, f"https://example.org/{i}", None) for i in range(QUEUE)]
    *_, posts = await asyncio.gather(*jobs, worker.parse(parse_feed, large, "https://e.org/", None))
    assert worker._next_id == QUEUE + 1  # parsed there: here it would hold the event loop
    assert len(posts) == SHARE_BELOW // 1000 + 1


def _count_sent(worker: ParseWorker, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ids of the jobs written to the worker, and how many were there at once."""
    sent: list[int] = []
    send = worker._send

    def counted(entry: tuple) -> None:  # type: ignore[type-arg]
        send(entry)
        sent.append(entry[0])
        assert len(worker._pending) <= IN_FLIGHT

    monkeypatch.setattr(worker, "_send", counted)
    return sent


async def _parse_many(
    worker: ParseWorker, monkeypatch: pytest.MonkeyPatch, idle: Callable[[], bool] | None
) -> tuple[list[int], int]:
    """QUEUE documents at once: the ids sent to the worker, and how many there were."""
    sent = _count_sent(worker, monkeypatch)
    worker.idle = idle
    body = FEED.read_bytes()
    urls = [f"https://example.org/{i}" for i in range(QUEUE)]
    got = await asyncio.gather(*(worker.parse(parse_feed, body, u, None) for u in urls))
    assert got == [parse_feed(body, u, None) for u in urls]
    assert not worker._queued and not worker._pending
    return sent, len(urls)


@pytest.mark.parametrize("idle", [None, lambda: False], ids=["no pass", "fetches out"])
async def test_the_worker_holds_a_few_documents_and_the_rest_wait_here(
    worker: ParseWorker, monkeypatch: pytest.MonkeyPatch, idle: Callable[[], bool] | None
) -> None:
    assert IN_FLIGHT < QUEUE
    sent, n = await _parse_many(worker, monkeypatch, idle)
    assert sorted(sent) == list(range(n))  # every one went there, in order, in turn


async def test_a_parent_with_nothing_else_to_do_takes_back_the_newest_documents(
    worker: ParseWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent, n = await _parse_many(worker, monkeypatch, lambda: True)  # every fetch is in
    # The worker had the oldest; every few answers let the parent take the newest.
    assert IN_FLIGHT <= len(sent) < n
    assert sent == list(range(len(sent)))


async def test_documents_waiting_here_when_the_worker_dies_are_parsed_here(
    worker: ParseWorker,
) -> None:
    body = FEED.read_bytes()
    worker.proc.kill()
    worker.proc.wait()
    urls = [f"https://example.org/{i}" for i in range(2 * IN_FLIGHT)]
    got = await asyncio.gather(
        *(worker.parse(parse_feed, body, u, None) for u in urls), return_exceptions=True
    )
    assert isinstance(got[0], ParseError)  # the one it "died on"
    assert got[1:] == [parse_feed(body, u, None) for u in urls[1:]]


def test_the_worker_starts_without_the_parents_stack() -> None:
    # A cold pass waits for the worker's start-up: it imports the parsers and what they use,
    # not the event loop, and not what only a rare fallback needs (email.utils for a date
    # no fast form reads, hashlib for an item with neither guid nor link).
    import subprocess
    import sys

    script = (
        "import sys, monitor.parsework as pw\n"
        "pw._start_up()\n"
        "print(' '.join(m for m in ('asyncio', 'email.utils', 'hashlib', 'socket', 'httpx')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []
