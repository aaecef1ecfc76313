"""Structured Field Values for HTTP (RFC 8941): the parts HTTP message signatures (RFC 9421) need."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Iterable

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
