"""Offline transcription of recorded files (voicetriage transcribe) and its output formats."""
