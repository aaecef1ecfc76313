"""Routing policies shipped with voicetriage (read with importlib.resources)."""
