"""`[monitor] allow_private = true` is the one switch that lets redirects reach private hosts."""

from __future__ import annotations

from pathlib import Path

from tests.faults import hostile as h
from tests.faults.conftest import fetch, source_toml, write_config
from tests.faults.hostile import Hostile


def test_allow_private_lets_a_configured_feed_redirect_to_another_local_server(
    tmp_path: Path,
) -> None:
    # An intranet setup: the feed moved to another local port. Refused by default (the batch
    # pass shows it); followed when the user says private addresses are fine.
    with Hostile() as old, Hostile() as new:
        new.routes["/feed.xml"] = h.document(h.rss("Moved but fine"))
        old.routes["/feed.xml"] = h.redirect(new.url("/feed.xml"), 301)
        source = source_toml("moved", "feed", old.url("/feed.xml"))
        refused = fetch(write_config(tmp_path, source))
        assert refused.code == 1 and "is a loopback address" in refused.result("moved")["error"]
        assert new.hits == []
        config = write_config(tmp_path, source)
        config.write_text(
            config.read_text().replace("[monitor]\n", "[monitor]\nallow_private = true\n")
        )
        allowed = fetch(config)
    assert allowed.code == 0, allowed.result("moved")["error"]
    assert [p["title"] for p in allowed.posts("moved")] == ["Moved but fine"]
