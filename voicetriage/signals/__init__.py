"""Caller signals (triage): each extractor turns a call's audio and events into Signals."""

from .base import Signal

__all__ = ["Signal"]
