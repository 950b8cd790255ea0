"""Notifications: the events outbox, routes and silences, and delivery to webhooks,
e-mail and Apprise URLs (chat and paging services)."""
