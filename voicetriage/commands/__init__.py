"""Subcommands of the voicetriage CLI, one module each."""
