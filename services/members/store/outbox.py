"""The members outbox: every capability stages its facts here, in its own transaction."""

from __future__ import annotations

from services.kit.events.outbox import Outbox
from services.members.store.tables import outbox

OUTBOX = Outbox(outbox, "members")
