"""Kubernetes resource quantities (`100m`, `1.5Gi`, `1e3`) parsed exactly.

Budgets are compared against sums of many small requests; binary floating point would make a
stack that exactly fits its budget fail by a rounding error, so everything is a Decimal.
"""

from __future__ import annotations

import re
from decimal import Decimal, localcontext
from typing import Any

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE](?P<exponent>[+-]?\d+))?$"
)


class QuantityError(ValueError):
    """A value is not a Kubernetes quantity."""


def parse_quantity(value: Any) -> Decimal:
    """`100m` -> 0.1, `1.5Gi` -> 1610612736, `1e3` -> 1000; ints and floats from YAML are accepted."""
    if isinstance(value, bool) or value is None:
        raise QuantityError(f"{value!r} is not a quantity")
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise QuantityError(f"{value!r} is not a Kubernetes quantity (examples: 100m, 1.5Gi, 2, 1e3)")
    with localcontext() as ctx:
        ctx.prec = 100
        number = Decimal(match["number"])
        if match["exponent"] is not None:
            return number.scaleb(int(match["exponent"]))
        suffix = match["suffix"] or ""
        if suffix in _BINARY:
            return number * (Decimal(1024) ** _BINARY[suffix])
        return number.scaleb(_DECIMAL[suffix])


def format_cpu(cores: Decimal) -> str:
    """Cores as the shortest exact text: `3`, `2.5`, `0.125`."""
    text = format(cores.normalize(), "f")
    return text


def format_bytes(amount: Decimal) -> str:
    """Bytes in the largest binary unit that keeps the value readable: `4Gi`, `1.5Gi`, `512Mi`."""
    for suffix, power in sorted(_BINARY.items(), key=lambda item: -item[1]):
        unit = Decimal(1024) ** power
        if amount >= unit:
            scaled = (amount / unit).quantize(Decimal("0.001")).normalize()
            return f"{format(scaled, 'f')}{suffix}"
    return format(amount.normalize(), "f")
