"""The one registry of notifier types: `type = "..."` in a `[notifiers.<id>]` table."""

from __future__ import annotations

import importlib

from monitor.notifiers.base import NotifierConfig

TYPES: dict[str, str] = {
    "apprise": "monitor.notifiers.apprise:AppriseNotifier",
    "email": "monitor.notifiers.email:EmailNotifier",
    "webhook": "monitor.notifiers.webhook:WebhookNotifier",
}


def notifier_class(type_name: str) -> type[NotifierConfig]:
    module_name, _, attr = TYPES[type_name].partition(":")
    return getattr(importlib.import_module(module_name), attr)
