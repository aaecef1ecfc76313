"""Peer streaming servers, each installed in its own venv, and clients of their protocols."""
