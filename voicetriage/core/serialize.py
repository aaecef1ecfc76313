"""The one serializer: events and values to plain JSON types and wire text.

Every output (the event log, the webhook, ``/events``, the event bus, the
native protocol, AudioHook's ``voicetriage.*`` entities) turns an event into
JSON here, so a field reads the same everywhere.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, is_dataclass
from typing import Any, Mapping


def jsonable(value: Any) -> Any:
    """Plain JSON types for values that may hold numpy scalars, tuples or sets."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    tolist = getattr(value, "tolist", None)  # numpy array
    if callable(tolist):
        return jsonable(tolist())
    return str(value)


def to_dict(event: Any) -> dict[str, Any]:
    """An event's fields as plain JSON types (tuples become lists)."""
    fields = asdict(event) if is_dataclass(event) and not isinstance(event, type) else dict(vars(event))
    return jsonable(fields)


def to_message(event: Any) -> dict[str, Any]:
    """The log/webhook/bus form of an event: ``{"type": event.kind, **fields}``."""
    return {"type": event.kind, **to_dict(event)}


def client_message(event: Any) -> dict[str, Any]:
    """What a live client reads (native protocol, ``/events``): the message form,
    plus ``text`` on partials; an event that came off the bus ready-made passes as is."""
    wire = getattr(event, "bus_message", None)
    if wire is not None:
        return wire
    msg = to_message(event)
    if msg["type"] == "partial":
        msg["text"] = msg.get("stable", "") + msg.get("unstable", "")
    return msg


def dumps(message: Any) -> str:
    """Compact UTF-8 JSON text of a message (what goes on every wire)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=jsonable)


__all__ = ["jsonable", "to_dict", "to_message", "client_message", "dumps"]
