"""Log lines that cannot be forged or flooded, and that never carry a secret.

:func:`safe` escapes control characters (a newline in a call id cannot start a
fake log line) and caps the length of anything that came from the wire.
:class:`RedactSecrets` is a logging filter that blanks credentials wherever a
library logs them (websockets at debug level logs every request header), and masks
caller numbers (:func:`mask_number`) in the wire messages a library logs.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import reprlib
import time

CAP = 200


def mask_number(raw: object) -> str:
    """A caller number as people may see it: its last four digits only ("•••8000").

    Anything that is not a number of 7 digits or more shows no digit at all; an
    absent number reads "unknown". The dashboard shows callers this way.
    """
    if raw is None or not str(raw).strip():
        return "unknown"
    digits = re.sub(r"\D", "", str(raw))
    if len(digits) >= 7:
        return "\u2022\u2022\u2022" + digits[-4:]
    return "\u2022\u2022\u2022"


def safe(value: object, cap: int = CAP) -> str:
    """``value`` as one printable line of at most ``cap`` characters (plus a marker).

    The cap holds after escaping: 120 NUL bytes are not 480 characters of ``\\x00``."""
    text = value if isinstance(value, str) else str(value)
    shown = text[:cap]
    if not shown.isprintable():
        shown = shown.encode("unicode_escape").decode("ascii")
    if len(text) > cap or len(shown) > cap:
        return shown[:cap] + f"...({len(text)} chars)"
    return shown


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple = 3, 6, 6, 6
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = 80, 40, 80


def brief(value: object, cap: int = 120) -> str:
    """A wire value (any JSON shape, any size) for an error message or a log line: its
    repr, shortened per level like :mod:`reprlib` and capped by :func:`safe`. Never raises
    (an integer over Python's 4,300-digit limit, a structure nested past the recursion limit)."""
    try:
        text = _REPR.repr(value)
    except (ValueError, RecursionError, MemoryError):
        text = f"<{type(value).__name__}>"
    return safe(text, cap)


# header lines and URL parameters that carry credentials
_HEADER = re.compile(r"(?im)^(\s*[<>]?\s*(?:authorization|cookie|set-cookie|x-twilio-signature|x-api-key|"
                     r"signature|signature-input|proxy-authorization)\s*:\s*)(.+)$")
_QUERY = re.compile(r"(?i)([?&](?:token|access_token|api_key|key|secret)=)[^&\s\"']+")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


# caller and called numbers in wire messages a library logs (websockets at debug level logs
# every frame): the native start's caller_id, Twilio's customParameters, AudioHook's ani/dnis
_NUMBER = re.compile(r"""(?i)(["'](?:caller_id|callerid|caller|called|from|to|ani|dnis)["']\s*:\s*["'])([^"'\\]*)""")
#: set VOICETRIAGE_LOG_CALLER_NUMBERS=1 to log caller numbers whole (masked by default)
NUMBERS_ENV = "VOICETRIAGE_LOG_CALLER_NUMBERS"


# what looks like a phone number anywhere in a library's frame dump (a long frame is shown
# with its middle cut out, so the key before a number may be gone): 7+ digits
_PHONE = re.compile(r"\+?\d(?:[\d\s().-]*\d){6,}")


def _mask_phone(m: re.Match) -> str:
    return mask_number(m.group()) if len(re.findall(r"\d", m.group())) >= 7 else m.group()


def _mask_digits(m: re.Match) -> str:
    value = m.group(2)
    return m.group(1) + (mask_number(value) if len(re.findall(r"\d", value)) >= 5 else value)


def redact(text: str, numbers: bool = True) -> str:
    """``text`` without credentials and (``numbers``) with caller numbers masked."""
    text = _HEADER.sub(lambda m: m.group(1) + "[redacted]", text)
    text = _QUERY.sub(lambda m: m.group(1) + "[redacted]", text)
    if numbers:
        text = _NUMBER.sub(_mask_digits, text)
    return _BEARER.sub(lambda m: m.group(1) + "[redacted]", text)


class RedactSecrets(logging.Filter):
    """Blanks credentials and masks caller numbers in every record (install on the
    handlers); ``numbers`` False (or :data:`NUMBERS_ENV` set to 1): numbers whole."""

    def __init__(self, numbers: bool | None = None) -> None:
        super().__init__()
        self.numbers = os.environ.get(NUMBERS_ENV, "") != "1" if numbers is None else numbers

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logging's problem, not ours
            return True
        cleaned = redact(message, self.numbers)
        if self.numbers and record.name.startswith("websockets"):
            cleaned = _PHONE.sub(_mask_phone, cleaned)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.numbers)
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Add :class:`RedactSecrets` to every handler of ``logger`` (default: the root)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())


#: the call a log record belongs to (set by the connection layer for its task and
#: everything it starts; log records carry it as ``record.call_id``)
CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("voicetriage_call_id", default=None)


class CallContext(logging.Filter):
    """Adds ``record.call_id`` (or "-") from :data:`CALL_ID`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "call_id"):
            record.call_id = CALL_ID.get() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, call_id, message (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "call_id": getattr(record, "call_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def install_log_context(json_lines: bool = False) -> None:
    """Every handler of the root logger gets the call id (and, with ``json_lines``, JSON lines)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, CallContext) for f in handler.filters):
            handler.addFilter(CallContext())
        if json_lines:
            handler.setFormatter(JsonFormatter())


__all__ = ["safe", "brief", "mask_number", "redact", "RedactSecrets", "install_redaction", "CALL_ID", "CallContext",
           "JsonFormatter",
           "install_log_context"]
