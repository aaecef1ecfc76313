"""Ingest adapters: each turns one protocol's wire messages into calls."""
