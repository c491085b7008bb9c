"""OPML in and out: `monitor import FILE.opml` and `monitor sources --opml`."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.opml import OPMLError, make_id, parse_opml

ROOT = Path(__file__).resolve().parents[1]
OPML = ROOT / "fixtures/opml"
READERS = ["miniflux", "freshrss", "feedly", "inoreader", "netnewswire", "thunderbird"]

# What each reader's export holds: (title, feed URL, tags), in document order.
EXPECTED = {
    "miniflux": [
        ("NATO News", "https://www.nato.int/cps/rss/en/natohq/rssFeed.xsl/rssFeed.xml", ["All"]),
        ('Al Jazeera "All News"', "https://www.aljazeera.com/xml/rss/all.xml", ["All"]),
        ("France 24 - World", "https://www.france24.com/en/rss", ["Europe"]),
        ("The Kyiv Independent", "https://kyivindependent.com/news-archive/rss/", ["Europe"]),
        ("DW's Top Stories", "https://rss.dw.com/rdf/rss-en-top", ["Europe"]),
    ],
    "freshrss": [
        ("BBC News - World", "https://feeds.bbci.co.uk/news/world/rss.xml", ["Uncategorized"]),
        ("Anadolu Ajansı", "https://www.aa.com.tr/tr/rss/default?cat=guncel", ["Uncategorized"]),
        ("President of Russia: News", "http://en.kremlin.ru/events/president/news/feed", ["Government"]),
    ],
    "feedly": [
        ("Breaking Defense", "https://breakingdefense.com/feed/", ["Defence"]),
        ("War on the Rocks", "https://warontherocks.com/feed/", ["Defence"]),
        ("Arms Control Wonk", "https://www.armscontrolwonk.com/feed/", ["Defence"]),
        ("War on the Rocks", "https://warontherocks.com/feed/", ["Analysis"]),
        ("Carnegie Endowment & Politika", "https://carnegieendowment.org/rss/solr/?fa=politika", ["Analysis"]),
    ],
    "inoreader": [
        ("ТАСС", "https://tass.ru/rss/v2.xml", ["Russia"]),
        ("Meduza", "https://meduza.io/rss/en/all", ["Russia"]),
        ("Tom's Hardware", "https://www.tomshardware.com/feeds/all", ["Tech & Security"]),
        ("Krebs on Security", "https://krebsonsecurity.com/feed/", ["Tech & Security"]),
    ],
    "netnewswire": [
        ("Daring Fireball", "https://daringfireball.net/feeds/main", []),
        ("Le Monde.fr - Actualités et Infos en France et dans le monde", "https://www.lemonde.fr/rss/une.xml", ["Europe"]),
        ("Kyiv Independent", "https://kyivindependent.com/news-archive/rss", ["Europe"]),
    ],
    "thunderbird": [
        ("Balkan Insight", "https://balkaninsight.com/feed/", ["Wires/Europe/Balkans"]),
        ("Euronews", "https://www.euronews.com/rss", ["Wires/Europe"]),
        ("AP Top News", "https://apnews.com/hub/ap-top-news.rss", ["Wires"]),
    ],
}  # fmt: skip


def run(args: list[str], capsys) -> tuple[int, str, str]:  # noqa: ANN001
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def sources(path: Path) -> dict[str, dict]:
    return tomllib.loads(path.read_text(encoding="utf-8")).get("sources", {})


@pytest.mark.parametrize("reader", READERS)
def test_each_readers_export_is_read_with_titles_unescaped_and_folders_as_tags(reader):
    outlines, _ = parse_opml((OPML / f"{reader}.opml").read_bytes())
    assert [(o.title, o.url, o.tags) for o in outlines] == EXPECTED[reader]


def test_freshrss_web_scraping_outline_is_skipped_as_not_a_feed():
    _, skipped = parse_opml((OPML / "freshrss.opml").read_bytes())
    assert [(s.title, s.reason) for s in skipped] == [
        ("Élysée – Toutes les actualités", 'type="HTML+XPath" is not a feed')
    ]


@pytest.mark.parametrize("reader", READERS)
def test_round_trip_through_import_and_export_keeps_feeds_names_and_tags(reader, tmp_path, capsys):
    first = tmp_path / "first.toml"
    assert run(["import", str(OPML / f"{reader}.opml"), "--config", str(first)], capsys)[0] == 0
    imported = sources(first)
    load_config(first)  # what was written is a valid configuration
    unique = {url: tags for _, url, tags in EXPECTED[reader]}
    assert {s["url"] for s in imported.values()} == set(unique)

    code, exported, _ = run(["sources", "--opml", "--config", str(first)], capsys)
    assert code == 0
    outlines, skipped = parse_opml(exported.encode())
    assert skipped == []
    # Grouped by folder as readers write them, each outline with its id, name and tags.
    assert sorted((o.id, o.url, o.title, o.tags) for o in outlines) == sorted(
        (sid, s["url"], s.get("name", sid), s.get("tags", [])) for sid, s in imported.items()
    )

    (tmp_path / "export.opml").write_text(exported, encoding="utf-8")
    second = tmp_path / "second.toml"
    assert run(["import", str(tmp_path / "export.opml"), "--config", str(second)], capsys)[0] == 0
    assert sources(second) == imported  # same ids, URLs, names and tags


def test_feed_in_two_folders_becomes_one_source_with_both_tags(tmp_path, capsys):
    cfg = tmp_path / "monitor.toml"
    code, out, _ = run(["import", str(OPML / "feedly.opml"), "--config", str(cfg)], capsys)
    assert code == 0
    assert sources(cfg)["war-on-the-rocks"]["tags"] == ["Defence", "Analysis"]
    assert "War on the Rocks: listed again in the file: imported once as war-on-the-rocks" in out
    assert sources(cfg)["carnegie-endowment-politika"]["name"] == "Carnegie Endowment & Politika"


def test_import_into_the_example_config_keeps_its_text_and_skips_configured_urls(tmp_path, capsys):
    cfg = tmp_path / "monitor.toml"
    shutil.copy(ROOT / "config/monitor.toml", cfg)
    before = cfg.read_text(encoding="utf-8")
    code, out, _ = run(
        ["import", str(OPML / "miniflux.opml"), "--config", str(cfg), "--json"], capsys
    )
    assert code == 0
    doc = json.loads(out)
    assert [a["id"] for a in doc["added"]] == ["dws-top-stories"]
    assert {s["url"]: s["reason"] for s in doc["skipped"]} == {
        "https://www.nato.int/cps/rss/en/natohq/rssFeed.xsl/rssFeed.xml": "already configured as nato-news",
        "https://www.aljazeera.com/xml/rss/all.xml": "already configured as aljazeera",
        "https://www.france24.com/en/rss": "already configured as france24-en",
        "https://kyivindependent.com/news-archive/rss/": "already configured as kyiv-independent",
    }  # fmt: skip
    after = cfg.read_text(encoding="utf-8")
    # Every line of the file, comments included, is still there, in its order.
    lines = iter(after.splitlines())
    assert all(any(line == x for x in lines) for line in before.splitlines())
    config = load_config(cfg)
    new = config.sources["dws-top-stories"]
    assert (new.type, new.url, new.name, new.tags) == (  # type: ignore[attr-defined]
        "feed", "https://rss.dw.com/rdf/rss-en-top", "DW's Top Stories", ["Europe"])  # fmt: skip
    # The new source joins the other sources, before the alerts.
    assert after.index("[sources.dws-top-stories]") < after.index("[alerts.")

    # Importing again adds nothing and leaves the file as it was.
    code, out, _ = run(["import", str(OPML / "miniflux.opml"), "--config", str(cfg)], capsys)
    assert code == 0 and "added 0 sources, skipped 5; nothing written" in out
    assert cfg.read_text(encoding="utf-8") == after


def test_dry_run_says_what_it_would_add_and_writes_nothing(tmp_path, capsys):
    cfg = tmp_path / "monitor.toml"
    code, out, _ = run(["import", str(OPML / "inoreader.opml"), "--config", str(cfg), "--dry-run"], capsys)  # fmt: skip
    assert code == 0 and not cfg.exists()
    assert "added    tass  https://tass.ru/rss/v2.xml  [Russia]" in out
    assert out.rstrip().endswith("would add 4 sources, skipped 0")


def test_ids_come_from_titles_and_never_collide():
    assert make_id("Anadolu Ajansı", "https://www.aa.com.tr/x", []) == "anadolu-ajansi"
    assert make_id("DW's Top Stories", "https://rss.dw.com/x", []) == "dws-top-stories"
    assert make_id("ТАСС", "https://tass.ru/rss/v2.xml", []) == "tass"  # no Latin: the host
    assert make_id("ТАСС", "https://tass.ru/rss/v2.xml", ["tass", "tass-2"]) == "tass-3"
    long = "Le Monde.fr - Actualités et Infos en France et dans le monde"
    assert make_id(long, "https://www.lemonde.fr/", []) == "le-monde-fr-actualites-et-infos-en"


def test_export_lists_every_feed_sitemap_and_page_and_reimports_the_sitemap(tmp_path, capsys):
    code, out, _ = run(["sources", "--opml", "--config", str(ROOT / "config/demo.toml")], capsys)
    assert code == 0
    outlines, _ = parse_opml(out.encode())
    kinds = {o.id: o.kind for o in outlines}
    assert kinds["nato-news"] == "feed" and kinds["kremlin-sitemap"] == "sitemap"
    assert kinds["elysee"] == "page"
    assert "trt-world-youtube" not in kinds  # a video channel is not a subscription to export
    assert '<outline text="kremlin-sitemap" title="kremlin-sitemap" type="link" url="http://en.kremlin.ru/sitemap.xml"' in out  # fmt: skip
    (tmp_path / "demo.opml").write_text(out, encoding="utf-8")
    cfg = tmp_path / "monitor.toml"
    code, out, _ = run(["import", str(tmp_path / "demo.opml"), "--config", str(cfg)], capsys)
    assert code == 0
    assert sources(cfg)["kremlin-sitemap"] == {"type": "sitemap", "url": "http://en.kremlin.ru/sitemap.xml"}  # fmt: skip
    assert "skipped  elysee: a page source needs its selectors" in out


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
         b'<opml version="2.0"><body><outline text="&xxe;" xmlUrl="https://a/feed"/></body></opml>',
         "refusing XML with entity declarations"),
        (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
         b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
         b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
         b'<opml version="1.0"><body><outline text="&lol3;" xmlUrl="https://a/feed"/></body></opml>',
         "refusing XML with entity declarations"),
        (b"<rss><channel/></rss>", "not an OPML file: the document is <rss>, not <opml>"),
        (b"<opml><body><outline text='x'", "not well-formed XML"),
    ],
)  # fmt: skip
def test_hostile_or_wrong_files_are_refused_clearly_and_nothing_is_written(
    body, message, tmp_path, capsys
):
    cfg = tmp_path / "monitor.toml"
    cfg.write_text("# mine\n[sources.a]\ntype = 'feed'\nurl = 'https://a.example/feed'\n")
    before = cfg.read_text()
    (tmp_path / "x.opml").write_bytes(body)
    code, out, err = run(["import", str(tmp_path / "x.opml"), "--config", str(cfg), "--json"], capsys)  # fmt: skip
    assert code == 2
    assert message in err and message in json.loads(out)["error"]
    assert cfg.read_text() == before
    with pytest.raises(OPMLError, match=message.split(":")[0]):
        parse_opml(body)


def test_a_missing_file_or_broken_config_is_an_error_naming_it(tmp_path, capsys):
    cfg = tmp_path / "monitor.toml"
    code, _, err = run(["import", str(tmp_path / "none.opml"), "--config", str(cfg)], capsys)
    assert code == 2 and "none.opml: cannot read" in err
    cfg.write_text("[sources\n")
    code, _, err = run(["import", str(OPML / "feedly.opml"), "--config", str(cfg)], capsys)
    assert code == 2 and "not valid TOML" in err
    assert cfg.read_text() == "[sources\n"


def test_sources_json_shows_name_and_tags(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the configuration's archive, monitor.db, is not made yet
    cfg = tmp_path / "monitor.toml"
    run(["import", str(OPML / "thunderbird.opml"), "--config", str(cfg)], capsys)
    code, out, _ = run(["sources", "--json", "--config", str(cfg)], capsys)
    assert code == 0
    first = json.loads(out)[0]
    assert (first["id"], first["name"], first["tags"]) == (
        "balkan-insight", "Balkan Insight", ["Wires/Europe/Balkans"])  # fmt: skip


def test_import_into_a_config_whose_sources_are_split_by_other_tables(tmp_path, capsys):
    # The demo's last source comes after its alerts: tomlkit still adds the new ones beside
    # the first group of sources and leaves the rest where it was.
    cfg = tmp_path / "demo.toml"
    shutil.copy(ROOT / "config/demo.toml", cfg)
    before = cfg.read_text(encoding="utf-8")
    assert run(["import", str(OPML / "netnewswire.opml"), "--config", str(cfg)], capsys)[0] == 0
    after = cfg.read_text(encoding="utf-8")
    config = load_config(cfg)
    assert {"daring-fireball", "kyiv-independent", "trt-world-youtube"} <= set(config.sources)
    assert after.index("[sources.daring-fireball]") < after.index("[alerts.")
    assert after.index("[sources.trt-world-youtube]") > after.index("[alerts.")
    assert (
        after.replace(after[after.index("[sources.daring-fireball]") : after.index("[alerts.")], "")
        == before
    )
