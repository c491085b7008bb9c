"""A disk that fills up and empties again, for a test's `monitor` process when no tmpfs can be
mounted (not root): every write transaction first reads the page cap from the file named by
$MONITOR_TEST_PAGE_CAP and sets SQLite's max_page_count to it. A cap at the archive's size
is a full disk (SQLITE_FULL); a large one, the space back."""

from __future__ import annotations

import os
import sqlite3
from typing import Any


def capped_connect(cap_file: str) -> Any:
    """sqlite3.connect, whose connections apply the cap in `cap_file` at each BEGIN."""

    class CappedConnection(sqlite3.Connection):
        def execute(self, sql: str, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
            if sql.startswith("BEGIN"):
                try:
                    with open(cap_file) as f:
                        cap = int(f.read().strip() or 0)
                except (OSError, ValueError):
                    cap = 0
                if cap:
                    super().execute(f"PRAGMA max_page_count = {cap}")
            return super().execute(sql, *args, **kwargs)

    connect = sqlite3.connect

    def capped(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs.setdefault("factory", CappedConnection)
        return connect(*args, **kwargs)

    return capped


if os.environ.get("MONITOR_TEST_PAGE_CAP"):
    sqlite3.connect = capped_connect(os.environ["MONITOR_TEST_PAGE_CAP"])
