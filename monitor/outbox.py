"""I/O: deliver pending deliveries with backoff — the only writer of delivery status."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monitor.archive.sqlite import Store, iso_to_epoch, now_iso
from monitor.errors import ArchiveError
from monitor.http import MAX_RETRY_AFTER
from monitor.notifiers.base import DeliveryError

if TYPE_CHECKING:
    from monitor.config import Config
    from monitor.http import Http
    from monitor.notifiers.base import NotifierConfig

# Waits of 30 s doubling to 1 h take 1 h 4 min over the first 7 retries; 23 more of 1 h
# make about a day of retrying, as README says, before a delivery is `failed`.
MAX_ATTEMPTS = 31
FIRST_RETRY = 30.0
MAX_RETRY = 3600.0
MAX_DIGEST = 200  # matches in one digest message
CLAIM_MARGIN = 10.0  # a send is cut at timeout + 5 s, so the claim outlives it
# Messages in flight to one notifier, and to all of them: a receiver that hangs holds a few
# sends of its own, never the others' (a slow webhook made a healthy one wait 17.6 s).
PER_NOTIFIER = 4
IN_ALL = 32


class SendLimits:
    """The bound on messages in flight in all, shared by every delivery run of a process."""

    def __init__(self, in_all: int = IN_ALL, per_notifier: int = PER_NOTIFIER) -> None:
        self.in_all = asyncio.Semaphore(in_all)
        self.per_notifier = per_notifier


@dataclass
class OutboxResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    # The archive could not be written (a full disk): the round stopped, and what it had not
    # recorded waits, unchanged, for the next one.
    archive_error: str | None = None


def retry_delay(attempts: int, retry_after: float | None = None) -> float:
    delay = min(FIRST_RETRY * 2 ** max(0, attempts - 1), MAX_RETRY) * random.uniform(0.8, 1.2)
    # A receiver's Retry-After is honoured up to a day, as a source's is: a broken proxy's
    # "come back in a year" must not keep a delivery pending for a year.
    return max(delay, min(retry_after or 0.0, MAX_RETRY_AFTER))


async def deliver_due(
    store: Store,
    config: Config,
    http: Http,
    *,
    force: bool = False,
    now: float | None = None,
    notifier: str | None = None,
    limits: SendLimits | None = None,
) -> OutboxResult:
    """Send every delivery that is due (or, with `force`, every pending and failed one).

    Each notifier's messages go out on their own, a few at a time, beside the others': one
    receiver that hangs never delays another's. With `notifier`, only that one's deliveries
    (the daemon runs one such call per notifier, so that a new match need not wait for a
    hanging receiver's run to end); `limits` bounds the messages in flight across calls.

    A delivery's attempt is counted before it is sent, so a crash mid-send leaves it pending
    with its id unchanged: it is sent again, and the receiver can tell it is the same one.
    """
    now = time.time() if now is None else now
    limits = limits or SendLimits()
    statuses = ("pending", "failed") if force else ("pending",)
    only = " AND notifier = ?" if notifier is not None else ""
    rows = store.db.execute(
        f"SELECT * FROM deliveries WHERE status IN ({','.join('?' * len(statuses))}){only} "
        "ORDER BY created_at, rowid",
        (*statuses, notifier) if notifier is not None else statuses,
    ).fetchall()

    def is_due(row: Any) -> bool:
        due = iso_to_epoch(row["next_attempt_at"])
        return force or due is None or due <= now

    # A digest that was tried goes out whole again once any of it is due.
    due_digests = {row["batch"] for row in rows if row["batch"] and is_due(row)}
    by_notifier: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        if is_due(row) or row["batch"] in due_digests:
            by_notifier[row["notifier"]].append(row)
    result = OutboxResult()
    await asyncio.gather(
        *(
            _recorded(
                result,
                store.errors,
                _deliver_to(store, config, http, nid, items, result, now, force, limits),
            )  # fmt: skip
            for nid, items in by_notifier.items()
        )
    )
    return result


async def _recorded(
    result: OutboxResult, errors: tuple[type[Exception], ...], delivering: Any
) -> None:
    """A notifier's round, stopped where the archive can no longer record what it does.

    A delivery whose claim could not be written was not sent; one sent whose success could not
    be written keeps its claim and its id, and goes out again under that id once it expires.
    """
    try:
        await delivering
    except errors as exc:
        if result.archive_error is None:
            result.archive_error = f"the deliveries cannot be recorded: {_archive_reason(exc)}"
            result.errors.append(result.archive_error)


def _archive_reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ArchiveError) else f"{type(exc).__name__}: {exc}"


def _batches(
    notifier: NotifierConfig | None, rows: list[Any], now: float, force: bool
) -> list[list[Any]]:
    """One delivery per message, or for a digest notifier one message per elapsed window.

    A digest that was tried is sent again as it was, under the same id: a receiver that
    drops a webhook-id it has seen (as Standard Webhooks asks) must never be handed other
    matches under it. Only matches that were never tried make new digests.
    """
    if notifier is None or not notifier.digest:
        return [[row] for row in rows]
    tried: dict[str, list[Any]] = defaultdict(list)
    fresh = []
    for row in rows:
        if row["batch"]:
            tried[row["batch"]].append(row)
        else:
            fresh.append(row)
    batches = list(tried.values())
    if fresh:
        oldest = iso_to_epoch(fresh[0]["created_at"]) or now
        if force or now - oldest >= notifier.digest:  # else the window is still open
            batches += [fresh[i : i + MAX_DIGEST] for i in range(0, len(fresh), MAX_DIGEST)]
    return batches


def due_notifiers(store: Store) -> list[str]:
    """The notifiers with deliveries pending (due or not: `deliver_due` decides)."""
    rows = store.db.execute("SELECT DISTINCT notifier FROM deliveries WHERE status = 'pending'")
    return [row[0] for row in rows]


async def _deliver_to(
    store: Store,
    config: Config,
    http: Http,
    notifier_id: str,
    rows: list[Any],
    result: OutboxResult,
    now: float,
    force: bool,
    limits: SendLimits,
) -> None:
    notifier = config.notifiers.get(notifier_id)
    batches = _batches(notifier, rows, now, force)
    if notifier is None:
        for batch in batches:
            _record_failure(
                store, config, batch, f"notifier {notifier_id!r} is not configured", None, result
            )
        return
    queue = iter(batches)
    broken: list[Exception] = []

    async def sender() -> None:
        # The senders share one queue: the messages start in order, a few at a time.
        for batch in queue:
            if broken:
                return  # the archive failed: the round stops where it is
            async with limits.in_all:
                try:
                    await _send(store, config, http, notifier, batch, result)
                except store.errors as exc:
                    broken.append(exc)
                    return

    await asyncio.gather(*(sender() for _ in range(min(limits.per_notifier, len(batches)))))
    if broken:
        raise broken[0]


async def _send(
    store: Store,
    config: Config,
    http: Http,
    notifier: NotifierConfig,
    batch: list[Any],
    result: OutboxResult,
) -> None:
    digest = bool(notifier.digest)
    # Claimed only now, with a slot to send in: a lease taken while waiting could run out.
    batch = _claim(store, batch, lease=notifier.timeout + CLAIM_MARGIN, digest=digest)
    if not batch:
        return
    ids = [row["id"] for row in batch]
    # A digest is identified by its first delivery: the same id on every retry.
    message_id = (batch[0]["batch"] or ids[0]) if digest else ids[0]
    # The targets an earlier try reached (a notifier with several URLs): not sent again.
    reached = frozenset(json.loads(batch[0]["reached"] or "[]"))
    try:
        await asyncio.wait_for(
            notifier.send(
                [json.loads(row["payload"]) for row in batch], message_id, http, reached=reached
            ),
            notifier.timeout + 5,
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - a notifier's failure is recorded, never raised
        if isinstance(exc, DeliveryError):
            reason = str(exc)
        elif isinstance(exc, TimeoutError):
            reason = "timed out"
        else:
            reason = f"internal error: {type(exc).__name__}: {exc}"
        retry_after = exc.retry_after if isinstance(exc, DeliveryError) else None
        if isinstance(exc, DeliveryError) and exc.reached:
            reached = exc.reached
        _record_failure(store, config, batch, reason, retry_after, result, reached)
        return
    with store.transaction() as db:
        db.executemany(
            "UPDATE deliveries SET status = 'sent', sent_at = ?, last_error = NULL, "
            "next_attempt_at = NULL, claimed_until = NULL WHERE id = ?",
            [(now_iso(), i) for i in ids],
        )
    result.sent += len(ids)


def _claim(store: Store, batch: list[Any], lease: float, digest: bool = False) -> list[Any]:
    """The deliveries of `batch` this process may send now, each with its attempt counted.

    Another process (a `monitor fetch` beside `monitor run`) may be sending the same rows: a
    claim is an atomic compare-and-set on `claimed_until`. A crash mid-send leaves the claim
    to expire, and the delivery is sent again with the same id. A digest is claimed whole or
    not at all, and its members are bound to it (`batch`) from the first try on.
    """
    now = now_iso()
    until = now_iso(time.time() + lease)
    claimed = []
    try:
        with store.transaction() as db:
            for row in batch:
                cur = db.execute(
                    "UPDATE deliveries SET attempts = attempts + 1, claimed_until = ? "
                    "WHERE id = ? AND status != 'sent' "
                    "AND (claimed_until IS NULL OR claimed_until < ?)",
                    (until, row["id"], now),
                )
                if cur.rowcount == 1:
                    claimed.append(row)
            if digest and len(claimed) != len(batch):
                raise _Busy  # rolls the claims back: part of it is being sent elsewhere
            if digest and not batch[0]["batch"]:
                db.executemany(
                    "UPDATE deliveries SET batch = ? WHERE id = ?",
                    [(batch[0]["id"], row["id"]) for row in batch],
                )
    except _Busy:
        return []
    return claimed


class _Busy(Exception):
    pass


def _record_failure(
    store: Store, config: Config, batch: list[Any], reason: str, retry_after: float | None,
    result: OutboxResult, reached: frozenset[str] = frozenset(),
) -> None:  # fmt: skip
    reason = config.redact(reason)
    first = batch[0]
    result.errors.append(f"{first['alert_id']} → {first['notifier']}: {reason}")
    with store.transaction() as db:
        attempts_of = {
            row["id"]: db.execute(
                "SELECT attempts FROM deliveries WHERE id = ?", (row["id"],)
            ).fetchone()[0]
            for row in batch
        }
        # One time for the whole message, so that a digest comes due again all at once.
        next_at = now_iso(time.time() + retry_delay(max(1, *attempts_of.values()), retry_after))
        for row in batch:
            attempts = attempts_of[row["id"]]
            if attempts >= MAX_ATTEMPTS:
                db.execute(
                    "UPDATE deliveries SET status = 'failed', last_error = ?, "
                    "next_attempt_at = NULL, claimed_until = NULL, reached = ? WHERE id = ?",
                    (reason, json.dumps(sorted(reached)) if reached else None, row["id"]),
                )
                result.failed += 1
            else:
                db.execute(
                    "UPDATE deliveries SET status = 'pending', last_error = ?, next_attempt_at = ?,"
                    " claimed_until = NULL, reached = ? WHERE id = ?",
                    (reason, next_at, json.dumps(sorted(reached)) if reached else None, row["id"]),
                )
                result.retrying += 1


def next_due(store: Store) -> float | None:
    row = store.db.execute(
        "SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending'"
    ).fetchone()
    return iso_to_epoch(row[0]) if row and row[0] else None
