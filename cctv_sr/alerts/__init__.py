"""Watchlist alerts sent out of a run: :mod:`~cctv_sr.alerts.webhook` POSTs each alert event
(the same JSON object as its ``events.jsonl`` line) to ``--alert-webhook URL``."""

from cctv_sr.alerts.webhook import EVENT_HEADER, WebhookConfig, WebhookCounts, WebhookSender

__all__ = ["EVENT_HEADER", "WebhookConfig", "WebhookCounts", "WebhookSender"]
