"""Loops that retry on any error must still stop when cancelled.

A driver may turn the CancelledError that interrupts it into an error of its own (asyncpg
and SQLAlchemy do, for a query cut off mid-way); a retry loop catching Exception then
swallows the cancellation and runs on after its process believes it stopped.
"""

from __future__ import annotations

import asyncio


def stop_if_cancelled() -> None:
    """Re-raise the cancellation of the current task, if one is pending."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
