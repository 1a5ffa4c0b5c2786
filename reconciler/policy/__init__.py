"""Policy enforcement before any apply: rules over the whole rendered environment.
Layer policy: may import kube and the shared modules only (today it needs none of them).

    policies = load_policies(Path("policies"), "prod")
    report = evaluate(stacks, policies, today=datetime.date.today())
    report.blocking_stacks()  # stacks with enforced, non-excepted violations

Rules, configuration and exception formats are documented in docs/policies.md.
"""

from __future__ import annotations

from reconciler.policy.config import PolicySet, RuleConfig, load_policies
from reconciler.policy.engine import evaluate
from reconciler.policy.model import PolicyReport, RuleInfo, Violation

__all__ = ["PolicyReport", "PolicySet", "RuleConfig", "RuleInfo", "Violation", "evaluate", "load_policies"]
