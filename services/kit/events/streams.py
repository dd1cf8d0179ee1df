"""JetStream streams: one per producing service plus the dead-letter stream, created or
updated at start so that every replica can do it and the result is the same."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from services.kit.events.envelope import SUBJECT_PREFIX, stream_subjects

log = logging.getLogger(__name__)

DEADLETTER_STREAM = "STUDYHALL_DEADLETTER"
DEADLETTER_PREFIX = f"{SUBJECT_PREFIX}.deadletter"


@dataclass(frozen=True)
class StreamLimits:
    """Operator settings. History is kept by default so projections can be rebuilt."""

    replicas: int = 1
    max_age_seconds: float = 0  # 0: keep forever
    max_bytes: int = -1
    # JetStream drops a re-published event id inside this window; the inbox is what
    # guarantees exactly-once effects, the window only saves work.
    duplicate_window_seconds: float = 120


def stream_name(service: str) -> str:
    return f"STUDYHALL_{service.upper()}"


def service_stream(service: str, limits: StreamLimits) -> StreamConfig:
    return StreamConfig(
        name=stream_name(service),
        description=f"Facts published by the {service} service",
        subjects=[stream_subjects(service)],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=limits.replicas,
        max_age=limits.max_age_seconds,
        max_bytes=limits.max_bytes,
        duplicate_window=limits.duplicate_window_seconds,
    )


def deadletter_stream(limits: StreamLimits) -> StreamConfig:
    return StreamConfig(
        name=DEADLETTER_STREAM,
        description="Messages a consumer could not handle, with the reason; replayable",
        subjects=[f"{DEADLETTER_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=limits.replicas,
        max_age=limits.max_age_seconds,
        duplicate_window=limits.duplicate_window_seconds,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
            log.info("created stream %s", config.name)
            return
        except Exception:
            # Another replica created it first; fall through to update it.
            pass
    await js.update_stream(config)
