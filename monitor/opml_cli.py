"""The OPML commands: `monitor import FILE.opml` and `monitor sources --opml`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.config import Config

EXPORTED_TYPES = ("feed", "sitemap", "page")


def run_import(config_path: Path, opml_file: str, *, dry_run: bool, as_json: bool) -> int:
    """Exit 0 when the file was read (even if every feed was already there), 2 otherwise."""
    from monitor.opml import OPMLError
    from monitor.opml_config import import_opml

    path = Path(opml_file)
    try:
        body = path.read_bytes()
    except OSError as e:
        return _fail(f"{opml_file}: cannot read: {e.strerror or e}", as_json)
    created = not config_path.exists()
    try:
        result = import_opml(config_path, body, source=path.name, dry_run=dry_run)
    except OPMLError as e:
        return _fail(f"{opml_file}: {e}", as_json)
    except (OSError, ValueError) as e:
        return _fail(str(e), as_json)
    if as_json:
        doc = {
            "ok": True,
            "config": str(config_path),
            "written": result.written,
            "added": [vars(a) for a in result.added],
            "skipped": [vars(s) for s in result.skipped],
        }
        sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
        return 0
    for a in result.added:
        tags = f"  [{', '.join(a.tags)}]" if a.tags else ""
        print(f"added    {a.id}  {a.url}{tags}")
    for s in result.skipped:
        print(f"skipped  {s.title or s.url or '(untitled)'}: {s.reason}")
    verb = "would add" if dry_run else "added"
    where = f"{'created ' if created and result.written else ''}{config_path}"
    print(
        f"{verb} {len(result.added)} source{'s' if len(result.added) != 1 else ''}, "
        f"skipped {len(result.skipped)}"
        + (f"; {where}" if result.written else "; nothing written" if not dry_run else "")
    )
    return 0


def _fail(message: str, as_json: bool) -> int:
    print(f"monitor: {message}", file=sys.stderr)
    if as_json:
        sys.stdout.write(json.dumps({"ok": False, "error": message}, ensure_ascii=False) + "\n")
    return 2


def sources_opml(config: Config) -> str:
    """Every feed, sitemap and page source of the configuration as an OPML document."""
    from datetime import UTC, datetime

    from monitor.opml import ExportEntry, write_opml

    entries = [
        ExportEntry(sid, s.type, config.redact(str(s.url)), s.name, list(s.tags))  # type: ignore[attr-defined]
        for sid, s in config.sources.items()
        if s.type in EXPORTED_TYPES
    ]
    created = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    name = config.path.name if config.path else "monitor"
    return write_opml(entries, f"Outlet Monitor sources ({name})", created)


def print_sources_opml(config: Config) -> Any:
    sys.stdout.write(sources_opml(config))
    return 0
