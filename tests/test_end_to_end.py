"""The whole product with real parts: feeds from a real HTTP server, alerts to real receivers."""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
import json
import re
import sqlite3
import time
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from monitor.cli import main
from tests.notifiers.conftest import free_port
from tests.origin import Origin, Route, serve_briefing

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def rss(*items: tuple[str, str, str]) -> bytes:
    body = "".join(
        f"<item><title>{t}</title><link>https://tass.com/politics/{g}</link><guid>{g}</guid>"
        f"<pubDate>Thu, 19 Nov 2026 11:52:14 +0300</pubDate><description>{d}</description></item>"
        for g, t, d in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>TASS</title>'
        f"<link>https://tass.com</link>{body}</channel></rss>"
    ).encode()


LAVROV = ("1941234", "Lavrov laughs off question on Macron's remark",
          "Asked in Antalya about NATO troops in Ukraine, Lavrov laughed.")  # fmt: skip
OTHER = ("1941200", "Russian economy grows", "GDP grew in the third quarter.")


def write_config(path: Path, origin: Origin, *, hook: str | None = None, smtp_port: int | None = None,
                 extra: str = "") -> Path:  # fmt: skip
    notify = []
    notifiers = ""
    if hook:
        notify.append("hook")
        notifiers += f'[notifiers.hook]\ntype = "webhook"\nurl = "{hook}"\nsecret = "{SECRET}"\n\n'
    if smtp_port:
        notify.append("desk")
        notifiers += (
            f'[notifiers.desk]\ntype = "email"\nhost = "127.0.0.1"\nport = {smtp_port}\n'
            'security = "none"\nfrom = "monitor@example.org"\nto = ["desk@example.org"]\n\n'
        )
    path.write_text(
        f"""
[monitor]
database = "{path.parent / "monitor.db"}"
every = "1h"
timeout = "5s"

[sources.tass]
type = "feed"
url = "{origin.url("/tass.xml")}"

[sources.broken]
type = "feed"
url = "{origin.url("/broken.xml")}"

[alerts.nato-troops-ukraine]
query = 'NATO troops Ukraine'
notify = {json.dumps(notify)}

{notifiers}
{extra}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def origin():
    with Origin() as o:
        o.routes["/tass.xml"] = Route(rss(LAVROV, OTHER), etag='"v1"',
                                      headers={"Content-Type": "application/rss+xml"})  # fmt: skip
        o.routes["/broken.xml"] = Route(b"<html>Internal error</html>", status=500)
        yield o


def db_rows(path: Path, sql: str) -> list[sqlite3.Row]:
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_fetch_stores_matches_and_reports_the_failed_source(tmp_path, origin, capsys):
    cfg = write_config(tmp_path / "m.toml", origin)
    code = main(["fetch", "--config", str(cfg), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1  # one source failed, the other was stored
    by_id = {s["id"]: s for s in out["sources"]}
    assert by_id["tass"]["ok"] and by_id["tass"]["new"] == 2
    assert by_id["broken"]["error"] == "HTTP 500 Internal Server Error"
    assert [m["alert"] for m in by_id["tass"]["matches"]] == ["nato-troops-ukraine"]
    src = db_rows(tmp_path / "monitor.db", "SELECT * FROM sources WHERE id = 'broken'")[0]
    assert src["failures"] == 1 and src["last_error"] == "HTTP 500 Internal Server Error"


def test_second_fetch_costs_a_304_and_changes_nothing(tmp_path, origin, capsys):
    cfg = write_config(tmp_path / "m.toml", origin)
    main(["fetch", "tass", "--config", str(cfg)])
    before = db_rows(tmp_path / "monitor.db", "SELECT * FROM posts ORDER BY id")
    capsys.readouterr()
    assert main(["fetch", "tass", "--config", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sources"][0]["not_modified"] and out["sources"][0]["http_status"] == 304
    assert [
        dict(r) for r in db_rows(tmp_path / "monitor.db", "SELECT * FROM posts ORDER BY id")
    ] == [dict(r) for r in before]
    assert origin.gets("/tass.xml")[1].headers["if-none-match"] == '"v1"'


def test_webhook_that_fails_then_recovers_gets_each_delivery_once_with_the_same_id(
    tmp_path, origin, capsys
):
    with Origin() as hook:
        hook.post_statuses = [500, 503, 200]
        cfg = write_config(tmp_path / "m.toml", origin, hook=hook.url("/hook"))
        assert main(["fetch", "tass", "--config", str(cfg)]) == 0
        assert db_rows(tmp_path / "monitor.db", "SELECT status FROM deliveries")[0][0] == "pending"
        main(["alerts", "--retry", "--config", str(cfg)])  # 503: still pending
        main(["alerts", "--retry", "--config", str(cfg)])  # 200: sent
        main(["alerts", "--retry", "--config", str(cfg)])  # nothing left to send
        posts = hook.posts()
    assert len(posts) == 3
    assert len({p.headers["webhook-id"] for p in posts}) == 1
    d = db_rows(tmp_path / "monitor.db", "SELECT * FROM deliveries")
    assert len(d) == 1 and d[0]["status"] == "sent" and d[0]["attempts"] == 3
    last = posts[-1]
    signed = (
        f"{last.headers['webhook-id']}.{last.headers['webhook-timestamp']}.".encode() + last.body
    )
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert last.headers["webhook-signature"] == f"v1,{expected}"
    payload = json.loads(last.body)
    assert payload["type"] == "match" and payload["alert"] == "nato-troops-ukraine"
    assert payload["post"]["url"] == "https://tass.com/politics/1941234"
    assert "[NATO] [troops] in [Ukraine]" in payload["snippet"]


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"


def test_email_alert_reaches_a_real_smtp_server(tmp_path, origin, capsys):
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        cfg = write_config(tmp_path / "m.toml", origin, smtp_port=port)
        assert main(["fetch", "tass", "--config", str(cfg)]) == 0
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert msg["Subject"] == "[nato-troops-ukraine] Lavrov laughs off question on Macron's remark"
    assert "https://tass.com/politics/1941234" in msg.get_body(("plain",)).get_content()


def test_search_finds_stored_posts_with_the_query_language(tmp_path, origin, capsys):
    cfg = write_config(tmp_path / "m.toml", origin)
    main(["fetch", "tass", "--config", str(cfg), "-q"])
    capsys.readouterr()
    assert main(["search", "lavrov -economy", "--config", str(cfg), "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["title"] for h in hits] == ["Lavrov laughs off question on Macron's remark"]
    assert main(["search", "NATO (troops", "--config", str(cfg)]) == 2
    assert "column" in capsys.readouterr().err


def test_search_says_its_times_are_utc_and_which_are_only_when_a_post_was_seen(
    tmp_path, capsys, monkeypatch
):
    from monitor import sources as registry

    monkeypatch.setitem(registry.TYPES, "fake", "tests.test_pipeline:FakeSource")
    from monitor.models import Post
    from tests.test_pipeline import FakeSource

    FakeSource.feeds["a"] = [
        Post(
            "1",
            "https://e.org/1",
            title="Macron at the Élysée",
            published_at="2018-02-12T07:00:00Z",
        ),
        Post("2", "https://e.org/2", title="Asgari ücret: Macron writes"),  # no date given
    ]
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n[sources.a]\ntype = "fake"\nname = "a"\n'
    )
    main(["fetch", "--config", str(cfg), "-q"])
    capsys.readouterr()
    main(["search", "macron", "--config", str(cfg)])
    heads = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert "2018-02-12 07:00 UTC  a  Macron at the Élysée" in heads
    [seen] = [line for line in heads if line.endswith("Asgari ücret: Macron writes")]
    assert re.fullmatch(r"seen \d{4}-\d\d-\d\d \d\d:\d\d UTC  a  Asgari ücret: Macron writes", seen)


def test_check_lists_every_problem_and_exits_2(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        '[sources.a]\ntype = "feed"\n[sources.b]\ntype = "feed"\nurl = "https://e.org"\nevery = "often"\n'
    )
    assert main(["check", "--config", str(cfg)]) == 2
    out = capsys.readouterr().out
    assert "sources.a.url: missing (required)" in out and "sources.b.every:" in out


def test_fetch_with_an_unknown_source_id_is_a_usage_error(tmp_path, origin, capsys):
    cfg = write_config(tmp_path / "m.toml", origin)
    assert main(["fetch", "nope", "--config", str(cfg)]) == 2


def test_sources_command_shows_state_and_next_due(tmp_path, origin, capsys):
    cfg = write_config(tmp_path / "m.toml", origin)
    main(["fetch", "--config", str(cfg), "-q"])
    capsys.readouterr()
    assert main(["sources", "--config", str(cfg), "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tass"]["posts"] == 2 and rows["tass"]["failures"] == 0
    assert rows["broken"]["failures"] == 1 and "500" in rows["broken"]["last_error"]
    assert rows["tass"]["next_due"] > time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def test_sources_command_shows_what_the_last_fetch_had_to_say(tmp_path, capsys, monkeypatch):
    from monitor import sources as registry

    monkeypatch.setitem(registry.TYPES, "fake", "tests.test_pipeline:FakeSource")
    from monitor.models import Post
    from tests.test_pipeline import FakeSource

    FakeSource.feeds["a"] = [Post("1", None, title="t")]
    real_collect = FakeSource.collect

    async def noisy(self, ctx):
        ctx.log.append("transcripts need the stt extra: pip install 'outlet-monitor[stt]'")
        return await real_collect(self, ctx)

    monkeypatch.setattr(FakeSource, "collect", noisy)
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n[sources.a]\ntype = "fake"\nname = "a"\n'
    )
    main(["fetch", "--config", str(cfg), "-q"])
    capsys.readouterr()
    main(["sources", "--config", str(cfg)])
    assert "note: transcripts need the stt extra" in capsys.readouterr().out


def test_one_source_and_one_post_are_counted_in_the_singular(tmp_path, capsys, monkeypatch):
    from monitor import sources as registry

    monkeypatch.setitem(registry.TYPES, "fake", "tests.test_pipeline:FakeSource")
    from monitor.models import Post
    from tests.test_pipeline import FakeSource

    FakeSource.feeds["a"] = [Post("1", None, title="t")]
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n[sources.a]\ntype = "fake"\nname = "a"\n'
    )
    main(["check", "--config", str(cfg)])
    assert "ok — 1 source, 0 alerts, 0 notifiers;" in capsys.readouterr().out
    main(["fetch", "--config", str(cfg)])
    # No notifier: no line of zero deliveries.
    assert capsys.readouterr().out.splitlines()[-1] == "1 source, 0 failed, 0 new matches"
    main(["sources", "--config", str(cfg)])
    assert capsys.readouterr().out.splitlines()[0].endswith("  ok  1 post")


def test_words_said_in_a_video_alert_a_webhook_with_the_second_they_are_said(tmp_path, capsys):
    """Through yt-dlp itself, on 127.0.0.1: a page with an HTML5 <video> and a captions track."""
    from monitor import ytdlp

    with Origin() as origin, Origin() as hook:
        serve_briefing(origin)
        cfg = tmp_path / "m.toml"
        cfg.write_text(
            f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n'
            f'[sources.briefing]\ntype = "video"\nurl = "{origin.url("/briefing.html")}"\n'
            "speech_to_text = false\n"
            '[alerts.troops]\nquery = \'"NATO troops" Ukraine\'\nnotify = ["hook"]\n'
            f'[notifiers.hook]\ntype = "webhook"\nurl = "{hook.url("/hook")}"\n'
        )
        try:
            code = main(["fetch", "--config", str(cfg)])
        finally:
            ytdlp.shutdown()
        posts = hook.posts()
    assert code == 0, capsys.readouterr()
    assert len(posts) == 1
    alert = json.loads(posts[0].body)
    assert alert["offset"] == 12.5  # the cue where "NATO troops to Ukraine" is said
    assert alert["link"] == origin.url("/briefing.html") + "#t=12"
    assert alert["post"]["kind"] == "video"
    assert "[NATO] [troops]" in alert["snippet"]


def test_a_replayed_pass_keeps_its_alerts_in_the_outbox_until_asked_to_send(tmp_path, capsys):
    """A replay stands in for the outlets only: nothing reaches the desk's mail server or
    webhook, not even a failed attempt, until `monitor alerts --retry`."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with Origin() as origin:
            origin.routes["/tass.xml"] = Route(rss(LAVROV, OTHER))
            cfg = write_config(tmp_path / "m.toml", origin, smtp_port=port,
                               hook=origin.url("/hook"))  # fmt: skip
            rec = tmp_path / "rec"
            assert main(["record", "tass", str(rec), "--config", str(cfg)]) == 0
            capsys.readouterr()
            assert main(["fetch", "tass", "--replay", str(rec), "--config", str(cfg)]) == 0
            err = capsys.readouterr().err
            assert "a replayed pass sends no alerts; 2 deliveries wait in the outbox" in err
            assert inbox.messages == [] and origin.posts() == []
            rows = db_rows(tmp_path / "monitor.db", "SELECT status, attempts FROM deliveries")
            assert [tuple(r) for r in rows] == [("pending", 0), ("pending", 0)]
            # Replayed again, nothing new matches: the note counts this pass's, not the outbox.
            assert main(["fetch", "tass", "--replay", str(rec), "--config", str(cfg)]) == 0
            assert "deliver" not in capsys.readouterr().err
            assert main(["alerts", "--retry", "--config", str(cfg)]) == 0
            assert len(inbox.messages) == 1 and len(origin.posts()) == 1
    finally:
        controller.stop()


def test_a_feed_that_moved_for_good_is_fetched_and_says_to_update_its_url(tmp_path, origin, capsys):
    origin.routes["/old-tass.xml"] = Route(status=301, headers={"Location": "/tass.xml"})
    cfg = write_config(tmp_path / "m.toml", origin)
    cfg.write_text(cfg.read_text().replace("/tass.xml", "/old-tass.xml", 1), encoding="utf-8")
    assert main(["fetch", "tass", "--config", str(cfg), "--json"]) == 0
    (tass,) = json.loads(capsys.readouterr().out)["sources"]
    moved = f"url has moved permanently to {origin.url('/tass.xml')}: set url to it"
    assert tass["new"] == 2 and tass["notices"] == [moved]
    # The next fetch is conditional through the redirect, and still says so.
    assert main(["fetch", "tass", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "not modified" in out and f"note: {moved}" in out
    assert origin.gets("/tass.xml")[1].headers["if-none-match"] == '"v1"'


def test_sources_counts_posts_in_words(tmp_path, origin, capsys):
    origin.routes["/one.xml"] = Route(rss(OTHER))
    cfg = write_config(tmp_path / "m.toml", origin)
    cfg.write_text(cfg.read_text().replace("/broken.xml", "/one.xml"), encoding="utf-8")
    assert main(["fetch", "--config", str(cfg), "-q"]) == 0
    capsys.readouterr()
    main(["sources", "--config", str(cfg)])
    lines = capsys.readouterr().out.splitlines()
    assert "tass  [feed, every 1h]  ok  2 posts" in lines
    assert "broken  [feed, every 1h]  ok  1 post" in lines
    assert lines[2].startswith("    last ok: 20") and "   last new post: 20" in lines[2]


def test_a_pass_with_no_alerts_records_its_matches_and_queues_nothing_for_later(
    tmp_path, origin, capsys
):
    """`--no-alerts` fills the archive quietly: the next pass must not send what it matched."""
    with Origin() as hooks:
        cfg = write_config(tmp_path / "m.toml", origin, hook=hooks.url("/hook"))
        assert main(["fetch", "tass", "--no-alerts", "--config", str(cfg)]) == 0
        assert main(["fetch", "tass", "--config", str(cfg)]) == 0
        assert main(["alerts", "--retry", "--config", str(cfg)]) == 0
        assert hooks.posts() == []
    db = tmp_path / "monitor.db"
    assert [r["alert_id"] for r in db_rows(db, "SELECT alert_id FROM matches")] == [
        "nato-troops-ukraine"
    ]
    assert db_rows(db, "SELECT * FROM deliveries") == []


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_log_lines_are_stamped_in_utc_whatever_the_local_zone(tmp_path, zone):
    import calendar
    import os
    import subprocess
    import sys

    with Origin() as origin:
        origin.routes["/tass.xml"] = Route(rss(OTHER))
        origin.routes["/broken.xml"] = Route(b"", status=500)
        cfg = write_config(tmp_path / "m.toml", origin)
        before = time.time()
        proc = subprocess.run(
            [sys.executable, "-m", "monitor", "fetch", "-v", "--config", str(cfg)],
            capture_output=True, text=True, cwd=tmp_path, timeout=60,
            env={**os.environ, "TZ": zone, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )  # fmt: skip
    stamp = proc.stderr.split()[0]
    assert stamp.endswith("Z"), proc.stderr
    logged = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    assert abs(logged - before) < 60, proc.stderr


def test_an_answer_that_cannot_be_read_keeps_its_http_status_in_the_fetch_log(
    tmp_path, origin, capsys
):
    origin.routes["/broken.xml"] = Route(
        b'<!doctype html><html><head><link rel="alternate" type="application/rss+xml" '
        b'href="/tass.xml"></head><body>TASS</body></html>',
        headers={"Content-Type": "text/html"},
    )
    cfg = write_config(tmp_path / "m.toml", origin)
    assert main(["fetch", "broken", "--config", str(cfg), "--json"]) == 1
    (out,) = json.loads(capsys.readouterr().out)["sources"]
    assert out["http_status"] == 200 and out["error"].startswith("not a feed: the response is")
    (row,) = db_rows(tmp_path / "monitor.db", "SELECT ok, http_status, error FROM fetches")
    assert (row["ok"], row["http_status"]) == (0, 200)
    assert origin.url("/tass.xml") in row["error"]


def test_a_busy_source_s_matches_are_summarised_and_json_keeps_every_one(tmp_path, capsys):
    # 30 stories about the war, a minute apart, the newest first, as a feed lists them.
    items = "".join(
        f"<item><title>Story {i:02d}: NATO troops in Ukraine</title>"
        f"<link>https://tass.com/politics/{i}</link><guid>{i}</guid>"
        f"<pubDate>Thu, 19 Nov 2026 23:{59 - i:02d}:00 +0000</pubDate>"
        f"<description>Day {i} of NATO troops in Ukraine{', Kremlin says' * (i % 2)}.</description></item>"
        for i in range(30)
    )
    body = (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{items}</channel></rss>'
    )
    with Origin() as origin:
        origin.routes["/tass.xml"] = Route(
            body.encode(), headers={"Content-Type": "application/rss+xml"}
        )
        origin.routes["/broken.xml"] = Route(b"<html>down</html>", status=500)
        extra = "[alerts.kremlin]\nquery = 'Kremlin'\nnotify = []\n"
        cfg = write_config(tmp_path / "m.toml", origin, extra=extra)
        main(["fetch", "tass", "--config", str(cfg)])
        out = capsys.readouterr().out
        (tmp_path / "monitor.db").unlink()
        main(["fetch", "tass", "--config", str(cfg), "--json"])
        doc = json.loads(capsys.readouterr().out)
    lines = out.splitlines()
    assert "45 new matches, by alert:" in out  # 30 + 15
    assert any(re.fullmatch(r"\s+30  nato-troops-ukraine  NATO troops Ukraine", x) for x in lines)
    assert any(re.fullmatch(r"\s+15  kremlin  Kremlin", x) for x in lines)
    assert "the newest 5 of 30 posts:" in out
    # The five newest by publication, each once, with every alert that matched it.
    shown = re.findall(r"↳ \[([^\]]+)\] Story (\d+)", out)
    assert [int(n) for _, n in shown] == [0, 1, 2, 3, 4]
    assert shown[1] == ("nato-troops-ukraine, kremlin", "01")
    assert "[NATO] [troops] in [Ukraine]" in out  # snippets still shown
    assert "monitor search QUERY --source tass" in out and "monitor fetch --json" in out
    assert "Story 10" not in out
    # --json stays complete.
    tass = next(s for s in doc["sources"] if s["id"] == "tass")
    assert len(tass["matches"]) == 45
    assert all(m["snippet"] for m in tass["matches"])
    # The kremlin alert sends nothing, so its snippets were made for this output, each from
    # its own post.
    kremlin = {m["post"]: m["snippet"] for m in tass["matches"] if m["alert"] == "kremlin"}
    assert len(kremlin) == 15
    assert all(re.fullmatch(r"Day \d+ of NATO troops in Ukraine, \[Kremlin\] says\.", x)
               for x in kremlin.values())  # fmt: skip


def test_a_post_many_alerts_matched_names_three_of_them(tmp_path, capsys):
    body = rss(LAVROV)
    with Origin() as origin:
        origin.routes["/tass.xml"] = Route(body, headers={"Content-Type": "application/rss+xml"})
        extra = "".join(f"[alerts.a{i}]\nquery = 'Lavrov'\nnotify = []\n" for i in range(25))
        cfg = write_config(tmp_path / "m.toml", origin, extra=extra)
        main(["fetch", "tass", "--config", str(cfg)])
    out = capsys.readouterr().out
    assert "26 new matches, by alert:" in out
    assert "the newest 1 of 1 post:" in out
    assert "↳ [nato-troops-ukraine, a0, a1 +23] Lavrov laughs off" in out


def test_a_quiet_source_s_matches_are_listed_in_full(tmp_path, origin, capsys):
    cfg = write_config(tmp_path / "m.toml", origin)
    main(["fetch", "tass", "--config", str(cfg)])
    out = capsys.readouterr().out
    assert "↳ [nato-troops-ukraine] Lavrov laughs off question on Macron's remark" in out
    assert "by alert" not in out and "the rest" not in out
