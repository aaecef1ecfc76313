"""Loading and validating a policy TOML file into a :class:`Policy` (format: docs/policy.md)."""

from __future__ import annotations

import importlib.resources
import tomllib
from pathlib import Path
from typing import Any, Mapping

from voicetriage.core.errors import ConfigError
from voicetriage.triage.policy.model import (
    _OPS,
    Condition,
    Hysteresis,
    Policy,
    Rule,
    _is_number,
)

DEFAULT_POLICY = "default.toml"


def _take(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any) -> Any:
    if key not in table:
        return default
    v = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if isinstance(v, bool) and bool not in kinds:
        raise ConfigError(f"{where}: {key} must be {_kind_name(kinds)}, got {v!r}")
    if not isinstance(v, kinds):
        raise ConfigError(f"{where}: {key} must be {_kind_name(kinds)}, got {v!r}")
    return v


def _kind_name(kinds: tuple[type, ...]) -> str:
    return " or ".join({int: "an integer", float: "a number", str: "a string", bool: "true/false",
                        list: "a list", dict: "a table"}.get(k, k.__name__) for k in kinds)


def _no_unknown(table: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")


_COND_KEYS = {"signal", "op", "value", "field", "min_confidence", "min_count", "sustain_s", "max_age_s"}
_RULE_KEYS = {"name", "queue", "priority", "all", "any", "none", "min_any", "min_confidence", "action", "description"}
_HYST_KEYS = {"cooldown_s", "confidence_step", "release_margin", "hold_s", "allow_downgrade"}


def _condition(t: Any, where: str) -> Condition:
    if not isinstance(t, Mapping):
        raise ConfigError(f"{where}: a condition must be a table like {{ signal = \"profile\", ... }}")
    _no_unknown(t, _COND_KEYS, where)
    signal = _take(t, "signal", str, where, None)
    if not signal:
        raise ConfigError(f"{where}: condition needs a signal name")
    op = _take(t, "op", str, where, None)
    has_value = "value" in t
    if op is None:
        op = "==" if has_value else "truthy"
    if op not in _OPS:
        raise ConfigError(f"{where}: unknown op {op!r} (known: {', '.join(_OPS)})")
    value = t.get("value")
    if op != "truthy" and not has_value:
        raise ConfigError(f"{where}: op {op!r} needs a value")
    if op in (">", ">=", "<", "<=") and not _is_number(value):
        raise ConfigError(f"{where}: op {op!r} needs a number, got {value!r}")
    if op in ("in", "not_in") and not isinstance(value, list):
        raise ConfigError(f"{where}: op {op!r} needs a list, got {value!r}")
    c = Condition(
        signal=signal,
        op=op,
        value=tuple(value) if isinstance(value, list) else value,
        field=_take(t, "field", str, where, None),
        min_confidence=_take(t, "min_confidence", float, where, 0.0),
        min_count=_take(t, "min_count", int, where, 1),
        sustain_s=_take(t, "sustain_s", float, where, 0.0),
        max_age_s=_take(t, "max_age_s", float, where, None),
    )
    if not 0.0 <= c.min_confidence <= 1.0:
        raise ConfigError(f"{where}: min_confidence must be within 0..1")
    if c.min_count < 1 or c.sustain_s < 0 or (c.max_age_s is not None and c.max_age_s <= 0):
        raise ConfigError(f"{where}: min_count >= 1, sustain_s >= 0 and max_age_s > 0 please")
    return c


def _rule(t: Any, index: int, src: str) -> Rule:
    where = f"{src}: rules[{index}]"
    if not isinstance(t, Mapping):
        raise ConfigError(f"{where}: must be a table ([[rules]])")
    name = t.get("name")
    if isinstance(name, str) and name:
        where = f"{src}: rule {name!r}"
    _no_unknown(t, _RULE_KEYS, where)
    name = _take(t, "name", str, where, "")
    queue = _take(t, "queue", str, where, "")
    if not name or not queue:
        raise ConfigError(f"{where}: every rule needs a name and a queue")
    priority = _take(t, "priority", int, where, None)
    if priority is None:
        raise ConfigError(f"{where}: priority (an integer, higher is more urgent) is required")
    all_ = _take(t, "all", list, where, [])
    any_ = _take(t, "any", list, where, [])
    none_ = _take(t, "none", list, where, [])
    if not all_ and not any_:
        raise ConfigError(f"{where}: needs conditions in `all` and/or `any`")
    rule = Rule(
        name=name,
        queue=queue,
        priority=priority,
        all=tuple(_condition(c, f"{where} all[{i}]") for i, c in enumerate(all_)),
        any=tuple(_condition(c, f"{where} any[{i}]") for i, c in enumerate(any_)),
        none=tuple(_condition(c, f"{where} none[{i}]") for i, c in enumerate(none_)),
        min_any=_take(t, "min_any", int, where, 1),
        min_confidence=_take(t, "min_confidence", float, where, 0.0),
        action=_take(t, "action", str, where, "route"),
        description=_take(t, "description", str, where, ""),
    )
    if rule.any and not 1 <= rule.min_any <= len(rule.any):
        raise ConfigError(f"{where}: min_any must be between 1 and the number of `any` conditions")
    if not 0.0 <= rule.min_confidence <= 1.0:
        raise ConfigError(f"{where}: min_confidence must be within 0..1")
    return rule


def parse_policy(data: Mapping[str, Any], source: str = "<memory>") -> Policy:
    """Validate a policy already read from TOML."""
    _no_unknown(data, {"version", "name", "description", "hysteresis", "rules"}, source)
    version = data.get("version", 1)
    if version != 1:
        raise ConfigError(f"{source}: unsupported policy version {version!r} (this voicetriage reads version 1)")
    hyst_t = data.get("hysteresis", {})
    if not isinstance(hyst_t, Mapping):
        raise ConfigError(f"{source}: [hysteresis] must be a table")
    _no_unknown(hyst_t, _HYST_KEYS, f"{source}: [hysteresis]")
    defaults = Hysteresis()
    hyst = Hysteresis(**{
        k: _take(hyst_t, k, bool if k == "allow_downgrade" else float, f"{source}: [hysteresis]", getattr(defaults, k))
        for k in _HYST_KEYS
    })
    if min(hyst.cooldown_s, hyst.confidence_step, hyst.release_margin, hyst.hold_s) < 0:
        raise ConfigError(f"{source}: [hysteresis] values must not be negative")
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list) or not raw_rules:
        raise ConfigError(f"{source}: a policy needs at least one [[rules]] table")
    rules = tuple(_rule(t, i, source) for i, t in enumerate(raw_rules))
    seen: set[str] = set()
    for r in rules:
        if r.name in seen:
            raise ConfigError(f"{source}: rule name {r.name!r} is used twice")
        seen.add(r.name)
    name = data.get("name", Path(source).stem if source != "<memory>" else "policy")
    return Policy(name=str(name), rules=rules, hysteresis=hyst, source=source)


def load_policy(path: str | Path | None = None) -> Policy:
    """Read a policy file; ``None`` gives the default policy shipped with voicetriage."""
    if path is None:
        res = importlib.resources.files("voicetriage.triage.policies").joinpath(DEFAULT_POLICY)
        text, source = res.read_text(encoding="utf-8"), f"voicetriage/policies/{DEFAULT_POLICY}"
    else:
        p = Path(path)
        source = str(p)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"policy file {p} does not exist") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"policy file {p}: cannot read it ({e})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"policy file {source}: {e}") from None
    return parse_policy(data, source)
