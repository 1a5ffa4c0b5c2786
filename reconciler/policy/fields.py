"""Typed reading of one YAML mapping from `policies/`, with errors that name file, field and fix.

Every family's settings go through a `Fields` reader, so a typo (`min_replica: 3`) or a wrong type
fails loudly at load time instead of silently weakening a rule.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from reconciler.errors import ConfigError


class Fields:
    """Reads keys of `raw` (found at `where` in `file`), remembering which keys were consumed."""

    def __init__(self, raw: Any, file: str, where: str) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{file}: {where or 'the file'} must be a mapping, got {type(raw).__name__}",
                              fix=f"write `{where or 'the file'}` as `key: value` pairs")
        self.raw = raw
        self.file = file
        self.where = where
        self._seen: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, problem: str, fix: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.path(key)}: {problem}", fix=fix)

    def has(self, key: str) -> bool:
        return key in self.raw

    def get(self, key: str, default: Any = None) -> Any:
        self._seen.add(key)
        return self.raw.get(key, default)

    def integer(self, key: str, default: int, *, minimum: int = 0) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(key, f"expected an integer >= {minimum}, got {value!r}", f"set `{key}: {max(default, minimum)}`")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}", f"set `{key}: {str(default).lower()}`")
        return value

    def string(self, key: str, default: str | None = None, *, choices: Iterable[str] | None = None,
               false_as: str | None = None) -> str:
        """`false_as`: the string that the boolean false stands for. PyYAML reads YAML 1.1, where an unquoted
        `off`, `no` or `false` is a boolean: `mode: off`, as people write it, arrives as False."""
        value = self.get(key, default)
        if value is False and false_as is not None:
            value = false_as
        allowed = tuple(choices) if choices is not None else None
        if not isinstance(value, str) or not value or (allowed is not None and value not in allowed):
            hint = f"one of {', '.join(allowed)}" if allowed else "a non-empty string"
            raise self.error(key, f"expected {hint}, got {value!r}", f"set `{key}` to {hint}")
        return value

    def strings(self, key: str, default: Iterable[str], *, choices: Iterable[str] | None = None) -> tuple[str, ...]:
        value = self.get(key, list(default))
        allowed = tuple(choices) if choices is not None else None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.error(key, f"expected a list of strings, got {value!r}", f"write `{key}: [a, b]`")
        bad = [v for v in value if allowed is not None and v not in allowed]
        if bad:
            raise self.error(key, f"unknown value(s) {', '.join(bad)}", f"use only {', '.join(allowed or ())}")
        return tuple(value)

    def mapping(self, key: str) -> "Fields":
        return Fields(self.get(key, {}), self.file, self.path(key))

    def finish(self) -> None:
        """Reject keys nobody read: they are typos or settings of another family."""
        unknown = sorted(str(k) for k in self.raw if k not in self._seen)
        if unknown:
            raise ConfigError(
                f"{self.file}: {self.where or 'top level'}: unknown key(s) {', '.join(unknown)}",
                fix="remove them or correct the spelling (see docs/policies.md)",
            )
