"""Log lines that cannot be forged or flooded, and that never carry a secret.

:func:`safe` escapes control characters (a newline in a call id cannot start a
fake log line) and caps the length of anything that came from the wire.
:class:`RedactSecrets` is a logging filter that blanks credentials wherever a
library logs them (websockets at debug level logs every request header).
"""

from __future__ import annotations

import logging
import re

CAP = 200


def safe(value: object, cap: int = CAP) -> str:
    """``value`` as one printable line of at most ``cap`` characters (plus a marker)."""
    text = value if isinstance(value, str) else str(value)
    cut = len(text) > cap
    text = text[:cap].encode("unicode_escape").decode("ascii") if not text[:cap].isprintable() else text[:cap]
    return text + (f"...(+{len(value if isinstance(value, str) else str(value)) - cap} chars)" if cut else "")


# header lines and URL parameters that carry credentials
_HEADER = re.compile(r"(?im)^(\s*[<>]?\s*(?:authorization|cookie|set-cookie|x-twilio-signature|x-api-key|"
                     r"signature|signature-input|proxy-authorization)\s*:\s*)(.+)$")
_QUERY = re.compile(r"(?i)([?&](?:token|access_token|api_key|key|secret)=)[^&\s\"']+")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact(text: str) -> str:
    text = _HEADER.sub(lambda m: m.group(1) + "[redacted]", text)
    text = _QUERY.sub(lambda m: m.group(1) + "[redacted]", text)
    return _BEARER.sub(lambda m: m.group(1) + "[redacted]", text)


class RedactSecrets(logging.Filter):
    """Blanks credentials in every record (install on the handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logging's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Add :class:`RedactSecrets` to every handler of ``logger`` (default: the root)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())


__all__ = ["safe", "redact", "RedactSecrets", "install_redaction"]
