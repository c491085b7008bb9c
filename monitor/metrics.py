"""Prometheus metrics of the daemon (`[monitor] metrics`), served with prometheus-client.

Counters and the fetch-duration histogram are counted as the daemon works; what the archive
already knows (each source's last success, the outbox by status) is read from it at each
scrape, so the figures agree with `monitor sources` and `monitor alerts` after a restart too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from monitor.archive.sqlite import iso_to_epoch

if TYPE_CHECKING:
    from monitor.pipeline import SourceResult


class Metrics:
    """The daemon's metrics, on their own registry (tests may make several)."""

    def __init__(self, database: str, source_types: dict[str, str]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.source_types = source_types
        self.fetches = Counter(
            "monitor_fetches", "Fetches by source and outcome (ok, not_modified, failed).",
            ["source", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.posts = Counter(
            "monitor_posts", "Posts stored, by source and kind (new, updated).",
            ["source", "kind"], registry=self.registry,
        )  # fmt: skip
        self.matches = Counter(
            "monitor_matches", "Alert matches, by alert.", ["alert"], registry=self.registry
        )
        # By source type, not source: a histogram per source is thousands of series.
        self.duration = Histogram(
            "monitor_fetch_duration_seconds", "How long a fetch took, by source type.",
            ["type"], registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )  # fmt: skip
        self.registry.register(_ArchiveCollector(database))

    def fetched(self, result: SourceResult) -> None:
        outcome = "failed" if not result.ok else "not_modified" if result.not_modified else "ok"
        self.fetches.labels(result.source_id, outcome).inc()
        if result.new:
            self.posts.labels(result.source_id, "new").inc(result.new)
        if result.updated:
            self.posts.labels(result.source_id, "updated").inc(result.updated)
        for m in result.matches:
            self.matches.labels(m.alert_id).inc()
        kind = self.source_types.get(result.source_id, "unknown")
        self.duration.labels(kind).observe(result.seconds)

    def serve(self, address: str) -> Any:
        """Serve /metrics at `host:port` from a thread; returns the server, to shut down."""
        from prometheus_client import start_http_server

        host, _, port = address.rpartition(":")
        server, _thread = start_http_server(
            int(port), addr=host.strip("[]") or "127.0.0.1", registry=self.registry
        )
        return server


class _ArchiveCollector:
    """Gauges read from the archive at scrape time, on a connection of the scrape's own."""

    def __init__(self, database: str) -> None:
        self.database = database

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from monitor.archive import open_archive

        now = time.time()
        try:
            store = open_archive(self.database, create=False)
        except Exception:  # noqa: BLE001 - out of reach: this scrape shows the counters alone
            return
        db = store.db
        try:
            age = GaugeMetricFamily(
                "monitor_source_last_success_age_seconds",
                "Seconds since each source's last successful fetch.", labels=["source"],
            )  # fmt: skip
            failing = GaugeMetricFamily(
                "monitor_source_failures", "Consecutive failures of each source.",
                labels=["source"],
            )  # fmt: skip
            for sid, last_ok, failures in db.execute(
                "SELECT id, last_ok_at, failures FROM sources"
            ):
                ok_at = iso_to_epoch(last_ok)
                if ok_at is not None:
                    age.add_metric([sid], now - ok_at)
                failing.add_metric([sid], failures or 0)
            deliveries = GaugeMetricFamily(
                "monitor_deliveries", "Deliveries in the outbox, by status.", labels=["status"]
            )
            counts = dict(db.execute("SELECT status, count(*) FROM deliveries GROUP BY status"))
            for status in ("pending", "sent", "failed"):
                deliveries.add_metric([status], counts.get(status, 0))
            (oldest,) = db.execute(
                "SELECT min(created_at) FROM deliveries WHERE status = 'pending'"
            ).fetchone()
            backlog_age = iso_to_epoch(oldest)
            yield age
            yield failing
            yield deliveries
            yield GaugeMetricFamily(
                "monitor_outbox_backlog", "Deliveries waiting to be sent.",
                value=counts.get("pending", 0),
            )  # fmt: skip
            yield GaugeMetricFamily(
                "monitor_outbox_oldest_pending_age_seconds",
                "Age of the oldest delivery waiting to be sent (0 when none waits).",
                value=now - backlog_age if backlog_age is not None else 0,
            )
        except store.errors:
            return  # an archive busy or broken: this scrape shows the counters alone
        finally:
            store.close()
