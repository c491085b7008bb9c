"""I/O: `monitor import` adds an OPML file's feeds to the TOML configuration, keeping its text."""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.opml import Outline, Skipped, make_id, parse_opml, same_feed


@dataclass
class Added:
    id: str
    type: str
    url: str
    name: str
    tags: list[str]


@dataclass
class ImportResult:
    config: Path
    added: list[Added] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    written: bool = False


def import_opml(
    config_path: Path, opml: bytes, *, source: str, dry_run: bool = False
) -> ImportResult:
    """Add each feed of `opml` to the configuration file as a source; skip the ones it has.

    The file is edited with tomlkit, so its comments, order and spacing stay as they were and
    the new tables join the other sources. A file that does not exist yet is created.
    Raises OPMLError for an unreadable OPML file, ValueError for a configuration that is not
    valid TOML (nothing is written then).
    """
    import tomlkit

    outlines, skipped = parse_opml(opml)
    text = config_path.read_text(encoding="utf-8") if config_path.exists() else ""
    try:
        tomllib.loads(text)
        doc = tomlkit.parse(text)
    except (tomllib.TOMLDecodeError, tomlkit.exceptions.TOMLKitError) as e:
        raise ValueError(f"{config_path}: not valid TOML: {e}") from None
    sources = doc.get("sources")
    if sources is not None and not isinstance(sources, dict):
        raise ValueError(f"{config_path}: sources: must be a table ([sources.<id>])")
    existing: dict[str, Any] = dict(sources or {})
    known = {same_feed(str(t["url"])): sid for sid, t in existing.items()
             if isinstance(t, dict) and isinstance(t.get("url"), str)}  # fmt: skip
    result = ImportResult(config_path, skipped=list(skipped))
    taken = set(existing)
    added_by_key: dict[str, Added] = {}
    for o in outlines:
        reason = _refusal(o)
        if reason:
            result.skipped.append(Skipped(o.title, o.url, reason))
            continue
        key = same_feed(o.url)
        if key in known:
            result.skipped.append(Skipped(o.title, o.url, f"already configured as {known[key]}"))
            continue
        if key in added_by_key:
            # Feedly and Inoreader list a feed once per folder it is in: one source, every tag.
            first = added_by_key[key]
            new_tags = [t for t in o.tags if t not in first.tags]
            first.tags.extend(new_tags)
            why = f"listed again in the file: imported once as {first.id}"
            result.skipped.append(
                Skipped(o.title, o.url, why + (" (tag added)" if new_tags else ""))
            )
            continue
        sid = o.id if o.id and o.id not in taken else make_id(o.title, o.url, taken)
        taken.add(sid)
        added = Added(sid, o.kind, o.url, o.title, list(o.tags))
        added_by_key[key] = added
        result.added.append(added)
    if not result.added or dry_run:
        return result
    if sources is None:
        doc.add(tomlkit.nl())
        sources = tomlkit.table(is_super_table=True)
        doc["sources"] = sources
    for i, a in enumerate(result.added):
        table = tomlkit.table()
        if i == 0:
            table.comment(f"imported from {source}")
        table.add("type", a.type)
        table.add("url", a.url)
        if a.name and a.name != a.id:
            table.add("name", a.name)
        if a.tags:
            table.add("tags", a.tags)
        table.add(tomlkit.nl())
        sources[a.id] = table
    _write_atomically(config_path, tomlkit.dumps(doc))
    result.written = True
    return result


def _refusal(o: Outline) -> str | None:
    if not o.url.lower().startswith(("http://", "https://")):
        return "not an http:// or https:// URL"
    if o.kind == "page":
        return (
            "a page source needs its selectors: copy its table from the configuration it came from"
        )
    return None


def _write_atomically(path: Path, text: str) -> None:
    """Replace the file in one step: an interrupted import leaves the old configuration whole."""
    path = path.resolve()
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
