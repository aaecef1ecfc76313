"""Who may connect: API tokens, browser logins, Twilio signatures, AudioSocket peers.

Every websocket and HTTP endpoint except the liveness probe ``/healthz`` needs a
credential (docs/security.md):

* ``Authorization: Bearer TOKEN`` (clients, load balancers' ``/health``);
* the ``vt_session`` cookie a browser gets from ``POST /login`` (or
  ``/login?token=``): an HMAC-signed name and expiry, HttpOnly, SameSite=Strict;
* on ``/twilio``: Twilio's ``X-Twilio-Signature`` (HMAC-SHA1 of the URL Twilio
  requested, keyed with the account's auth token);
* AudioHook keeps its API key and signature (``protocols/audiohook_auth``);
* AudioSocket has no credential field: only allow-listed peer addresses.

Tokens are compared in constant time; none of them is ever logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from voicetriage.core.config import AuthConfig
from voicetriage.core.errors import ConfigError

log = logging.getLogger(__name__)

COOKIE = "vt_session"
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SCOPES = ("all", "stream", "events", "hints", "no_transcripts", "health")


@dataclass(frozen=True)
class Principal:
    """Who a request authenticated as: the token's name and what it may do."""

    name: str
    scopes: frozenset[str] = frozenset({"all"})

    def may(self, scope: str) -> bool:
        if "all" in self.scopes or scope in self.scopes:
            return True
        # a hints-only or transcript-free token may subscribe to /events (filtered there)
        return scope == "events" and bool({"hints", "no_transcripts"} & self.scopes)


ANONYMOUS_ADMIN = Principal("insecure-no-auth")


