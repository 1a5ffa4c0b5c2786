"""The rule families, one module each; the order here is the order reports list them in."""

from __future__ import annotations

from reconciler.policy.rules import (
    anti_affinity,
    budget,
    exception_format,
    hpa,
    images,
    network,
    pdb,
    probes,
    replicas,
    resources,
)
from reconciler.policy.rules.base import Family, Finding, RuleSpec

FAMILIES: tuple[Family, ...] = (
    network.FAMILY,
    replicas.FAMILY,
    anti_affinity.FAMILY,
    pdb.FAMILY,
    hpa.FAMILY,
    probes.FAMILY,
    resources.FAMILY,
    images.FAMILY,
    budget.FAMILY,
    exception_format.FAMILY,
)

__all__ = ["FAMILIES", "Family", "Finding", "RuleSpec"]
