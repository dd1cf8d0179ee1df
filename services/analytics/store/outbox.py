"""Analytics' outbox: facts staged in the caller's transaction; the relay publishes them."""

from __future__ import annotations

from services.analytics.store.tables import outbox
from services.kit.events.outbox import Outbox

OUTBOX = Outbox(outbox, "analytics")
