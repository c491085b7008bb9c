"""What every notifier shares: its common config keys and the one method that delivers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitor.config_types import Duration

if TYPE_CHECKING:
    from monitor.http import Http


class DeliveryError(Exception):
    """A delivery that did not go through; the message is what `monitor alerts` shows."""

    def __init__(
        self, reason: str, retry_after: float | None = None, reached: frozenset[str] = frozenset()
    ):
        super().__init__(reason)
        self.retry_after = retry_after
        # A notifier with several targets: those that have the message, not to be sent again.
        self.reached = reached


@dataclass(frozen=True, kw_only=True)
class NotifierConfig:
    """Keys every `[notifiers.<id>]` table accepts; subclasses add their own as fields."""

    id: str
    type: str
    digest: Duration | None = None  # group matches of this window into one message
    timeout: Duration = 20.0

    def check(self) -> list[str]:
        """Problems that take loading the notifier's own library to find (`key: what`).

        Asked when the configuration is read with `need_notifiers` (`monitor check`, `fetch`,
        `run`, `alerts --retry`); not by `search` or `sources`, which should not pay for it.
        """
        return []

    async def send(
        self,
        payloads: list[dict[str, Any]],
        delivery_id: str,
        http: Http,
        *,
        reached: frozenset[str] = frozenset(),
    ) -> None:
        """Deliver one alert payload (or, for a digest, several) or raise DeliveryError.

        `delivery_id` is the same on every retry of this delivery, so receivers can
        de-duplicate (Standard Webhooks `webhook-id`, email `Message-ID`). `reached` holds
        what an earlier try's DeliveryError said had the message already.
        """
        raise NotImplementedError
