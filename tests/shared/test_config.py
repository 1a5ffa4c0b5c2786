"""environments/*.yaml: valid files load; every invalid one names the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reconciler.config import load_environment, load_environments, parse_duration
from reconciler.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_env(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "environments" / "test.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(body))
    return path


def stacks(*specs: tuple[str, list[str]]) -> list[dict]:
    return [{"name": name, "path": f"overlays/{name}", "dependsOn": deps} for name, deps in specs]


def remote(body: dict) -> dict:
    return {"source": {"url": "https://git.example.test/platform.git"}, **body}


def test_the_repository_environments_are_valid() -> None:
    envs = load_environments(REPO_ROOT / "environments")
    assert sorted(e.name for e in envs) == ["dev", "prod", "staging"]
    assert all([s.name for s in e.stacks] == ["gateway", "discovery", "monitoring", "data", "application"]
               for e in envs)


def test_durations_accept_units() -> None:
    assert [parse_duration(v) for v in ("90", "90s", "5m", "1h", "250ms", 3)] == [90, 90, 300, 3600, 0.25, 3]


def test_durations_accept_gos_compound_form_as_flux_and_argo_cd_write_it() -> None:
    assert [parse_duration(v) for v in ("1m0s", "10m0s", "1h30m", "1m30.5s", "2h0m0s")] == [60, 600, 5400, 90.5, 7200]


@pytest.mark.parametrize("text", ["2d", "-5m", "1H", "1h 30m", "", "h"])
def test_what_is_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration; write e.g. 30s, 5m, 1h or 1h30m"):
        parse_duration(text)


def test_defaults_fill_unset_sync_settings(tmp_path: Path) -> None:
    env = load_environment(write_env(tmp_path, remote({"name": "x", "stacks": stacks(("a", []))})))
    assert (env.sync.interval_s, env.sync.prune, env.sync.correct_drift, env.sync.wait_for_health) == (60, True, True, True)
    assert env.source.branch == "main"


def test_unknown_field_is_named_with_its_path(tmp_path: Path) -> None:
    path = write_env(tmp_path, remote({"name": "x", "sync": {"intervall": "1m"}, "stacks": stacks(("a", []))}))
    with pytest.raises(ConfigError) as error:
        load_environment(path)
    assert str(path) in str(error.value)
    assert "sync.intervall" in str(error.value)
    assert "spelling" in str(error.value)


def test_unknown_dependency_is_rejected(tmp_path: Path) -> None:
    path = write_env(tmp_path, remote({"name": "x", "stacks": stacks(("a", ["ghost"]))}))
    with pytest.raises(ConfigError, match="depends on unknown stack 'ghost'"):
        load_environment(path)


def test_a_cycle_is_rejected_with_its_path(tmp_path: Path) -> None:
    path = write_env(tmp_path, remote({"name": "x", "stacks": stacks(("a", ["c"]), ("b", ["a"]), ("c", ["b"]))}))
    with pytest.raises(ConfigError, match=r"dependency cycle: a -> c -> b -> a"):
        load_environment(path)


def test_a_path_outside_the_repository_is_rejected(tmp_path: Path) -> None:
    body = remote({"name": "x", "stacks": [{"name": "a", "path": "../elsewhere"}]})
    with pytest.raises(ConfigError, match=r"stacks\[0\] \(a\)\.path: '../elsewhere' is outside the repository"):
        load_environment(write_env(tmp_path, body))


def test_a_missing_overlay_in_this_repository_is_rejected(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    path = write_env(tmp_path, {"name": "x", "stacks": [{"name": "a", "path": "overlays/none"}]})
    with pytest.raises(ConfigError, match="no kustomization.yaml in 'overlays/none'"):
        load_environment(path)


def test_a_bad_duration_says_how_to_write_one(tmp_path: Path) -> None:
    path = write_env(tmp_path, remote({"name": "x", "sync": {"interval": "soon"}, "stacks": stacks(("a", []))}))
    with pytest.raises(ConfigError, match="write e.g. 30s, 5m, 1h or 1h30m"):
        load_environment(path)


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_environment(path)


def test_policy_mode_off_written_unquoted_turns_policy_off(tmp_path: Path) -> None:
    """YAML 1.1 reads an unquoted `off` as false; the README and the missing-folder error ask for `policy.mode: off`."""
    path = tmp_path / "environments" / "test.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("name: x\nsource: {url: https://git.example.test/platform.git}\npolicy:\n  mode: off\n"
                    "stacks: [{name: a, path: overlays/a}]\n")
    assert load_environment(path).policy.mode == "off"


def test_policy_mode_written_as_true_is_still_an_error(tmp_path: Path) -> None:
    path = write_env(tmp_path, remote({"name": "x", "policy": {"mode": True}, "stacks": stacks(("a", []))}))
    with pytest.raises(ConfigError, match=r"policy.mode: Input should be 'enforce', 'warn' or 'off'"):
        load_environment(path)
