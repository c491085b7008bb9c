"""The rough edges a new user hit on the command line, each pinned (issue 16, part 6)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from monitor.cli import main
from tests.origin import Origin

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "fixtures/demo"


@pytest.fixture
def demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    """(config, archive) after the offline demo's pass."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    cfg, db = tmp_path / "config/demo.toml", tmp_path / "monitor.db"
    assert main(["fetch", "--replay", str(DEMO), "--config", str(cfg), "--db", str(db),
                 "--no-alerts", "-q"]) == 0  # fmt: skip
    capsys.readouterr()
    return cfg, db


def test_search_takes_a_query_that_starts_with_a_minus(demo, capsys):
    cfg, db = demo
    base = ["--config", str(cfg), "--db", str(db), "--json"]
    assert main(["search", "NATO", *base]) == 0
    every = {h["id"] for h in json.loads(capsys.readouterr().out)}
    assert main(["search", *base, "-troops", "NATO"]) == 0
    without = {h["id"] for h in json.loads(capsys.readouterr().out)}
    assert main(["search", "NATO troops", *base]) == 0
    troops = {h["id"] for h in json.loads(capsys.readouterr().out)}
    assert troops and without and without == every - troops


def test_a_query_of_nothing_but_negatives_shows_one_that_works(demo, capsys):
    cfg, db = demo
    assert main(["search", "-exercise", "--config", str(cfg), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "as in 'NATO -exercise'" in err and "usage:" not in err


def test_search_counts_on_stdout_and_says_when_the_limit_hid_results(demo, capsys):
    cfg, db = demo
    base = ["--config", str(cfg), "--db", str(db)]
    assert main(["search", "NATO", *base, "--json", "--limit", "100"]) == 0
    total = len(json.loads(capsys.readouterr().out))
    assert total > 2
    assert main(["search", "NATO", *base, "--limit", "2"]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines()[-1].startswith(f"2 of {total} results (--limit 2")
    assert out.err == ""


def test_search_since_takes_a_duration(demo, capsys):
    cfg, db = demo
    base = ["search", "NATO", "--config", str(cfg), "--db", str(db), "--json"]
    assert main([*base, "--since", "36500d"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert main([*base, "--since", "1s"]) == 0  # the demo's posts are years old
    assert json.loads(capsys.readouterr().out) == []
    assert main([*base, "--since", "soon"]) == 2
    assert "2d, 6h, 30m" in capsys.readouterr().err


def test_fetch_json_matches_carry_title_url_and_link(tmp_path, capsys):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    cfg = tmp_path / "config/demo.toml"
    argv = ["fetch", "--replay", str(DEMO), "--config", str(cfg), "--db",
            str(tmp_path / "m.db"), "--json"]  # fmt: skip
    main(argv)
    matches = [m for s in json.loads(capsys.readouterr().out)["sources"] for m in s["matches"]]
    assert matches
    for m in matches:
        assert m["title"] and m["url"].startswith("http") and m["link"].startswith(m["url"][:20])
    assert any("t=" in m["link"] for m in matches if m["offset"] is not None)


def _feed_config(tmp_path: Path, origin: Origin, notifier: str) -> Path:
    origin.routes["/feed"] = _feed_route()
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        f'[monitor]\ndatabase = "{tmp_path / "m.db"}"\nallow_private = true\n'
        f'[sources.f]\ntype = "feed"\nurl = "{origin.url("/feed")}"\n'
        f'[alerts.a]\nquery = "NATO"\nnotify = ["hook"]\n{notifier}'
    )
    return cfg


def _feed_route():  # type: ignore[no-untyped-def]
    from tests.origin import Route

    item = "<item><title>NATO meets</title><link>https://e.org/1</link><guid>1</guid></item>"
    return Route(
        body=f"<rss version='2.0'><channel><title>t</title>{item}</channel></rss>".encode(),
        headers={"Content-Type": "application/rss+xml"},
    )


def test_alerts_retry_exits_1_when_no_retry_went_through(tmp_path, capsys):
    with Origin() as o:
        o.post_statuses = [500]
        hook = f'[notifiers.hook]\ntype = "webhook"\nurl = "{o.url("/hook")}"\n'
        cfg = _feed_config(tmp_path, o, hook)
        assert main(["fetch", "--config", str(cfg), "-q"]) == 0
        capsys.readouterr()
        assert main(["alerts", "--retry", "--config", str(cfg)]) == 1
        assert "0 sent, 1 to retry" in capsys.readouterr().out
        o.post_statuses = [200]
        assert main(["alerts", "--retry", "--config", str(cfg)]) == 0


def test_an_unset_notifier_secret_only_stops_what_sends(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HOOK_SECRET", raising=False)
    with Origin() as o:
        hook = (
            f'[notifiers.hook]\ntype = "webhook"\nurl = "{o.url("/hook")}"\n'
            'secret = "${HOOK_SECRET}"\n'
        )
        cfg = _feed_config(tmp_path, o, hook)
        assert main(["fetch", "--config", str(cfg), "-q"]) == 2
        assert "notifiers.hook.secret: environment variable HOOK_SECRET is not set" in (
            capsys.readouterr().err
        )
        assert main(["fetch", "--config", str(cfg), "-q", "--no-alerts"]) == 0
        capsys.readouterr()
        for command in (["sources"], ["search", "NATO"], ["alerts"]):
            assert main([*command, "--config", str(cfg)]) == 0, command
        capsys.readouterr()
        assert main(["alerts", "--retry", "--config", str(cfg)]) == 2


def test_a_size_without_its_unit_is_refused(tmp_path, capsys):
    cfg = tmp_path / "monitor.toml"
    cfg.write_text('[monitor]\nmax_body = "10"\n')
    assert main(["check", "--config", str(cfg)]) == 2
    assert "monitor.max_body: a size needs its unit: write 10B, 10KB or 10MB" in (
        capsys.readouterr().out
    )
    cfg.write_text('[monitor]\nmax_body = "10MB"\n')
    assert main(["check", "--config", str(cfg), "--db", str(tmp_path / "m.db")]) == 0


def test_a_misspelt_type_key_gets_a_did_you_mean(tmp_path, capsys):
    cfg = tmp_path / "monitor.toml"
    cfg.write_text('[sources.a]\ntyp = "feed"\nurl = "https://e.org/feed"\n')
    assert main(["check", "--config", str(cfg)]) == 2
    assert "'typ' is not a key (did you mean 'type'?)" in capsys.readouterr().out


def test_a_pass_thaws_what_it_froze_for_the_collector(demo):
    # fetch freezes start-up's objects for the pass (out of the collector's way) and thaws
    # them after, so that a caller running several passes does not keep their garbage.
    import gc

    assert gc.get_freeze_count() == 0
