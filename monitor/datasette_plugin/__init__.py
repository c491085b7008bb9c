"""The Datasette plugin: an archive opens for a desk with the monitor's search, matches page and columns."""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from datasette import hookimpl
from jinja2 import BaseLoader, TemplateNotFound

from monitor.datasette_plugin.pages import latest_matches, reorder_posts

# An archive is recognised by its tables, whatever its file is called: the plugin needs no
# metadata file with a database name to rename.
_ARCHIVE_TABLES = frozenset({"posts", "posts_fts", "matches", "search_state"})
_known: dict[tuple[str, str], bool] = {}


def is_archive_connection(conn: sqlite3.Connection) -> bool:
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return names >= _ARCHIVE_TABLES


def is_archive(datasette: Any, database: str) -> bool:
    """Whether Datasette's `database` is a monitor archive (read once per file)."""
    db = datasette.databases.get(database)
    path = getattr(db, "path", None)
    if db is None or not path or getattr(db, "is_memory", False):
        return False
    key = (database, str(path))
    if key not in _known:
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                _known[key] = is_archive_connection(conn)
            finally:
                conn.close()
        except sqlite3.Error:
            return False  # not readable now; asked again next time
    return _known[key]


def search_expression(text: str) -> str:
    """A search box's text as the FTS5 expression `monitor search` would run (QueryError if bad)."""
    from monitor.query import parse_query

    return parse_query(text).fts()


@hookimpl
def get_metadata(datasette: Any, key: str, database: str, table: str) -> dict[str, Any]:
    databases = {
        name: {
            "tables": {
                "posts": {
                    "fts_table": "posts_fts",
                    "fts_pk": "rev",
                    "sort_desc": "published_at",
                    "label_column": "title",
                    "description": "Search with the monitor's query language: "
                    'NATO troops, "troupes au sol", deploy*, troops OR forces, -exercise, '
                    "NEAR(NATO troops, 10), title:Macron.",
                }
            }
        }
        for name in list(datasette.databases)
        if is_archive(datasette, name)
    }
    return {"databases": databases} if databases else {}


@hookimpl(trylast=True)
def prepare_connection(conn: sqlite3.Connection, database: str, datasette: Any) -> None:
    # Datasette's search box sends `escape_fts(:search)` to FTS5. In an archive, the index holds
    # folded text that only the monitor's queries read, so there escape_fts is the monitor's own
    # parser: `deploy*`, `войск*` and `istanbul` find what `monitor search` finds. trylast, so
    # that this replaces Datasette's own function rather than being replaced by it.
    try:
        archive = is_archive_connection(conn)
    except sqlite3.Error:
        return
    if archive:
        conn.create_function("escape_fts", 1, _escape_fts, deterministic=True)
        # A match's snippet is made when first shown, unless it was sent (matches.snippet is
        # NULL until then); SQL gets it as `coalesce(m.snippet, monitor_snippet(m.query,
        # p.title, p.text, p.transcript, p.author))`.
        conn.create_function("monitor_snippet", 5, _snippet_of, deterministic=True)


def _snippet_of(query: str | None, *fields: str | None) -> str:
    from monitor.query import FIELDS
    from monitor.snippet import StoredSnippets

    return StoredSnippets().snippet(query, dict(zip(FIELDS, fields, strict=True)))


@hookimpl
def render_cell(
    row: Any, value: Any, column: str, table: str, database: str, datasette: Any
) -> Any:
    """`matches.snippet` in Datasette's table and row views: made from the row's query and
    its post when it was not made at match time (NULL)."""
    if table != "matches" or column != "snippet" or value is not None:
        return None
    try:
        query, post_id = row["query"], row["post_id"]
    except (IndexError, KeyError):  # columns left out of the view (`_col=`)
        return None
    if isinstance(post_id, dict):  # a foreign key Datasette expanded to its label
        post_id = post_id.get("value")
    if not query or not post_id or not is_archive(datasette, database):
        return None

    async def made() -> str | None:
        from monitor.query import FIELDS

        db = datasette.get_database(database)
        post = (
            await db.execute(f"SELECT {', '.join(FIELDS)} FROM posts WHERE id = ?", [post_id])
        ).first()
        return None if post is None else _snippet_of(query, *post) or None

    return made()


def _escape_fts(text: str | None) -> str:
    from monitor.query import QueryError

    try:
        return search_expression(text or "")
    except QueryError:
        # Refused with its message before the query runs (filters_from_request); reaching
        # here means a path that bypassed that check, so match nothing rather than fail.
        return '""'


@hookimpl
def filters_from_request(request: Any, database: str, table: str, datasette: Any) -> None:
    """A search that cannot be parsed is a 400 that says why and where, as in `monitor search`."""
    from datasette.utils.asgi import BadRequest

    from monitor.query import QueryError

    if table != "posts" or not is_archive(datasette, database):
        return None
    per_column = [k for k in request.args if k.startswith("_search_")]
    if per_column:
        # Datasette searches one column through the table's rowid, which in an archive is not
        # the index's key (`rev`): its answer would be wrong, so the query language does it.
        field = per_column[0].removeprefix("_search_")
        raise BadRequest(
            f"{per_column[0]} is not supported here: search one field with the query "
            f"language instead, _search={field}:word"
        )
    text = request.args.get("_search")
    if not text or request.args.get("_searchmode") == "raw":
        return None
    try:
        search_expression(text)
    except QueryError as e:
        raise BadRequest(f"bad query: {e}") from None
    return None


@hookimpl
def register_routes() -> list[tuple[str, Any]]:
    return [(r"^/(?P<database>[^/]+)/-/latest-matches$", latest_matches)]


@hookimpl
def prepare_jinja2_environment(env: Any) -> None:
    from jinja2 import ChoiceLoader

    env.loader = ChoiceLoader([env.loader, _PostsTemplateLoader()])
    env.globals["monitor_reorder"] = reorder_posts


class _PostsTemplateLoader(BaseLoader):
    """The posts table and row pages try `_table-<database>-posts.html` before Datasette's own
    `_table.html`: this answers that name, after any template the user has, with one that only
    puts the desk's columns first and then includes Datasette's, so nothing else changes."""

    SOURCE = (
        "{% set display_columns, display_rows = monitor_reorder(display_columns, display_rows) %}"
        '{% include "_table.html" %}'
    )

    def get_source(self, environment: Any, name: str) -> tuple[str, None, Any]:
        if not _POSTS_TEMPLATE.fullmatch(name):
            raise TemplateNotFound(name)
        return self.SOURCE, None, lambda: True

    def list_templates(self) -> list[str]:
        return []  # `datasette serve` lists templates at start: a name pattern has none


_POSTS_TEMPLATE = re.compile(r"_table-(?:table-|row-)?.+-posts\.html")


@hookimpl
def table_actions(datasette: Any, database: str, table: str) -> list[dict[str, str]] | None:
    if table in ("posts", "matches") and is_archive(datasette, database):
        return [_matches_link(datasette, database)]
    return None


@hookimpl
def database_actions(datasette: Any, database: str) -> list[dict[str, str]] | None:
    if is_archive(datasette, database):
        return [_matches_link(datasette, database)]
    return None


def _matches_link(datasette: Any, database: str) -> dict[str, str]:
    return {"href": datasette.urls.database(database) + "/-/latest-matches",
            "label": "Latest matches"}  # fmt: skip
