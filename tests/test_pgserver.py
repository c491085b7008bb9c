"""The throwaway PostgreSQL the archive's tests run on: real, on loopback, with passwords checked."""

from __future__ import annotations

import pytest

from tests.pgserver import PgServer, server_bin


def test_the_server_programs_are_found_where_debian_keeps_them() -> None:
    found = server_bin()
    if found is None:
        pytest.skip("no PostgreSQL server installed")
    assert (found / "initdb").exists() and (found / "pg_ctl").exists()


def test_each_test_gets_a_new_empty_archive_on_loopback(pg_server: PgServer, pg_url: str) -> None:
    import psycopg

    assert pg_server.host == "127.0.0.1"
    with psycopg.connect(pg_url) as con:
        tables = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchone()
        assert tables == (0,)
        assert con.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)


def test_a_wrong_password_is_refused(pg_server: PgServer) -> None:
    import psycopg

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_server.url(password="wrong")).close()
