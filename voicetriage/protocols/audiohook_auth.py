"""AudioHook connection authentication, sans-I/O.

Genesys Cloud opens the AudioHook websocket with an HTTP GET that carries

* ``X-API-KEY``: the integration's API key, checked against the configured keys;
* ``Signature-Input`` / ``Signature``: an HTTP message signature (RFC 9421,
  HTTP Message Signatures) over ``@request-target``, ``@authority``,
  ``audiohook-organization-id``, ``audiohook-session-id``,
  ``audiohook-correlation-id`` and ``x-api-key``, with ``alg="hmac-sha256"``,
  ``keyid`` = the API key, a ``nonce`` and ``created``/``expires``. The HMAC key is
  the integration's client secret (configured base64-encoded, as Genesys shows it).

:meth:`AudioHookAuth.check` decides from the request line and headers alone,
before the websocket opens; the server turns a refusal into an HTTP response
(401 for a bad key or signature, 400 for missing AudioHook headers), the way
the AudioHook reference server does. A key configured with an empty secret
accepts unsigned requests; a key with a secret requires a valid signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader

from voicetriage.core.errors import ConfigError
from voicetriage.core.logsafe import safe
from voicetriage.protocols.structured_fields import (
    SfError,
    SfInnerList,
    SfItem,
    parse_dictionary,
    serialize_inner_list,
)

REQUIRED_COMPONENTS = (
    "@request-target",
    "@authority",
    "audiohook-organization-id",
    "audiohook-session-id",
    "audiohook-correlation-id",
    "x-api-key",
)
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MIN_NONCE_CHARS = 22  # the reference server's floor (128 bits of base64)


# --- the request and the verdict ------------------------------------------------------

def _headers(headers: object) -> Headers:
    """websockets' ``Headers`` from itself, a mapping or ``(name, value)`` pairs."""
    if isinstance(headers, Headers):
        return headers
    raw_items = getattr(headers, "raw_items", None)
    if callable(raw_items):
        return Headers(raw_items())
    if isinstance(headers, Mapping):
        return Headers(headers.items())
    return Headers(headers)  # type: ignore[arg-type]


def _value(h: Headers, name: str) -> str | None:
    """A signature component's canonical value: trimmed, obs-folds joined, repeats joined by ', '."""
    values = h.get_all(name)
    if not values:
        return None
    return ", ".join(re.sub(r"[ \t]*\r\n[ \t]+", " ", v).strip() for v in values)


@dataclass(frozen=True)
class AuthResult:
    """``status`` is the HTTP status to refuse with (0 when accepted)."""

    ok: bool
    status: int = 0
    reason: str = ""
    api_key: str | None = None

    @classmethod
    def refuse(cls, status: int, reason: str) -> "AuthResult":
        return cls(False, status, reason)


def _decode_secret(key: str, secret: str) -> bytes:
    try:
        return base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"audiohook client secret for API key {key[:4]}... is not base64 "
            "(use the value Genesys Cloud shows for the integration)"
        ) from None


def signature_base(
    components: Iterable[str], values: Mapping[str, str], signature_params: str
) -> str:
    """The RFC 9421 signature base: one ``"name": value`` line per component, then
    ``"@signature-params": ...`` (no trailing newline)."""
    lines = [f'"{name}": {values[name]}' for name in components]
    lines.append(f'"@signature-params": {signature_params}')
    return "\n".join(lines)


def sign(
    *,
    api_key: str,
    secret_b64: str,
    values: Mapping[str, str],
    created: int,
    expires: int,
    nonce: str,
    label: str = "sig1",
    components: tuple[str, ...] = REQUIRED_COMPONENTS,
) -> dict[str, str]:
    """``Signature-Input`` and ``Signature`` headers as an AudioHook client builds them
    (for tests and tools; parameters in the reference client's order)."""
    inner = SfInnerList(
        tuple(SfItem(c) for c in components),
        (("keyid", api_key), ("nonce", nonce), ("alg", "hmac-sha256"),
         ("created", created), ("expires", expires)),
    )
    params = serialize_inner_list(inner)
    base = signature_base(components, values, params)
    mac = hmac.new(_decode_secret(api_key, secret_b64), base.encode("utf-8"), hashlib.sha256).digest()
    return {
        "Signature-Input": f"{label}={params}",
        "Signature": f"{label}=:{base64.b64encode(mac).decode('ascii')}:",
    }