def read_token_file(path: str | Path) -> dict[str, tuple[str, frozenset[str]]]:
    """``NAME TOKEN [SCOPE,SCOPE]`` per line (``#`` comments) -> name -> (token, scopes)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"token file {p}: {e.strerror or e}") from None
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) not in (2, 3):
            raise ConfigError(f"token file {p}, line {n}: expected NAME TOKEN [SCOPES]")
        name, token = parts[0], parts[1]
        if not _NAME.match(name):
            raise ConfigError(f"token file {p}, line {n}: name {name!r}: use letters, digits, '.', '_', '-'")
        scopes = frozenset(parts[2].split(",")) if len(parts) == 3 else frozenset({"all"})
        bad = sorted(scopes - set(SCOPES))
        if bad:
            raise ConfigError(f"token file {p}, line {n}: unknown scope(s) {', '.join(bad)} "
                              f"(use {', '.join(SCOPES)})")
        if len(token) < 16:
            raise ConfigError(f"token file {p}, line {n}: token {name!r} is shorter than 16 characters")
        if name in out:
            raise ConfigError(f"token file {p}, line {n}: name {name!r} appears twice")
        out[name] = (token, scopes)
    if not out:
        raise ConfigError(f"token file {p} holds no token")
    return out


def _read_secret(path: str, what: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"{what} file {path}: {e.strerror or e}") from None
    if not value:
        raise ConfigError(f"{what} file {path} is empty")
    return value


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """Twilio's request signature: base64(HMAC-SHA1(auth token, URL + sorted POST params))."""
    data = url + "".join(k + v for k, v in sorted((params or {}).items()))
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class Authenticator:
    """The server's credential checks, built once from ``[auth]`` at start."""

    def __init__(self, cfg: AuthConfig) -> None:
        self.cfg = cfg
        self.enabled = not cfg.insecure_no_auth
        tokens: dict[str, tuple[str, frozenset[str]]] = {}
        if cfg.token_file:
            tokens.update(read_token_file(cfg.token_file))
        if cfg.token:
            if len(cfg.token) < 16:
                raise ConfigError("the API token must be at least 16 characters")
            tokens.setdefault("default", (cfg.token, frozenset({"all"})))
        self._tokens = [(name, tok.encode("utf-8"), scopes) for name, (tok, scopes) in tokens.items()]
        twilio = cfg.twilio_auth_token
        if cfg.twilio_auth_token_file:
            twilio = _read_secret(cfg.twilio_auth_token_file, "Twilio auth token")
        self.twilio_token = twilio
        try:
            self.audiosocket_allow = tuple(ipaddress.ip_network(a, strict=False) for a in cfg.audiosocket_allow)
        except ValueError as e:
            raise ConfigError(f"[auth] audiosocket_allow: {e}") from None
        self._cookie_key = secrets.token_bytes(32)  # logins last until the server restarts

    @property
    def token_count(self) -> int:
        return len(self._tokens)

    # -- tokens -------------------------------------------------------------------
    def check_token(self, given: str) -> Principal | None:
        """The principal of a presented token, comparing with every token in constant time."""
        if not given:
            return None
        data = given.encode("utf-8", "replace")
        found = None
        for name, token, scopes in self._tokens:
            if hmac.compare_digest(data, token) and found is None:
                found = Principal(name, scopes)
        return found

    def authenticate(self, headers, path: str, *, allow_query: bool = False) -> Principal | None:
        """Bearer header, else the login cookie, else (where allowed) ``?token=``."""
        if not self.enabled:
            return ANONYMOUS_ADMIN
        auth = headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            return self.check_token(auth[7:].strip())
        principal = self._from_cookie(headers.get("Cookie", ""))
        if principal is not None:
            return principal
        if allow_query:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
            return self.check_token((query.get("token") or [""])[0])
        return None

    # -- browser logins -------------------------------------------------------------
    def session_cookie(self, principal: Principal, *, secure: bool) -> str:
        """A ``Set-Cookie`` value logging ``principal`` in for ``cookie_max_age_s``."""
        expires = int(time.time()) + self.cfg.cookie_max_age_s
        body = f"{principal.name}|{','.join(sorted(principal.scopes))}|{expires}"
        mac = hmac.new(self._cookie_key, body.encode("utf-8"), hashlib.sha256).hexdigest()
        value = base64.urlsafe_b64encode(f"{body}|{mac}".encode("utf-8")).decode("ascii")
        attrs = f"{COOKIE}={value}; Path=/; Max-Age={self.cfg.cookie_max_age_s}; HttpOnly; SameSite=Strict"
        return attrs + ("; Secure" if secure else "")

    def _from_cookie(self, header: str) -> Principal | None:
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name != COOKIE or not value:
                continue
            try:
                body, _, mac = base64.urlsafe_b64decode(value.encode("ascii")).decode("utf-8").rpartition("|")
                who, scopes, expires = body.split("|")
            except (ValueError, UnicodeError):
                return None
            good = hmac.new(self._cookie_key, body.encode("utf-8"), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(good, mac) or int(expires) < time.time():
                return None
            # a token removed from the file (rotation) ends its logins too
            if not any(n == who for n, _, _ in self._tokens):
                return None
            return Principal(who, frozenset(scopes.split(",")))
        return None

    # -- Twilio -----------------------------------------------------------------------
    def check_twilio(self, headers, path: str, *, tls: bool) -> bool:
        """Whether ``X-Twilio-Signature`` signs this request's URL with the account token."""
        if self.twilio_token is None:
            return False
        given = headers.get("X-Twilio-Signature", "")
        if not given:
            return False
        if self.cfg.twilio_public_url:
            urls = [self.cfg.twilio_public_url.rstrip("/") + path]
        else:
            host = headers.get("Host", "")
            # Twilio always connects over wss://; a TLS proxy in front makes it ws:// here
            urls = [f"wss://{host}{path}"] + ([] if tls else [f"ws://{host}{path}"])
        return any(hmac.compare_digest(twilio_signature(self.twilio_token, u), given) for u in urls)

    # -- AudioSocket ----------------------------------------------------------------------
    def peer_allowed(self, host: str | None) -> bool:
        if not self.enabled:
            return True
        try:
            addr = ipaddress.ip_address((host or "").split("%", 1)[0])
        except ValueError:
            return False
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.audiosocket_allow)


def new_token() -> str:
    """A fresh API token (what ``voicetriage serve`` prints when none is configured)."""
    return secrets.token_urlsafe(32)


__all__ = ["Authenticator", "Principal", "read_token_file", "twilio_signature", "new_token", "COOKIE",
           "SCOPES"]
