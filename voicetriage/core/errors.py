"""One error hierarchy for voicetriage.

Every error carries a stable ``code`` that the wire protocols reuse in their
``error`` messages, so clients can branch on the code and show the message.

    VoiceTriageError
    ├── ConfigError            bad configuration value or file
    ├── ModelError             model id unknown, package missing, checksum bad
    ├── AudioFormatError       unsupported encoding / rate / channels, odd frame
    ├── AudioFileError         a file that cannot be read or decoded
    ├── OutputError            a result that cannot be written
    └── ProtocolError          a wire message that breaks the protocol
"""

from __future__ import annotations


class VoiceTriageError(Exception):
    """Base class. ``code`` is stable and machine-readable."""

    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(VoiceTriageError):
    code = "bad_config"


class ModelError(VoiceTriageError):
    code = "model_unavailable"


class AudioFormatError(VoiceTriageError):
    code = "bad_audio_format"


class AudioFileError(VoiceTriageError):
    code = "bad_audio_file"


class OutputError(VoiceTriageError):
    code = "output_error"


class ProtocolError(VoiceTriageError):
    code = "protocol_error"


__all__ = [
    "VoiceTriageError",
    "ConfigError",
    "ModelError",
    "AudioFormatError",
    "AudioFileError",
    "OutputError",
    "ProtocolError",
]
