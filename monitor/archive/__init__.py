"""The archive: posts, their versions, search, fetch log, source state and the outbox.

Two backends behind one interface, `Store` (monitor.archive.sqlite): SQLite, the default, in
one file; and PostgreSQL (monitor.archive.postgres), for an archive many processes and
machines share. `[monitor] database` chooses: a path means SQLite, a `postgresql://` URL
PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.archive.sqlite import Store


def is_url(database: str) -> bool:
    """Whether the `database` setting names a PostgreSQL server rather than a file."""
    return database.startswith(("postgresql://", "postgres://"))


def open_archive(database: str, *, create: bool = True) -> Store:
    """The archive `database` names; with `create`, made (or brought to this schema) if need be.

    Raises ArchiveError, naming the file or the setting, when it cannot be opened."""
    if is_url(database):
        from monitor.archive.postgres import PgStore

        return PgStore(database, create=create)
    from monitor.archive.sqlite import Store

    return Store(database, create=create)


def describe(database: str) -> str:
    """The setting as messages and logs show it: a URL's password masked."""
    if is_url(database):
        from monitor.archive.postgres import masked

        return masked(database)
    return database


def archive_exists(database: str) -> bool:
    """Whether there may be an archive there already (a server is asked when it is opened)."""
    return is_url(database) or Path(database).exists()
