"""Loading `policies/*.yaml` for one environment into a PolicySet.

Each family has one file. Every rule of the family must be listed there with its severity and
mode, so adding a rule to the code never silently enforces (or skips) it in an environment; unknown
files, rules and keys are errors naming the file, the field and the fix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping



from reconciler.errors import ConfigError
from reconciler.yamlfile import load_yaml_file
from reconciler.policy.exceptions import PolicyException, parse_file_entries
from reconciler.policy.fields import Fields
from reconciler.policy.model import MODES, SEVERITIES
from reconciler.policy.rules import FAMILIES, Family


@dataclass(frozen=True)
class RuleConfig:
    id: str
    family: str
    severity: str
    mode: str
    summary: str
    source: str


@dataclass(frozen=True)
class PolicySet:
    """Everything evaluation needs for one environment: rule modes, severities, settings, exceptions."""

    env: str
    rules: Mapping[str, RuleConfig]
    settings: Mapping[str, Any]  # family name -> that family's parsed settings
    exceptions: tuple[PolicyException, ...]
    exceptions_allowed: bool
    directory: str = ""

    def active_rules(self) -> list[RuleConfig]:
        return [r for r in self.rules.values() if r.mode != "off"]


def load_policies(directory: Path, env: str, *, mode_override: str | None = None) -> PolicySet:
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"{directory}: policy directory not found", fix="create policies/ with one YAML file per rule family")
    if mode_override is not None and mode_override not in MODES:
        raise ConfigError(f"policy.mode override {mode_override!r} is not a mode", fix=f"use one of {', '.join(MODES)}")
    _reject_unknown_files(directory)
    known_rules = frozenset(spec.id for family in FAMILIES for spec in family.rules)
    rules: dict[str, RuleConfig] = {}
    settings: dict[str, Any] = {}
    exceptions: tuple[PolicyException, ...] = ()
    for family in FAMILIES:
        path = directory / family.file_name
        top = Fields(_read(path), str(path), "")
        rules.update(_rule_configs(family, top, env, mode_override))
        settings[family.name] = family.parse_settings(_env_settings(top, env))
        top.get("description")
        if family.name == "exceptions":
            exceptions = parse_file_entries(top.get("exceptions"), str(path), known_rules)
        top.finish()
    exception_settings = dataclasses.replace(settings["exceptions"], known_rules=known_rules)
    settings["exceptions"] = exception_settings
    return PolicySet(env, rules, settings, exceptions, exception_settings.allowed, str(directory))


def _reject_unknown_files(directory: Path) -> None:
    expected = {family.file_name for family in FAMILIES}
    present = {p.name for p in directory.iterdir() if p.suffix in (".yaml", ".yml")}
    for name in sorted(present - expected):
        raise ConfigError(f"{directory / name}: not a policy family file",
                          fix=f"rename it to one of {', '.join(sorted(expected))}, or move it out of {directory}")
    for name in sorted(expected - present):
        raise ConfigError(f"{directory / name}: missing",
                          fix="create it with a `rules:` entry (severity, mode) for each rule of the family; set `mode: off` to disable one")


def _read(path: Path) -> Any:
    return load_yaml_file(path) or {}


def _rule_configs(family: Family, top: Fields, env: str, mode_override: str | None) -> dict[str, RuleConfig]:
    rules_fields = top.mapping("rules")
    configs = {}
    for spec in family.rules:
        if not rules_fields.has(spec.id):
            raise rules_fields.error(spec.id, "missing", f"add `{spec.id}: {{severity: {spec.severity}, mode: enforce}}` under rules")
        fields = rules_fields.mapping(spec.id)
        severity = fields.string("severity", spec.severity, choices=SEVERITIES)
        mode = _mode(fields, env)  # validated even when overridden, so a typo never hides
        mode = mode_override or mode
        fields.get("description")
        fields.finish()
        configs[spec.id] = RuleConfig(spec.id, family.name, severity, mode, spec.summary, top.file)
    rules_fields.finish()
    return configs


def _mode(fields: Fields, env: str) -> str:
    """`mode: enforce`, or per environment: `mode: {default: enforce, dev: warn}`."""
    raw = fields.get("mode")
    if isinstance(raw, Mapping):
        per_env = Fields(raw, fields.file, fields.path("mode"))
        key = env if per_env.has(env) else "default"
        if not per_env.has(key):
            raise per_env.error(env, f"no mode for environment {env!r} and no default", f"add `{env}: enforce|warn|off` or `default: ...`")
        return per_env.string(key, choices=MODES, false_as="off")
    if raw is None:
        raise fields.error("mode", "missing", "set `mode: enforce` or per environment `mode: {default: enforce, dev: warn}`")
    return fields.string("mode", choices=MODES, false_as="off")


def _env_settings(top: Fields, env: str) -> Fields:
    """Family settings with the environment's `settings_by_env.<env>` keys replacing the defaults."""
    base = top.mapping("settings").raw
    by_env = top.mapping("settings_by_env")
    overrides = by_env.mapping(env).raw if by_env.has(env) else {}
    for other in list(by_env.raw):
        by_env.mapping(str(other))  # every environment's overrides must at least be mappings
    by_env.finish()
    where = f"settings (with settings_by_env.{env})" if overrides else "settings"
    return Fields({**base, **overrides}, top.file, where)
