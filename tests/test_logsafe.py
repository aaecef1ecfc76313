"""What reaches a log: no credential, no caller number whole (issue 11, items 1 and 2).

The lines are those websockets writes at debug level (``-vv``) for frames and headers."""

from __future__ import annotations

import io
import logging

from voicetriage.core.logsafe import NUMBERS_ENV, RedactSecrets, redact

NATIVE = """< TEXT '{"type": "start", "call_id": "c1", "caller_id": "+8613800138000", "encoding": "mulaw"}' [90 bytes]"""
TWILIO = ("""< TEXT '{"event": "start", "start": {"customParameters": {"From": "+14155550143", "To": "+18005551212"},"""
          """ "streamSid": "MZ1"}}' [120 bytes]""")
AUDIOHOOK = """< TEXT '{"participant": {"id": "883e", "ani": "tel:+1-555-555-1234", "aniName": "", "dnis": "+1-555-555-4321"}}'"""


def test_caller_numbers_are_masked_in_logged_wire_messages():
    for line, numbers in ((NATIVE, ["8613800138000"]), (TWILIO, ["14155550143", "18005551212"]),
                          (AUDIOHOOK, ["5555551234", "5555554321"])):
        out = redact(line)
        digits = "".join(ch for ch in out if ch.isdigit())
        for n in numbers:
            assert n not in digits and n[-4:] in out, out  # the last four digits stay, to tell calls apart
        assert '"call_id": "c1"' in out or "c1" not in line  # the rest of the line is untouched
    assert "\u2022\u2022\u20228000" in redact(NATIVE)
    assert redact('"to": "queue-2"') == '"to": "queue-2"'  # not a number: kept


def test_a_truncated_frame_keeps_no_number_whole():
    line = """< TEXT '{"type": "start", "call_id": "c1", "caller_id": "+86138001...", "encoding"' [90 bytes]"""
    assert "86138001" not in redact(line)


def test_credentials_are_still_blanked_beside_numbers():
    out = redact("> Authorization: Bearer abc.def\n" + NATIVE)
    assert "abc.def" not in out and "8613800138000" not in out


def _logged(filt: RedactSecrets, line: str, logger: str = "voicetriage.test-logsafe") -> str:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.addFilter(filt)
    log = logging.getLogger(logger)
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("%s", line)
    finally:
        log.removeHandler(handler)
    return buf.getvalue()


def test_the_filter_masks_by_default_and_the_environment_can_turn_it_off(monkeypatch):
    monkeypatch.delenv(NUMBERS_ENV, raising=False)
    assert "8613800138000" not in _logged(RedactSecrets(), NATIVE)
    monkeypatch.setenv(NUMBERS_ENV, "1")
    assert "8613800138000" in _logged(RedactSecrets(), NATIVE)


def test_a_frame_cut_before_the_number_is_masked_too(monkeypatch):
    """websockets shows a long frame with its middle cut out: the key may be gone."""
    monkeypatch.delenv(NUMBERS_ENV, raising=False)
    line = """< TEXT '{"type":"start","call_id":"en_wh..._id": "+8613800138000"}' [134 bytes]"""
    out = _logged(RedactSecrets(), line, "websockets.server")
    assert "8613800138000" not in out and "\u2022\u2022\u20228000" in out
    assert "[134 bytes]" in out  # short numbers stay


def test_every_credential_header_and_parameter_is_blanked():
    """Issue 11: at -vv API keys, signatures and bearer tokens were logged."""
    lines = {
        "> Authorization: Bearer tok-123456789": "tok-123456789",
        "< X-API-KEY: SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh": "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh",
        "< Signature: sig1=:NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4=:": "NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4",
        "< X-Twilio-Signature: 0/KCTR6DLpKmkAf8muzZqo1nDgQ=": "0/KCTR6DLpKmkAf8muzZqo1nDgQ",
        "< Cookie: vt_session=abc.def.ghi": "abc.def.ghi",
        "> Set-Cookie: vt_session=abc.def.ghi; HttpOnly": "abc.def.ghi",
        "GET /events?types=hint&token=s3cr3t-token HTTP/1.1": "s3cr3t-token",
    }
    for line, secret in lines.items():
        out = redact(line)
        assert secret not in out and "[redacted]" in out, out
