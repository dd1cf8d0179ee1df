"""Protobuf timestamps from the aware datetimes the services keep."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def timestamp_or_none(value: datetime | None) -> Timestamp | None:
    """For optional fields: None leaves the field unset."""
    return timestamp(value) if value is not None else None
