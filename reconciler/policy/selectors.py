"""Kubernetes label selectors, evaluated the way the API server does.

Anti-affinity, PDB coverage, HPA targets and NetworkPolicy peers all hinge on "does this selector
select these labels"; one exact implementation keeps those rules consistent with each other.
"""

from __future__ import annotations

from typing import Any, Mapping


def is_empty(selector: Mapping[str, Any] | None) -> bool:
    """`{}` (or a missing selector where the API treats it as `{}`) selects everything."""
    selector = selector or {}
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """True when every matchLabels pair and every matchExpression holds for `labels`."""
    selector = selector or {}
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != str(value):
            return False
    return all(_expression_holds(expr, labels) for expr in selector.get("matchExpressions") or [])


def _expression_holds(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key = expression.get("key", "")
    operator = expression.get("operator", "")
    values = [str(v) for v in expression.get("values") or []]
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    return False  # an unknown operator selects nothing, as the API server would reject it


def describe(selector: Mapping[str, Any] | None) -> str:
    """A short human form for messages: `app=web,tier in (a,b)`; `{}` for select-all."""
    selector = selector or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        values = ",".join(str(v) for v in expr.get("values") or [])
        parts.append(f"{expr.get('key')} {expr.get('operator')} ({values})" if values else f"{expr.get('key')} {expr.get('operator')}")
    return ",".join(parts) or "{}"
