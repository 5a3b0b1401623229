"""How many messages the store worker may hold unacknowledged: a window sized in events.

A broker's prefetch limit counts *messages*, but a store message carries whatever
one enrich task forwarded: 500 events from a busy shipper, 2 from a web process
that served two pages in its last 200 ms. With a window fixed in messages the
store can never gather a full batch from small messages and flushes a handful of
them per flush interval: its capacity collapses exactly when a site has many web
processes at a modest rate each. So the window is kept at about ``events`` events:
the message limit is that many events divided by the size of the messages seen.

The size estimate rises at once and decays slowly, so a burst of large messages
shrinks the window on the next message (memory stays near ``events`` events) while
a single small message does not open it wide.
"""

from __future__ import annotations

from math import ceil


class PrefetchWindow:
    """The store's prefetch limit (messages) for a target of ``events`` held events.

    ``base``: the messages the worker may hold for its other queues (its usual
    prefetch); the store's share comes on top.
    """

    DECAY = 0.05  # weight of a new, smaller message in the size estimate

    def __init__(self, events: int, base: int) -> None:
        self.events = max(1, events)
        self.base = max(1, base)
        self.events_per_message = 1.0
        self._seen = False

    def observe(self, events_in_message: int) -> None:
        size = max(1, events_in_message)
        if not self._seen or size >= self.events_per_message:
            self.events_per_message = float(size)
            self._seen = True
        else:
            self.events_per_message += self.DECAY * (size - self.events_per_message)

    def limit(self) -> int:
        """Messages the worker may hold: base plus the store's window (never 0, which means unlimited)."""
        return self.base + max(1, ceil(self.events / self.events_per_message))

    def worth_updating(self, current: int) -> bool:
        """A new limit is sent to the broker only when it moved by more than an eighth:
        on RabbitMQ every change is a basic.qos round trip."""
        wanted = self.limit()
        return current <= 0 or abs(wanted - current) * 8 > current
