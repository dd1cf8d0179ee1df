"""One gRPC servicer from the handler classes of several capabilities.

A service such as MembersService is implemented by several capabilities (communities,
moderation, privacy), each in its own class. `compose` hands every method of the service
to the one part that defines it, and refuses at start a method no part or two parts define,
so a servicer can neither miss an RPC nor answer one twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.descriptor import ServiceDescriptor

S = TypeVar("S")


def compose(base: Callable[[], S], service: ServiceDescriptor, *parts: object) -> S:
    """An instance of the generated servicer `base` whose methods are the parts'."""
    servicer: Any = base()
    for method in service.methods:
        owners = [part for part in parts if _defines(part, method.name)]
        if len(owners) != 1:
            found = ", ".join(type(owner).__name__ for owner in owners) or "none"
            raise TypeError(
                f"{service.full_name}.{method.name} must be defined by exactly one part "
                f"(found: {found})"
            )
        setattr(servicer, method.name, getattr(owners[0], method.name))
    for part in parts:
        extra = [
            name
            for name in vars(type(part))
            if name[:1].isupper() and name not in service.methods_by_name
        ]
        if extra:
            raise TypeError(f"{type(part).__name__} defines {extra}, not in {service.full_name}")
    return servicer  # type: ignore[no-any-return]


def _defines(part: object, name: str) -> bool:
    return any(name in vars(klass) for klass in type(part).__mro__ if klass is not object)