@dataclass
class AudioHookAuth:
    """Checks AudioHook connection requests against configured API keys.

    ``keys`` maps API key -> base64 client secret ("" = this key needs no
    signature). With no keys configured every request is accepted (the server
    logs a warning at start-up). ``max_age_s`` bounds how old a signature's
    ``created`` may be, ``clock_skew_s`` how far clocks may disagree; nonces
    seen within a signature's lifetime are refused as replays.
    """

    keys: Mapping[str, str] = field(default_factory=dict)
    max_age_s: float = 30.0
    clock_skew_s: float = 5.0
    clock: Callable[[], float] = time.time
    _secrets: dict[str, bytes] = field(init=False, repr=False)
    _nonces: dict[str, float] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._secrets = {k: _decode_secret(k, v) if v else b"" for k, v in self.keys.items()}

    @property
    def enabled(self) -> bool:
        return bool(self._secrets)

    def check(self, method: str, target: str, headers: object) -> AuthResult:
        """Decide on one upgrade request. ``target`` is the request-target (path?query)."""
        try:
            h = _headers(headers)
        except InvalidHeader as e:  # a mapping with a control character in a value (a parsed request has none)
            return AuthResult.refuse(400, f"invalid header: {safe(str(e), 120)}")
        session_id = _value(h, "audiohook-session-id")
        if session_id is None or not _UUID_RE.match(session_id):
            return AuthResult.refuse(400, "missing or invalid Audiohook-Session-Id header")
        org_id = _value(h, "audiohook-organization-id")
        if org_id is not None and not _UUID_RE.match(org_id):
            return AuthResult.refuse(400, "invalid Audiohook-Organization-Id header")
        if not self.enabled:
            return AuthResult(True, api_key=_value(h, "x-api-key"))
        api_key = _value(h, "x-api-key")
        if not api_key:
            return AuthResult.refuse(401, "missing X-API-KEY header")
        secret = self._secrets.get(api_key)
        if secret is None:
            return AuthResult.refuse(401, "unknown API key")
        has_sig = _value(h, "signature-input") is not None or _value(h, "signature") is not None
        if not secret:
            # no secret configured for this key: a signature, if any, cannot be checked
            return AuthResult(True, api_key=api_key)
        if not has_sig:
            return AuthResult.refuse(401, "request is not signed (a client secret is configured)")
        reason = self.verify_signature(method, target, h, api_key, secret)
        if reason:
            return AuthResult.refuse(401, f"signature verification failed: {safe(reason, 200)}")
        return AuthResult(True, api_key=api_key)

    def verify_signature(
        self, method: str, target: str, h: Headers, api_key: str, secret: bytes
    ) -> str | None:
        """Returns None when the signature is valid, else why not."""
        try:
            inputs = parse_dictionary(_value(h, "signature-input") or "")
            sigs = parse_dictionary(_value(h, "signature") or "")
        except SfError as e:
            return f"unparsable Signature/Signature-Input ({e})"
        if not inputs or not sigs:
            return "Signature and Signature-Input must both be present"
        label = next(iter(inputs))
        inner = inputs[label]
        sig_item = sigs.get(label)
        if not isinstance(inner, SfInnerList):
            return f"Signature-Input {label} is not an inner list"
        if not isinstance(sig_item, SfItem) or not isinstance(sig_item.value, bytes):
            return f"no Signature for label {label}"
        params: dict[str, object] = {}
        for k, v in inner.params:
            if k in ("alg", "keyid", "nonce", "tag"):
                if not isinstance(v, str):
                    return f"parameter {k} must be a string"
            elif k in ("created", "expires"):
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    return f"parameter {k} must be a non-negative integer"
            else:
                return f"unknown signature parameter {k}"
            params[k] = v
        if params.get("alg", "hmac-sha256") != "hmac-sha256":
            return f"algorithm {params['alg']!r} is not supported (hmac-sha256 only)"
        if params.get("keyid") != api_key:
            return "keyid does not match X-API-KEY"
        nonce = params.get("nonce")
        if not isinstance(nonce, str) or len(nonce) < MIN_NONCE_CHARS:
            return f"nonce missing or shorter than {MIN_NONCE_CHARS} characters"
        now = self.clock()
        created, expires = params.get("created"), params.get("expires")
        if not isinstance(created, int):
            return "created parameter missing"
        if created > now + self.clock_skew_s:
            return "created is in the future"
        if created + self.max_age_s < now - self.clock_skew_s:
            return f"signature is older than {self.max_age_s:g} s"
        if isinstance(expires, int) and expires < now - self.clock_skew_s:
            return "signature has expired"

        names: list[str] = []
        values: dict[str, str] = {}
        for item in inner.items:
            name = item.value
            if not isinstance(name, str) or item.params:
                return "covered components must be plain strings"
            if name in values:
                return f"component {name} listed twice"
            value = self._component(name, method, target, h)
            if value is None:
                return f"cannot resolve component {name}"
            names.append(name)
            values[name] = value
        missing = [c for c in REQUIRED_COMPONENTS if c not in values]
        if missing:
            return "signature does not cover " + ", ".join(missing)
        base = signature_base(names, values, serialize_inner_list(inner))
        expected = hmac.new(secret, base.encode("utf-8"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, sig_item.value):
            return "HMAC does not match"
        # replay: the same nonce within its lifetime is refused
        self._nonces = {n: t for n, t in self._nonces.items() if t >= now}
        if nonce in self._nonces:
            return "nonce was already used (replayed request)"
        self._nonces[nonce] = float(created + self.max_age_s + 2 * self.clock_skew_s)
        return None

    @staticmethod
    def _component(name: str, method: str, target: str, h: Headers) -> str | None:
        if not name.startswith("@"):
            if name in ("signature", "signature-input"):
                return None
            return _value(h, name)
        path, _, query = target.partition("?")
        if name == "@request-target":
            return target
        if name == "@method":
            return method.upper()
        if name == "@path":
            return path or "/"
        if name == "@query":
            return "?" + query
        if name == "@authority":
            host = _value(h, "host")
            if not host:
                return None
            host = host.lower()
            # default ports are not part of the normalised authority
            for default in (":80", ":443"):
                if host.endswith(default):
                    host = host[: -len(default)]
            return host
        return None


__all__ = [
    "AudioHookAuth",
    "AuthResult",
    "REQUIRED_COMPONENTS",
    "parse_dictionary",
    "serialize_inner_list",
    "signature_base",
    "sign",
]
