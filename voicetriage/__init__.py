"""voicetriage: real-time speech triage for phone lines.

Importing the package loads nothing heavy: models are loaded explicitly by
whoever starts a server or a batch job.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
