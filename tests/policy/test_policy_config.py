"""Loading policies/: per-environment modes and settings, and errors naming file, field and fix."""

from pathlib import Path

import pytest
import yaml

from reconciler.errors import ConfigError
from reconciler.policy import load_policies
from test_policy_builders import write_policies

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _edit(directory: Path, name: str, change) -> None:
    path = directory / name
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc))


def test_the_repository_policies_enforce_everything_in_prod_with_three_replicas():
    prod = load_policies(REPO_POLICIES, "prod")
    assert {r.mode for r in prod.rules.values()} == {"enforce"}
    assert prod.settings["replicas"].min_replicas == 3
    assert prod.exceptions_allowed is False


def test_the_repository_policies_warn_in_dev_with_one_replica():
    dev = load_policies(REPO_POLICIES, "dev")
    assert {r.mode for r in dev.rules.values()} == {"warn"}
    assert dev.settings["replicas"].min_replicas == 1


def test_the_repository_budgets_are_the_contract_budgets():
    budgets = load_policies(REPO_POLICIES, "prod").settings["budget"].budgets
    assert {s: {k: str(v) for k, v in b.items()} for s, b in budgets.items()} == {
        "gateway": {"cpu": "3", "memory": str(4 * 2**30), "storage": str(50 * 2**30)},
        "discovery": {"cpu": "4", "memory": str(6 * 2**30), "storage": str(100 * 2**30)},
        "monitoring": {"cpu": "6", "memory": str(12 * 2**30), "storage": str(200 * 2**30)},
        "data": {"cpu": "8", "memory": str(24 * 2**30), "storage": str(500 * 2**30)},
        "application": {"cpu": "12", "memory": str(24 * 2**30), "storage": str(100 * 2**30)},
    }


def test_mode_override_forces_every_rule(tmp_path):
    directory = write_policies(tmp_path, enforce=["min-replicas"])
    assert {r.mode for r in load_policies(directory, "prod", mode_override="warn").rules.values()} == {"warn"}


def test_a_mode_mapping_falls_back_to_default(tmp_path):
    directory = write_policies(tmp_path)
    _edit(directory, "replicas.yaml", lambda d: d["rules"]["min-replicas"].update(mode={"default": "enforce", "dev": "warn"}))
    assert load_policies(directory, "staging").rules["min-replicas"].mode == "enforce"
    assert load_policies(directory, "dev").rules["min-replicas"].mode == "warn"


def test_a_mode_mapping_without_the_environment_or_default_is_an_error(tmp_path):
    directory = write_policies(tmp_path)
    _edit(directory, "replicas.yaml", lambda d: d["rules"]["min-replicas"].update(mode={"prod": "enforce"}))
    with pytest.raises(ConfigError, match=r"replicas.yaml: rules.min-replicas.mode.dev: no mode for environment 'dev'"):
        load_policies(directory, "dev")


def test_an_unknown_settings_key_names_file_field_and_fix(tmp_path):
    directory = write_policies(tmp_path, settings={"replicas": {"min_replica": 3}})
    with pytest.raises(ConfigError) as error:
        load_policies(directory, "prod")
    assert "replicas.yaml: settings: unknown key(s) min_replica" in error.value.message
    assert error.value.fix


def test_a_wrongly_typed_setting_is_an_error(tmp_path):
    directory = write_policies(tmp_path, settings={"replicas": {"min_replicas": "three"}})
    with pytest.raises(ConfigError, match=r"replicas.yaml: settings.min_replicas: expected an integer >= 1, got 'three'"):
        load_policies(directory, "prod")


def test_a_missing_rule_entry_is_an_error(tmp_path):
    directory = write_policies(tmp_path)
    _edit(directory, "hpa.yaml", lambda d: d["rules"].pop("hpa-target"))
    with pytest.raises(ConfigError, match=r"hpa.yaml: rules.hpa-target: missing"):
        load_policies(directory, "prod")


def test_an_unknown_severity_is_an_error(tmp_path):
    directory = write_policies(tmp_path)
    _edit(directory, "pdb.yaml", lambda d: d["rules"]["pdb"].update(severity="urgent"))
    with pytest.raises(ConfigError, match=r"pdb.yaml: rules.pdb.severity: expected one of critical, high, medium, low"):
        load_policies(directory, "prod")


