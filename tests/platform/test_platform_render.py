"""The HealthFlow platform renders: every overlay builds with the kustomize CLI, and what it renders
keeps the promises of docs/CONTRACT.md that can be checked on plain data.

The rendering helpers here are shared by tests/test_platform_rules.py and
tests/test_platform_cluster.py (imported by module name: pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import base64
import functools
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from kubernetes.utils import parse_quantity

from platform_support import CLUSTER_SCOPED_KINDS, NAMESPACES, STACKS  # noqa: F401 - re-exported to platform tests

REPO_ROOT = Path(__file__).resolve().parents[2]

ENVS: tuple[str, ...] = ("dev", "staging", "prod")
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
ORIGIN = "config.kubernetes.io/origin"
CONTRACT_POD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/part-of", "healthflow.io/stack")

# Secrets that prod expects to exist (written from Vault, see docs/platform.md); staging keeps the same
# Secrets in Git, SOPS-encrypted; only dev generates its own, with placeholder values.
EXTERNAL_SECRETS: dict[str, frozenset[str]] = {
    "monitoring": frozenset({"grafana-admin"}),
    "data": frozenset({"postgres-credentials", "mysql-credentials", "redis-credentials"}),
    "application": frozenset({"ndp-datastores"}),
}

# The devcluster (docs/CONTRACT.md, "Devcluster"): 3 nodes of 8 CPU / 16Gi / 110 pods.
DEVCLUSTER_NODES = 3
NODE_CPU = Decimal(8)
NODE_MEMORY = parse_quantity("16Gi")
NODE_PODS = 110

Obj = dict


# --------------------------------------------------------------------------------------------
# Rendering and plain-data helpers (shared)
# --------------------------------------------------------------------------------------------

def kustomize_command(path: Path) -> list[str]:
    """`kubectl kustomize` is what the devcluster instructions name; a standalone kustomize works too."""
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize", str(path)]
    if shutil.which("kustomize"):
        return ["kustomize", "build", str(path)]
    pytest.skip("neither kubectl nor kustomize is installed")


def build(path: Path) -> list[Obj]:
    """Render one kustomization with the real CLI; a failed build fails with kustomize's message."""
    result = subprocess.run(kustomize_command(path), capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"kustomize build {path.relative_to(REPO_ROOT)} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.lru_cache(maxsize=None)
def _render_cached(env: str, stack: str) -> tuple[Obj, ...]:
    return tuple(build(REPO_ROOT / "overlays" / env / stack))


def render(env: str, stack: str) -> list[Obj]:
    """The objects of overlays/<env>/<stack> (cached per session: kustomize is the slow part)."""
    return list(_render_cached(env, stack))


def render_env(env: str) -> list[tuple[str, Obj]]:
    """Every object of an environment, with the stack it came from."""
    return [(stack, obj) for stack in STACKS for obj in render(env, stack)]


def ident(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']} {where}{meta.get('name')}"


def workloads(objs: list[Obj]) -> list[Obj]:
    return [o for o in objs if o["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: Obj) -> Obj:
    return workload["spec"]["template"]["spec"]


def pod_labels(workload: Obj) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def containers(workload: Obj) -> list[Obj]:
    return pod_spec(workload)["containers"]


def all_containers(workload: Obj) -> list[Obj]:
    spec = pod_spec(workload)
    return spec.get("initContainers", []) + spec["containers"]


def hpa_for(workload: Obj, objs: list[Obj]) -> Obj | None:
    """The HorizontalPodAutoscaler that scales this workload, if any."""
    for obj in objs:
        ref = obj.get("spec", {}).get("scaleTargetRef", {}) if obj["kind"] == "HorizontalPodAutoscaler" else {}
        if ref.get("kind") == workload["kind"] and ref.get("name") == workload["metadata"]["name"] \
                and obj["metadata"].get("namespace") == workload["metadata"].get("namespace"):
            return obj
    return None


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions); {} matches all."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def pod_requests(workload: Obj) -> tuple[Decimal, Decimal]:
    """(cpu cores, memory bytes) one pod requests, as the scheduler counts them:
    the larger of the app containers' sum and the largest init container."""
    def req(c: Obj, res: str) -> Decimal:
        value = c.get("resources", {}).get("requests", {}).get(res)
        return parse_quantity(value) if value is not None else Decimal(0)

    spec = pod_spec(workload)
    inits = spec.get("initContainers", [])
    cpu = max([sum((req(c, "cpu") for c in spec["containers"]), Decimal(0))] + [req(c, "cpu") for c in inits])
    mem = max([sum((req(c, "memory") for c in spec["containers"]), Decimal(0))] + [req(c, "memory") for c in inits])
    return cpu, mem


def replica_count(workload: Obj, objs: list[Obj]) -> int:
    """How many pods run in steady state: the HPA's floor when one scales it, else spec.replicas
    (Kubernetes' default is 1)."""
    hpa = hpa_for(workload, objs)
    if hpa is not None:
        return int(hpa["spec"].get("minReplicas", 1))
    return int(workload["spec"].get("replicas", 1))


def env_objects(env: str) -> list[Obj]:
    """Every object of an environment, all stacks together."""
    return [obj for _, obj in render_env(env)]


# --------------------------------------------------------------------------------------------
# Specifications
# --------------------------------------------------------------------------------------------

OVERLAYS = [(env, stack) for env in ENVS for stack in STACKS]


@pytest.mark.parametrize(("env", "stack"), OVERLAYS, ids=[f"{e}-{s}" for e, s in OVERLAYS])
def test_every_overlay_renders_without_error(env: str, stack: str) -> None:
    objs = render(env, stack)
    assert objs, f"overlays/{env}/{stack} rendered nothing"


@pytest.mark.parametrize("env", ENVS)
def test_every_rendered_object_records_its_source_file(env: str) -> None:
    """buildMetadata: [originAnnotations] in every overlay: the engine lifts the origin into
    the object's source file (docs/CONTRACT.md)."""
    missing = [f"{stack}: {ident(o)}" for stack, o in render_env(env)
               if ORIGIN not in o["metadata"].get("annotations", {})]
    assert not missing, f"objects without {ORIGIN}: {missing}"


@pytest.mark.parametrize("env", ENVS)
def test_each_stack_creates_its_own_namespace_labelled_with_the_stack(env: str) -> None:
    for stack in STACKS:
        namespaces = [o for o in render(env, stack) if o["kind"] == "Namespace"]
        assert [n["metadata"]["name"] for n in namespaces] == [NAMESPACES[stack]], stack
        assert namespaces[0]["metadata"]["labels"].get("healthflow.io/stack") == stack


@pytest.mark.parametrize("env", ENVS)
def test_every_namespaced_object_lives_in_its_stack_namespace(env: str) -> None:
    strays = [f"{stack}: {ident(o)}" for stack, o in render_env(env)
              if o["kind"] not in CLUSTER_SCOPED_KINDS and o["metadata"].get("namespace") != NAMESPACES[stack]]
    assert not strays


@pytest.mark.parametrize("env", ENVS)
def test_every_pod_template_carries_the_contract_labels(env: str) -> None:
    wrong = []
    for stack, w in render_env(env):
        if w["kind"] not in WORKLOAD_KINDS:
            continue
        labels = pod_labels(w)
        expected = {"app.kubernetes.io/part-of": "healthflow", "healthflow.io/stack": stack}
        if any(labels.get(k) != v for k, v in expected.items()) or not labels.get("app.kubernetes.io/name"):
            wrong.append(f"{ident(w)}: {labels}")
    assert not wrong


@pytest.mark.parametrize("env", ENVS)
def test_every_image_is_pinned_to_an_exact_version(env: str) -> None:
    """Real, public images at an exact version tag: never `latest`, never a floating major.
    (PostgreSQL's releases have two parts: 16.4 is exact.)"""
    exact = re.compile(r"^[a-z0-9._\-/]+:v?\d+\.\d+(\.\d+)?$")
    loose = [f"{ident(w)}: {c['image']}" for _, w in render_env(env) if w["kind"] in WORKLOAD_KINDS
             for c in all_containers(w) if not exact.match(c["image"])]
    assert not loose


@pytest.mark.parametrize("env", ENVS)
def test_every_probe_targets_a_declared_container_port(env: str) -> None:
    wrong = []
    for _, w in render_env(env):
        if w["kind"] not in WORKLOAD_KINDS:
            continue
        for c in containers(w):
            declared = {p.get("name") for p in c.get("ports", [])} | {p["containerPort"] for p in c.get("ports", [])}
            for kind in ("livenessProbe", "readinessProbe"):
                probe = c.get(kind, {})
                handler = probe.get("httpGet") or probe.get("tcpSocket") or probe.get("grpc") or {}
                if handler.get("port") not in declared:
                    wrong.append(f"{ident(w)} {c['name']} {kind} -> {handler.get('port')}")
    assert not wrong


@pytest.mark.parametrize("env", ENVS)
def test_deployments_scaled_by_an_hpa_carry_no_replica_count(env: str) -> None:
    """The HPA's minReplicas carries the count; a replica count in Git would fight the HPA."""
    fighting = [ident(w) for stack in STACKS for objs in [render(env, stack)]
                for w in workloads(objs) if hpa_for(w, objs) is not None and "replicas" in w["spec"]]
    assert not fighting


@pytest.mark.parametrize("env", ENVS)
def test_every_service_of_the_application_has_an_hpa(env: str) -> None:
    objs = render(env, "application")
    unscaled = [ident(w) for w in workloads(objs) if hpa_for(w, objs) is None]
    assert not unscaled


@pytest.mark.parametrize("env", ENVS)
def test_every_public_route_goes_through_the_traefik_ingress_class_to_a_rendered_service(env: str) -> None:
    objs = render(env, "application")
    services = {o["metadata"]["name"] for o in objs if o["kind"] == "Service"}
    ingresses = [o for o in objs if o["kind"] == "Ingress"]
    assert len(ingresses) >= 4
    for ing in ingresses:
        assert ing["spec"]["ingressClassName"] == "traefik", ident(ing)
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"] in services, ident(ing)
    gateway = render(env, "gateway")
    assert any(o["kind"] == "IngressClass" and o["metadata"]["name"] == "traefik" for o in gateway)


def test_bases_hold_no_secret_values() -> None:
    """Bases reference Secrets by name; no Secret object, no literal password in an env var."""
    leaks = []
    for stack in STACKS:
        for obj in build(REPO_ROOT / "base" / stack):
            if obj["kind"] == "Secret":
                leaks.append(ident(obj))
            if obj["kind"] in WORKLOAD_KINDS:
                for c in all_containers(obj):
                    for var in c.get("env", []):
                        if re.search(r"PASSWORD|SECRET|TOKEN", var["name"]) and "value" in var:
                            leaks.append(f"{ident(obj)} {c['name']} {var['name']}")
    assert not leaks


def test_only_dev_generates_secrets_staging_encrypts_them_and_prod_commits_none() -> None:
    for env in ENVS:
        secrets = [o for _, o in render_env(env) if o["kind"] == "Secret"]
        if env == "prod":
            assert not secrets, f"{env} must not commit Secrets: {[ident(s) for s in secrets]}"
            continue
        if env == "staging":
            assert {s["metadata"]["name"] for s in secrets} == set().union(*EXTERNAL_SECRETS.values())
            for secret in secrets:
                assert "sops" in secret, f"{ident(secret)} is not SOPS-encrypted"
                assert all(v.startswith("ENC[AES256_GCM,") for v in secret["stringData"].values()), ident(secret)
            continue
        assert secrets
        for secret in secrets:
            for key, value in secret["data"].items():
                assert base64.b64decode(value).decode().startswith("changeme-"), f"{ident(secret)} {key}"


@pytest.mark.parametrize("env", ENVS)
def test_every_configmap_and_secret_reference_resolves(env: str) -> None:
    """A reference to a generated ConfigMap/Secret must carry its hash suffix; a Secret not
    rendered must be one of the documented, externally provided ones."""
    dangling = []
    for stack in STACKS:
        objs = render(env, stack)
        present = {(o["kind"], o["metadata"]["name"]) for o in objs}
        external = EXTERNAL_SECRETS.get(stack, frozenset()) if env == "prod" else frozenset()
        for w in workloads(objs):
            for kind, name in _references(w):
                if (kind, name) not in present and not (kind == "Secret" and name in external):
                    dangling.append(f"{ident(w)} -> {kind} {name}")
    assert not dangling


def _references(workload: Obj) -> Iterator[tuple[str, str]]:
    spec = pod_spec(workload)
    for vol in spec.get("volumes", []):
        if "configMap" in vol:
            yield "ConfigMap", vol["configMap"]["name"]
        if "secret" in vol:
            yield "Secret", vol["secret"]["secretName"]
    for c in all_containers(workload):
        for src in c.get("envFrom", []):
            if "configMapRef" in src:
                yield "ConfigMap", src["configMapRef"]["name"]
            if "secretRef" in src:
                yield "Secret", src["secretRef"]["name"]
        for var in c.get("env", []):
            ref = var.get("valueFrom", {})
            if "configMapKeyRef" in ref:
                yield "ConfigMap", ref["configMapKeyRef"]["name"]
            if "secretKeyRef" in ref:
                yield "Secret", ref["secretKeyRef"]["name"]
    if spec.get("serviceAccountName"):
        yield "ServiceAccount", spec["serviceAccountName"]


@pytest.mark.parametrize("env", ENVS)
def test_volumes_claim_the_default_storage_class(env: str) -> None:
    claims = [o for _, o in render_env(env) if o["kind"] == "PersistentVolumeClaim"]
    claims += [t for _, o in render_env(env) if o["kind"] == "StatefulSet"
               for t in o["spec"].get("volumeClaimTemplates", [])]
    assert claims
    assert all(c["spec"].get("storageClassName", "standard") == "standard" for c in claims)


def test_dev_runs_one_replica_of_everything() -> None:
    objs = env_objects("dev")
    assert {ident(w): replica_count(w, objs) for w in workloads(objs)} == {ident(w): 1 for w in workloads(objs)}


def test_staging_runs_two_replicas_or_three_where_a_quorum_needs_them() -> None:
    quorum = {"consul-server", "vault", "redis"}
    objs = env_objects("staging")
    counts = {w["metadata"]["name"]: replica_count(w, objs) for w in workloads(objs)}
    assert counts == {name: 3 if name in quorum else 2 for name in counts}


def test_dev_fits_comfortably_on_the_three_devcluster_nodes() -> None:
    """All five dev stacks together take at most a quarter of the devcluster's CPU and memory
    (the rest is for the tests' own workloads and for rolling updates)."""
    objs = env_objects("dev")
    cpu = mem = Decimal(0)
    pods = 0
    for w in workloads(objs):
        n = replica_count(w, objs)
        c, m = pod_requests(w)
        cpu, mem, pods = cpu + n * c, mem + n * m, pods + n
    assert cpu <= DEVCLUSTER_NODES * NODE_CPU / 4, f"dev requests {cpu} CPU"
    assert mem <= DEVCLUSTER_NODES * NODE_MEMORY / 4, f"dev requests {mem / 2**30:.2f}Gi"
    assert pods <= DEVCLUSTER_NODES * NODE_PODS / 4


# The documented keys of each staging Secret (docs/platform.md, "Secrets").
STAGING_SECRET_KEYS: dict[str, set[str]] = {
    "grafana-admin": {"password"},
    "postgres-credentials": {"postgres-password", "replication-password", "ndp-password", "exporter-password"},
    "mysql-credentials": {"root-password", "inventory-password", "replication-password", "exporter-password"},
    "redis-credentials": {"password"},
    "ndp-datastores": {"postgres-password", "mysql-password", "redis-password"},
}


def test_stagings_encrypted_secrets_decrypt_with_the_demo_key_to_the_documented_keys() -> None:
    from reconciler.config import DecryptionConfig
    from reconciler.objects import parse_objects
    from reconciler.pipeline.decrypt import Decryptor, SopsKeys

    key = (REPO_ROOT / "deploy" / "demo-sops-age.agekey").read_text()
    decryptor = Decryptor(DecryptionConfig(keyFile="demo-sops-age.agekey"),
                          lambda: SopsKeys.from_entries({"identity.agekey": key}), "environments/staging.yaml")
    decrypted: dict[str, dict] = {}
    for stack in ("monitoring", "data", "application"):
        objects = parse_objects(yaml.safe_dump_all(render("staging", stack)), stack=stack)
        for obj in decryptor.objects(REPO_ROOT, stack, objects, f"overlays/staging/{stack}"):
            if obj.kind == "Secret":
                decrypted[obj.id.name] = obj.manifest["stringData"]

    assert {name: set(data) for name, data in decrypted.items()} == STAGING_SECRET_KEYS
    assert not any(value.startswith("ENC[") for data in decrypted.values() for value in data.values())
    datastores, postgres = decrypted["ndp-datastores"], decrypted["postgres-credentials"]
    assert datastores["postgres-password"] == postgres["ndp-password"]
    assert datastores["mysql-password"] == decrypted["mysql-credentials"]["inventory-password"]
    assert datastores["redis-password"] == decrypted["redis-credentials"]["password"]
