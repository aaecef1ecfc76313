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

from voicetriage.core.errors import ConfigError

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


# --- RFC 8941 structured fields: the subset signatures use ---------------------------

class SfError(ValueError):
    """A structured field that does not parse."""


@dataclass(frozen=True)
class SfToken:
    value: str


@dataclass(frozen=True)
class SfItem:
    value: object  # str | int | float | bool | bytes | SfToken
    params: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class SfInnerList:
    items: tuple[SfItem, ...]
    params: tuple[tuple[str, object], ...] = ()


_KEY_RE = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN_RE = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_NUM_RE = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,3})?")


class _Parser:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def skip_sp(self) -> None:
        while self.peek() == " ":
            self.i += 1

    def skip_ows(self) -> None:
        while self.peek() in (" ", "\t"):
            self.i += 1

    def key(self) -> str:
        m = _KEY_RE.match(self.s, self.i)
        if not m:
            raise SfError(f"expected a key at {self.i}")
        self.i = m.end()
        return m.group()

    def bare_item(self) -> object:
        c = self.peek()
        if c == '"':
            self.i += 1
            out = []
            while True:
                c = self.peek()
                if c == "":
                    raise SfError("unterminated string")
                self.i += 1
                if c == "\\":
                    nxt = self.peek()
                    if nxt not in ('"', "\\"):
                        raise SfError("bad escape in string")
                    out.append(nxt)
                    self.i += 1
                elif c == '"':
                    return "".join(out)
                elif not (" " <= c <= "~"):
                    raise SfError("non-printable character in string")
                else:
                    out.append(c)
        if c == ":":
            end = self.s.find(":", self.i + 1)
            if end < 0:
                raise SfError("unterminated byte sequence")
            raw = self.s[self.i + 1:end]
            self.i = end + 1
            try:
                return base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise SfError("bad base64 in byte sequence") from None
        if c == "?":
            self.i += 1
            b = self.peek()
            if b not in ("0", "1"):
                raise SfError("bad boolean")
            self.i += 1
            return b == "1"
        if c == "-" or c.isdigit():
            m = _NUM_RE.match(self.s, self.i)
            if not m:
                raise SfError("bad number")
            self.i = m.end()
            return float(m.group()) if m.group(1) else int(m.group())
        m = _TOKEN_RE.match(self.s, self.i)
        if m:
            self.i = m.end()
            return SfToken(m.group())
        raise SfError(f"unexpected {c!r} at {self.i}")

    def params(self) -> tuple[tuple[str, object], ...]:
        out: list[tuple[str, object]] = []
        while self.peek() == ";":
            self.i += 1
            self.skip_sp()
            k = self.key()
            v: object = True
            if self.peek() == "=":
                self.i += 1
                v = self.bare_item()
            out = [(kk, vv) for kk, vv in out if kk != k] + [(k, v)]
        return tuple(out)

    def item_or_inner_list(self) -> SfItem | SfInnerList:
        if self.peek() == "(":
            self.i += 1
            items: list[SfItem] = []
            while True:
                self.skip_sp()
                if self.peek() == ")":
                    self.i += 1
                    return SfInnerList(tuple(items), self.params())
                items.append(SfItem(self.bare_item(), self.params()))
                if self.peek() not in (" ", ")"):
                    raise SfError("inner list items must be separated by spaces")
        return SfItem(self.bare_item(), self.params())

    def dictionary(self) -> dict[str, SfItem | SfInnerList]:
        out: dict[str, SfItem | SfInnerList] = {}
        self.skip_sp()
        if self.peek() == "":
            return out
        while True:
            k = self.key()
            if self.peek() == "=":
                self.i += 1
                out[k] = self.item_or_inner_list()
            else:
                out[k] = SfItem(True, self.params())
            self.skip_ows()
            if self.peek() == "":
                return out
            if self.peek() != ",":
                raise SfError(f"expected ',' at {self.i}")
            self.i += 1
            self.skip_ows()
            if self.peek() == "":
                raise SfError("trailing comma")


def parse_dictionary(text: str) -> dict[str, SfItem | SfInnerList]:
    """Parse an RFC 8941 Dictionary field value."""
    return _Parser(text.strip(" ")).dictionary()


def serialize_bare(value: object) -> str:
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value)}.0"
    if isinstance(value, SfToken):
        return value.value
    if isinstance(value, (bytes, bytearray)):
        return ":" + base64.b64encode(bytes(value)).decode("ascii") + ":"
    s = str(value)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def serialize_params(params: Iterable[tuple[str, object]]) -> str:
    return "".join(f";{k}" if v is True else f";{k}={serialize_bare(v)}" for k, v in params)


def serialize_inner_list(inner: SfInnerList) -> str:
    items = " ".join(serialize_bare(it.value) + serialize_params(it.params) for it in inner.items)
    return f"({items})" + serialize_params(inner.params)


# --- the request and the verdict ------------------------------------------------------

class Headers:
    """Case-insensitive, multi-valued view of request headers."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for k, v in pairs:
            self._values.setdefault(k.lower(), []).append(v)

    @classmethod
    def of(cls, headers: object) -> "Headers":
        """From websockets' ``Headers``, a mapping, or ``(name, value)`` pairs."""
        if isinstance(headers, Headers):
            return headers
        raw_items = getattr(headers, "raw_items", None)
        if callable(raw_items):
            return cls(raw_items())
        if isinstance(headers, Mapping):
            return cls(headers.items())
        return cls(headers)  # type: ignore[arg-type]

    def get(self, name: str) -> str | None:
        """The canonical component value: values trimmed, obs-folds joined, repeats joined by ', '."""
        values = self._values.get(name.lower())
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
        h = Headers.of(headers)
        session_id = h.get("audiohook-session-id")
        if session_id is None or not _UUID_RE.match(session_id):
            return AuthResult.refuse(400, "missing or invalid Audiohook-Session-Id header")
        org_id = h.get("audiohook-organization-id")
        if org_id is not None and not _UUID_RE.match(org_id):
            return AuthResult.refuse(400, "invalid Audiohook-Organization-Id header")
        if not self.enabled:
            return AuthResult(True, api_key=h.get("x-api-key"))
        api_key = h.get("x-api-key")
        if not api_key:
            return AuthResult.refuse(401, "missing X-API-KEY header")
        secret = self._secrets.get(api_key)
        if secret is None:
            return AuthResult.refuse(401, "unknown API key")
        has_sig = h.get("signature-input") is not None or h.get("signature") is not None
        if not secret:
            # no secret configured for this key: a signature, if any, cannot be checked
            return AuthResult(True, api_key=api_key)
        if not has_sig:
            return AuthResult.refuse(401, "request is not signed (a client secret is configured)")
        reason = self.verify_signature(method, target, h, api_key, secret)
        if reason:
            return AuthResult.refuse(401, f"signature verification failed: {reason}")
        return AuthResult(True, api_key=api_key)

    def verify_signature(
        self, method: str, target: str, h: Headers, api_key: str, secret: bytes
    ) -> str | None:
        """Returns None when the signature is valid, else why not."""
        try:
            inputs = parse_dictionary(h.get("signature-input") or "")
            sigs = parse_dictionary(h.get("signature") or "")
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
            return h.get(name)
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
            host = h.get("host")
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
    "Headers",
    "REQUIRED_COMPONENTS",
    "parse_dictionary",
    "serialize_inner_list",
    "signature_base",
    "sign",
]
