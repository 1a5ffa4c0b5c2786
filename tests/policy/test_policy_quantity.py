"""Kubernetes quantities are parsed exactly, so budgets never fail on a rounding error."""

from decimal import Decimal

import pytest

from reconciler.policy.quantity import QuantityError, format_bytes, format_cpu, parse_quantity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100m", Decimal("0.1")),
        ("1.5Gi", Decimal(1610612736)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("2", Decimal(2)),
        (2, Decimal(2)),
        (0.5, Decimal("0.5")),
        ("512Mi", Decimal(536870912)),
        ("1k", Decimal(1000)),
        ("1Ki", Decimal(1024)),
        ("1M", Decimal(1000000)),
        ("1E", Decimal(10) ** 18),
        ("1Ei", Decimal(2) ** 60),
        ("250u", Decimal("0.00025")),
        ("1e-3", Decimal("0.001")),
        (".5", Decimal("0.5")),
    ],
)
def test_quantities_parse_to_their_exact_value(text, expected):
    assert parse_quantity(text) == expected


def test_three_times_a_third_of_a_core_in_millicores_is_exactly_one_core():
    assert parse_quantity("333m") * 3 + parse_quantity("1m") == Decimal(1)


@pytest.mark.parametrize("text", ["", "1.5 Gi", "Gi", "1GB", "one", "1e", True, None])
def test_non_quantities_are_rejected(text):
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_formatting_picks_readable_units():
    assert format_bytes(parse_quantity("1.5Gi")) == "1.5Gi"
    assert format_bytes(parse_quantity("512Mi")) == "512Mi"
    assert format_cpu(parse_quantity("2500m")) == "2.5"
