"""The plugin's views: the latest matches page, and the posts table with the desk's columns first."""

from __future__ import annotations

from typing import Any

from monitor.query import FIELDS

# What a desk reads first on `posts`, and what only a script needs (ids, hashes, counters) last.
POSTS_FIRST = ("title", "source_id", "published_at", "url")
POSTS_LAST = ("first_seen_at", "updated_at", "version", "id", "external_id", "rev")
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000

_MATCHES_SQL = """
SELECT m.alert_id, m.matched_at, m.snippet, m."offset", p.id AS post_id, p.source_id, p.title,
       p.url, p.kind, p.published_at, p.first_seen_at, m.query,
       -- what a snippet not made at match time is made of (a transcript only then)
       {fields}
FROM matches m JOIN posts p ON p.id = m.post_id
{where}
ORDER BY m.matched_at DESC, coalesce(p.published_at, p.first_seen_at) DESC, m.rowid DESC
LIMIT :limit
"""


def reorder_posts(columns: list[dict[str, Any]], rows: list[Any]) -> tuple[list[Any], list[Any]]:
    """Datasette's display columns and rows of `posts`, the desk's columns first.

    Anything that is not the monitor's posts table (another database's `posts`) is left as is.
    """
    names = [c["name"] for c in columns]
    if not {"title", "source_id", "rev", "external_id"} <= set(names):
        return columns, rows
    first = [n for n in POSTS_FIRST if n in names]
    last = [n for n in POSTS_LAST if n in names]
    order = first + [n for n in names if n not in first and n not in last] + last
    index = [names.index(n) for n in order]
    new_rows = []
    for row in rows:
        cells = list(row)
        if len(cells) != len(columns):  # a special link column (rowid tables): keep as is
            return columns, rows
        new_rows.append(type(row)([cells[i] for i in index]))
    return [columns[i] for i in index], new_rows


def _when(published: str | None, seen: str | None) -> str:
    if published:
        return f"{published[:16].replace('T', ' ')} UTC"
    return f"seen {seen[:16].replace('T', ' ')} UTC" if seen else ""


_FIELDS = ", ".join(f"CASE WHEN m.snippet IS NULL THEN p.{f} END AS field_{f}" for f in FIELDS)


def match_rows(rows: list[Any]) -> list[dict[str, Any]]:
    """The page's rows: every text escaped, the matched words marked, the link at the second."""
    from markupsafe import Markup

    from monitor.match import link_at
    from monitor.notifiers.message import highlight_html
    from monitor.snippet import StoredSnippets

    out = []
    maker = StoredSnippets()
    for r in rows:
        link = link_at(r["url"], r["offset"])
        snippet = r["snippet"]
        if snippet is None:  # not sent when it matched: made now (matches.query)
            fields = {f: r[f"field_{f}"] for f in FIELDS}
            snippet = maker.snippet(r["query"], fields)
        out.append(
            {
                "when": _when(r["published_at"], r["first_seen_at"]),
                "matched_at": r["matched_at"],
                "alert": r["alert_id"],
                "source": r["source_id"],
                "title": r["title"] or r["url"] or r["post_id"],
                # Feeds can carry javascript: or data: links; only web links become anchors.
                "link": link if link and link.lower().startswith(("http://", "https://")) else None,
                "at": None if r["offset"] is None else f"{int(r['offset'])}s",
                "snippet": Markup(highlight_html(snippet)),
                "post_id": r["post_id"],
            }
        )
    return out


async def latest_matches(datasette: Any, request: Any) -> Any:
    """`/<database>/-/latest-matches`: what the alerts found, newest first (`?alert=`, `?limit=`)."""
    from datasette.utils.asgi import NotFound, Response

    from monitor.datasette_plugin import is_archive

    database = request.url_vars["database"]
    if database not in datasette.databases or not is_archive(datasette, database):
        raise NotFound(f"{database} is not an Outlet Monitor archive")
    await datasette.ensure_permissions(
        request.actor,
        [("view-table", (database, "matches")), ("view-database", database), "view-instance"],
    )
    try:
        limit = min(max(int(request.args.get("limit", DEFAULT_LIMIT)), 1), MAX_LIMIT)
    except ValueError:
        limit = DEFAULT_LIMIT
    alert = request.args.get("alert") or None
    db = datasette.get_database(database)
    params: dict[str, Any] = {"limit": limit}
    where = ""
    if alert:
        where, params["alert"] = "WHERE m.alert_id = :alert", alert
    rows = (await db.execute(_MATCHES_SQL.format(where=where, fields=_FIELDS), params)).rows
    alerts = [r[0] for r in (await db.execute(
        "SELECT alert_id, count(*) FROM matches GROUP BY alert_id ORDER BY alert_id")).rows]  # fmt: skip
    matches = match_rows(rows)
    if request.args.get("_format") == "json":
        return Response.json(
            [{**m, "snippet": str(m["snippet"])} for m in matches],
            headers={"Cache-Control": "no-store"},
        )
    return Response.html(
        await datasette.render_template(
            "monitor_latest_matches.html",
            {
                "database": database,
                "database_url": datasette.urls.database(database),
                "matches": matches,
                "alerts": alerts,
                "alert": alert,
                "limit": limit,
            },
            request=request,
        )
    )
