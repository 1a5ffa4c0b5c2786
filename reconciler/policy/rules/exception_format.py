"""exception-format: a malformed exception annotation must not silently fail to apply (or to
expire); it is reported on the object that carries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from reconciler.policy.exceptions import ANNOTATION, annotation_text, parse_annotation
from reconciler.policy.fields import Fields
from reconciler.policy.rules.base import Family, Finding, RuleSpec
from reconciler.policy.view import EnvironmentView, Subject

RULE = "exception-format"


@dataclass(frozen=True)
class Settings:
    allowed: bool
    known_rules: frozenset[str] = frozenset()  # filled in by the loader once every family is known


def parse_settings(fields: Fields) -> Settings:
    settings = Settings(allowed=fields.boolean("allowed", True))
    fields.finish()
    return settings


def check(view: EnvironmentView, settings: Settings) -> Iterator[Finding]:
    for obj in view.objects:
        text = annotation_text(obj.manifest)
        if text is None:
            continue
        _, problems = parse_annotation(text, str(obj.id), settings.known_rules)
        for problem in problems:
            yield Finding(RULE, Subject.of(obj), problem,
                          f"write {ANNOTATION}: \"<rule>[,<rule>]; reason=<why>; expires=YYYY-MM-DD\" (one entry per line)")


FAMILY = Family(
    name="exceptions",
    rules=(RuleSpec(RULE, "Exception annotations are well-formed (known rule, reason, expiry date).", "medium"),),
    parse_settings=parse_settings,
    check=check,
)