def test_a_missing_family_file_is_an_error(tmp_path):
    directory = write_policies(tmp_path)
    (directory / "probes.yaml").unlink()
    with pytest.raises(ConfigError, match=r"probes.yaml: missing"):
        load_policies(directory, "prod")


def test_an_unknown_file_is_an_error(tmp_path):
    directory = write_policies(tmp_path)
    (directory / "probe.yaml").write_text("rules: {}\n")
    with pytest.raises(ConfigError, match=r"probe.yaml: not a policy family file"):
        load_policies(directory, "prod")


def test_an_invalid_budget_quantity_is_an_error(tmp_path):
    directory = write_policies(tmp_path, settings={"budget": {"budgets": {"data": {"cpu": "8", "memory": "24GB", "storage": "1Ti"}}}})
    with pytest.raises(ConfigError, match=r"budget.yaml: settings.budgets.data.memory: '24GB' is not a Kubernetes quantity"):
        load_policies(directory, "prod")


def test_an_intended_flow_without_ports_is_an_error(tmp_path):
    directory = write_policies(tmp_path, settings={"network": {"intended_flows": [{"from": "a", "to": "b"}]}})
    with pytest.raises(ConfigError, match=r"network.yaml: settings.intended_flows\[0\].ports: missing"):
        load_policies(directory, "prod")


def test_an_invalid_port_is_an_error(tmp_path):
    directory = write_policies(tmp_path, settings={"network": {"intended_flows": [{"from": "a", "to": "b", "ports": ["53/ICMP"]}]}})
    with pytest.raises(ConfigError, match=r"intended_flows\[0\].ports: '53/ICMP' is not a port"):
        load_policies(directory, "prod")


def test_a_file_exception_without_expiry_is_an_error(tmp_path):
    directory = write_policies(tmp_path, exceptions=[{"rule": "pdb", "object": "x", "reason": "y"}])
    with pytest.raises(ConfigError, match=r"exceptions.yaml: exceptions\[0\].expires: None is not a date"):
        load_policies(directory, "prod")


def test_a_file_exception_for_an_unknown_rule_is_an_error(tmp_path):
    directory = write_policies(tmp_path, exceptions=[{"rule": "pbd", "object": "x", "reason": "y", "expires": "2025-01-01"}])
    with pytest.raises(ConfigError, match=r"exceptions.yaml: exceptions\[0\].rule: unknown rule\(s\) pbd"):
        load_policies(directory, "prod")


def test_an_invalid_mode_override_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="policy.mode override 'block' is not a mode"):
        load_policies(write_policies(tmp_path), "prod", mode_override="block")


def _write_replicas_rule(directory: Path, mode_text: str) -> None:
    """The file as a person writes it (PyYAML's dump would quote `off`)."""
    (directory / "replicas.yaml").write_text(f"rules:\n  min-replicas:\n    severity: high\n    mode: {mode_text}\n")


def test_a_rule_mode_off_written_unquoted_turns_the_rule_off(tmp_path):
    directory = write_policies(tmp_path, enforce=["min-replicas"])
    _write_replicas_rule(directory, "off")
    assert load_policies(directory, "prod").rules["min-replicas"].mode == "off"


def test_an_environment_mode_off_written_unquoted_turns_the_rule_off_there(tmp_path):
    directory = write_policies(tmp_path, enforce=["min-replicas"])
    _write_replicas_rule(directory, "{default: enforce, dev: off}")
    assert load_policies(directory, "dev").rules["min-replicas"].mode == "off"
    assert load_policies(directory, "prod").rules["min-replicas"].mode == "enforce"


def test_a_rule_mode_written_as_on_is_an_error(tmp_path):
    directory = write_policies(tmp_path)
    _write_replicas_rule(directory, "on")
    with pytest.raises(ConfigError, match=r"replicas.yaml: rules.min-replicas.mode: expected one of enforce, warn, off, got True"):
        load_policies(directory, "prod")
