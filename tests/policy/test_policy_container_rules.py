"""probes, resources and image-tag on minimal failing and passing containers."""

import pytest

from test_policy_builders import container, deployment, policies, run, summary

DEPLOY = "apps/Deployment/hf-app/prescription"


def _with(**kwargs):
    return deployment(containers=[container(**kwargs)])


# --- probes --------------------------------------------------------------------------------------

def test_probes_pass_with_liveness_and_readiness_on_declared_ports(tmp_path):
    assert run([_with()], policies(tmp_path, "probes")).violations == []


def test_probes_report_each_missing_probe(tmp_path):
    report = run([_with(probes=False)], policies(tmp_path, "probes"))
    assert summary(report.violations) == [
        ("probes", DEPLOY, "container app of Deployment prescription has no livenessProbe"),
        ("probes", DEPLOY, "container app of Deployment prescription has no readinessProbe"),
    ]


def test_probes_report_a_probe_on_an_undeclared_port(tmp_path):
    manifest = _with()
    manifest["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 9999}}
    report = run([manifest], policies(tmp_path, "probes"))
    assert [v.message for v in report.violations] == [
        "readinessProbe of container app of Deployment prescription targets port 9999, which the container does not declare"
    ]


def test_probes_report_an_unknown_named_port(tmp_path):
    manifest = _with()
    manifest["spec"]["template"]["spec"]["containers"][0]["livenessProbe"] = {"httpGet": {"path": "/", "port": "admin"}}
    assert [v.rule for v in run([manifest], policies(tmp_path, "probes")).violations] == ["probes"]


def test_probes_accept_exec_probes(tmp_path):
    manifest = _with(probes=False)
    spec = manifest["spec"]["template"]["spec"]["containers"][0]
    spec["livenessProbe"] = spec["readinessProbe"] = {"exec": {"command": ["redis-cli", "ping"]}}
    assert run([manifest], policies(tmp_path, "probes")).violations == []


def test_probes_are_not_required_on_jobs_or_plain_init_containers(tmp_path):
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "hf-app"},
           "spec": {"template": {"spec": {"containers": [container(probes=False)], "restartPolicy": "Never"}}}}
    manifest = _with()
    manifest["spec"]["template"]["spec"]["initContainers"] = [container("init", probes=False)]
    assert run([job, manifest], policies(tmp_path, "probes")).violations == []


def test_probes_are_required_on_sidecar_init_containers(tmp_path):
    manifest = _with()
    sidecar = container("proxy", probes=False)
    sidecar["restartPolicy"] = "Always"
    manifest["spec"]["template"]["spec"]["initContainers"] = [sidecar]
    report = run([manifest], policies(tmp_path, "probes"))
    assert [v.message for v in report.violations] == [
        "container proxy of Deployment prescription has no livenessProbe",
        "container proxy of Deployment prescription has no readinessProbe",
    ]


# --- resources -----------------------------------------------------------------------------------

def test_resources_pass_with_requests_and_limits(tmp_path):
    assert run([_with()], policies(tmp_path, "resources")).violations == []


def test_resources_report_missing_requests_and_limits(tmp_path):
    report = run([_with(resources=False)], policies(tmp_path, "resources"))
    assert summary(report.violations) == [(
        "resources", DEPLOY,
        "container app of Deployment prescription does not set requests.cpu, requests.memory, limits.cpu, limits.memory",
    )]


def test_resources_report_only_the_missing_limit(tmp_path):
    manifest = _with()
    del manifest["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"]
    assert [v.message for v in run([manifest], policies(tmp_path, "resources")).violations] == [
        "container app of Deployment prescription does not set limits.cpu"
    ]


def test_resources_report_an_invalid_quantity(tmp_path):
    manifest = _with()
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = "1GB"
    report = run([manifest], policies(tmp_path, "resources"))
    assert [v.message for v in report.violations] == [
        "container app of Deployment prescription: resources.requests.memory: '1GB' is not a Kubernetes quantity "
        "(examples: 100m, 1.5Gi, 2, 1e3)"
    ]


def test_resources_apply_to_init_containers(tmp_path):
    manifest = _with()
    manifest["spec"]["template"]["spec"]["initContainers"] = [container("init", resources=False)]
    assert [v.message for v in run([manifest], policies(tmp_path, "resources")).violations] == [
        "container init of Deployment prescription does not set requests.cpu, requests.memory, limits.cpu, limits.memory"
    ]


# --- image-tag -----------------------------------------------------------------------------------

@pytest.mark.parametrize("image", ["traefik:v3.1.4", "registry.local:5000/team/app:2.0",
                                   "postgres:16@sha256:" + "a" * 64, "postgres@sha256:" + "b" * 64])
def test_image_tag_passes_pinned_images(tmp_path, image):
    assert run([_with(image=image)], policies(tmp_path, "image-tag")).violations == []


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("traefik:latest", "image traefik:latest uses the mutable tag :latest"),
        ("traefik", "image traefik has no tag (pulls :latest)"),
        ("registry.local:5000/team/app", "image registry.local:5000/team/app has no tag (pulls :latest)"),
    ],
)
def test_image_tag_reports_latest_and_untagged_images(tmp_path, image, problem):
    report = run([_with(image=image)], policies(tmp_path, "image-tag"))
    assert summary(report.violations) == [("image-tag", DEPLOY, f"container app of Deployment prescription: {problem}")]


def test_image_tag_requires_a_digest_when_configured(tmp_path):
    policy_set = policies(tmp_path, "image-tag", settings={"images": {"require_digest": True}})
    assert [v.message for v in run([_with(image="traefik:v3.1.4")], policy_set).violations] == [
        "container app of Deployment prescription: image traefik:v3.1.4 is not pinned by digest"
    ]
    assert run([_with(image="traefik:v3.1.4@sha256:" + "c" * 64)], policy_set).violations == []
