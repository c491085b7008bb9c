"""The one registry of source types: `type = "..."` in a `[sources.<id>]` table → its module."""

from __future__ import annotations

import importlib

from monitor.sources.base import SourceConfig

# type name → "module:ConfigClass"; imported only when a config uses the type.
TYPES: dict[str, str] = {
    "feed": "monitor.sources.feed:FeedSource",
    "page": "monitor.sources.page:PageSource",
    "sitemap": "monitor.sources.sitemap:SitemapSource",
    "telegram": "monitor.sources.telegram:TelegramSource",
    "bluesky": "monitor.sources.bluesky:BlueskySource",
    "mastodon": "monitor.sources.mastodon:MastodonSource",
    "x": "monitor.sources.x:XSource",
    "youtube": "monitor.sources.youtube:YoutubeSource",
    "video": "monitor.sources.video:VideoSource",
}


def source_class(type_name: str) -> type[SourceConfig]:
    module_name, _, attr = TYPES[type_name].partition(":")
    return getattr(importlib.import_module(module_name), attr)
