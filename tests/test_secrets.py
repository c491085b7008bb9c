"""Values that came from ${VAR} are `***` wherever the monitor writes: errors and logs."""

from __future__ import annotations

import os
import subprocess
import sys

from monitor.config import ConfigError, parse_config
from tests.origin import Origin, Route
from tests.test_end_to_end import LAVROV, rss


def test_configuration_problems_do_not_quote_a_value_from_the_environment():
    raw = {
        "monitor": {"every": "${EVERY}"},
        "sources": {"nato": {"type": "feed", "url": "https://www.nato.int/rss.xml",
                             "timeout": "${TIMEOUT}"}},
    }  # fmt: skip
    try:
        parse_config(raw, env={"EVERY": "hunter2-secret", "TIMEOUT": "token-9f8e7d"})
    except ConfigError as e:
        problems = e.problems
    else:
        raise AssertionError("expected configuration problems")
    assert problems == [
        "monitor.every: expected a duration such as 30s, 5m, 2h or 1d, got '***'",
        "sources.nato.timeout: expected a duration such as 30s, 5m, 2h or 1d, got '***'",
    ]


def test_verbose_logs_show_a_url_with_a_key_from_the_environment_as_stars(tmp_path):
    with Origin() as origin:
        origin.routes["/feed.xml?key=SECRETKEY123"] = Route(
            rss(LAVROV), headers={"Content-Type": "application/rss+xml"}
        )
        cfg = tmp_path / "m.toml"
        cfg.write_text(
            f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n'
            f'[sources.tass]\ntype = "feed"\nurl = "{origin.url("/feed.xml")}?key=${{FEED_KEY}}"\n'
        )
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "-vv", "fetch", "--config", str(cfg)],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "FEED_KEY": "SECRETKEY123"},
        )  # fmt: skip
        assert origin.gets()[0].path == "/feed.xml?key=SECRETKEY123"  # the real key was sent
    assert done.returncode == 0, done.stderr
    assert "HTTP Request: GET" in done.stderr and "key=***" in done.stderr
    assert "SECRETKEY123" not in done.stderr + done.stdout


def test_a_secret_is_stars_in_verbose_logs_after_the_client_percent_encodes_the_url(tmp_path):
    """httpx logs the URL it sent, `q=a%20b` for `q=a b`: no longer the secret as written."""
    whole = "/private.xml?q=nato troops&token=WHOLEURL-77"
    with Origin() as origin:
        for path in ("/private.xml?q=nato%20troops&token=WHOLEURL-77",
                     "/feed.xml?key=SECRET%20KEY/%C3%A9-123"):  # fmt: skip
            origin.routes[path] = Route(
                rss(LAVROV), headers={"Content-Type": "application/rss+xml"}
            )
        cfg = tmp_path / "m.toml"
        cfg.write_text(
            f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\n'
            '[sources.private]\ntype = "feed"\nurl = "${PRIVATE_FEED}"\n'
            f'[sources.tass]\ntype = "feed"\nurl = "{origin.url("/feed.xml")}?key=${{FEED_KEY}}"\n'
        )
        done = subprocess.run(
            [sys.executable, "-m", "monitor", "-vv", "fetch", "--config", str(cfg)],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "PRIVATE_FEED": origin.url(whole), "FEED_KEY": "SECRET KEY/é-123"},
        )  # fmt: skip
        sent = sorted(r.path for r in origin.gets())
    # The real values were sent, percent-encoded by the client.
    assert sent == ["/feed.xml?key=SECRET%20KEY/%C3%A9-123",
                    "/private.xml?q=nato%20troops&token=WHOLEURL-77"], sent  # fmt: skip
    assert done.returncode == 0, done.stderr
    log = done.stderr + done.stdout
    assert "HTTP Request: GET ***" in log and "key=***" in log, log
    for leak in ("WHOLEURL-77", "nato%20troops", "SECRET", "%C3%A9-123"):
        assert leak not in log, (leak, log)
