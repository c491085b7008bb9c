"""Shared test helpers: where the real captured responses live, and a fixture that needs them."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import respx.mocks

from monitor import eventloop
from tests.pgserver import PgServer

# respx patches httpcore by default; the monitor's client runs on its own transport
# (monitor.transport), so mocks go in at the client's choice of transport instead.
respx.mocks.DEFAULT_MOCKER = "httpx"


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """The async tests run on the loop the monitor runs on (uvloop's, see monitor.eventloop)."""
    return {"monitor": eventloop.loop_factory()}


REPO = Path(__file__).resolve().parents[1]
REALDATA = (REPO / ".." / "shared" / "realdata").resolve()  # next to the repo, not inside it
FIXTURES = REPO / "fixtures"


@pytest.fixture
def realdata() -> Path:
    """The realdata directory; the test is skipped when it is not checked out."""
    if not REALDATA.is_dir():
        pytest.skip(f"realdata not present at {REALDATA}")
    return REALDATA


def real_bytes(path: Path) -> bytes:
    """The bytes of a real capture; the test is skipped when realdata is not checked out."""
    if not path.exists():
        pytest.skip(f"realdata not present: {path}")
    return path.read_bytes()


@dataclass
class Cert:
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    """A self-signed certificate for 127.0.0.1 and localhost, usable as its own CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Cert(cert_file, key_file)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server for the session (tests/pgserver.py). In CI a missing server is
    a failure, not a skip: `scripts/test.sh` installs Debian's `postgresql` when it is missing."""
    import os

    from tests.pgserver import server_bin, start_cluster

    missing = None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing = "psycopg is not installed (pip install -e '.[test]')"
    if missing is None and server_bin() is None:
        missing = "no PostgreSQL server (initdb) here: scripts/test.sh installs it"
    if missing is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI needs a real PostgreSQL: {missing}")
        pytest.skip(missing)
    with start_cluster() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """The URL of a new, empty database on the test server, dropped after the test."""
    with pg_server.database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The `[monitor] database` setting of a new archive, on each backend in turn."""
    if request.param == "sqlite":
        yield str(tmp_path / "monitor.db")
        return
    server = request.getfixturevalue("pg_server")
    with server.database() as url:
        yield url
