"""Builders for what tests put in Git: objects, kustomizations, stacks and environment files."""

from __future__ import annotations

from pathlib import Path

import yaml

from gitrepo import PushRepo


def configmap(name: str, namespace: str, data: dict | None = None, **metadata: object) -> dict:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace, **metadata}}
    if data is not None:
        body["data"] = data
    return body


def deployment(name: str, namespace: str, replicas: int = 1, **container: object) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10",
                                                       **container}]}}},
    }


def kustomization(*resources: str, **extra: object) -> dict:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": list(resources),
            **extra}


def write_stack(repo: PushRepo, stack: str, objects: list[dict], **kustomization_extra: object) -> None:
    """`stacks/<stack>/objects.yaml` and its kustomization."""
    repo.write(f"stacks/{stack}/objects.yaml", objects if objects else "")
    repo.write(f"stacks/{stack}/kustomization.yaml", kustomization("objects.yaml", **kustomization_extra))


REPO_POLICIES = Path(__file__).resolve().parent.parent / "policies"


def write_policies_enforcing_only_min_replicas(repo: PushRepo, minimum: int = 2) -> None:
    """The repository's own policy files, every rule off except min-replicas (enforce, at least `minimum`)."""
    for path in sorted(REPO_POLICIES.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        for rule_id, rule in (data.get("rules") or {}).items():
            rule["mode"] = "enforce" if rule_id == "min-replicas" else "off"
        if path.name == "replicas.yaml":
            data["settings"] = {"min_replicas": minimum}
            data.pop("settings_by_env", None)
        repo.write(f"policies/{path.name}", data)


def make_env(tmp_path: Path, repo: PushRepo, name: str, stacks: list[dict], **sync: object) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name,
        "source": {"url": repo.url, "branch": "main"},
        "sync": {"interval": "5s", "healthTimeout": "60s", **sync},
        **({} if (repo.work_path / "policies").is_dir() else {"policy": {"mode": "off"}}),
        "stacks": stacks,
    }))
    return path
