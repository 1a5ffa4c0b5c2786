"""stack-budget: summed requests x replicas (HPA minReplicas when scaled) and storage per stack."""

from test_policy_builders import container, deployment, hpa, policies, run, summary

BUDGET = {"application": {"cpu": "3", "memory": "4Gi", "storage": "10Gi"}}
STACK = "healthflow.io/Stack/-/application"


def _budget(tmp_path, budgets=None, **extra):
    return policies(tmp_path, "stack-budget", settings={"budget": {"budgets": budgets or BUDGET, **extra}})


def _pvc(name: str, size: str) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "hf-app"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}


def test_budget_passes_when_requests_exactly_fit(tmp_path):
    # 6 replicas x 500m = 3 cores exactly; 6 x 512Mi = 3Gi.
    assert run([deployment(replicas=6)], _budget(tmp_path)).violations == []


def test_budget_reports_cpu_over_budget_naming_the_largest_contributor(tmp_path):
    report = run([deployment(replicas=7)], _budget(tmp_path))
    assert summary(report.violations) == [(
        "stack-budget", STACK,
        "stack application requests 3.5 cpu, over its budget of 3; largest: apps/Deployment/hf-app/prescription (0.5 x 7)",
    )]


def test_budget_uses_hpa_min_replicas_for_hpa_managed_workloads(tmp_path):
    report = run([deployment(replicas=None), hpa(min_replicas=7, max_replicas=20)], _budget(tmp_path))
    assert [v.rule for v in report.violations] == ["stack-budget"]


def test_budget_sums_millicores_exactly(tmp_path):
    one = container(); one["resources"]["requests"]["cpu"] = "333m"
    two = container("b"); two["resources"]["requests"]["cpu"] = "334m"
    one["resources"]["requests"]["memory"] = two["resources"]["requests"]["memory"] = "1Mi"
    report = run([deployment(replicas=3, containers=[one, two])], _budget(tmp_path, {"application": {"cpu": "2001m", "memory": "1Gi", "storage": 0}}))
    assert report.violations == []  # 3 x 667m = 2001m, not 2001.0000001m


def test_budget_counts_volume_claim_templates_times_replicas_and_pvcs(tmp_path):
    statefulset = deployment(kind="StatefulSet", replicas=3)
    statefulset["spec"]["volumeClaimTemplates"] = [
        {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "3Gi"}}}}
    ]
    report = run([statefulset, _pvc("backup", "1.5Gi")], _budget(tmp_path))
    assert [v.message for v in report.violations] == [
        "stack application requests 10.5Gi storage, over its budget of 10Gi; largest: apps/StatefulSet/hf-app/prescription "
        "volumeClaimTemplate data (3Gi x 3); core/PersistentVolumeClaim/hf-app/backup (1.5Gi)"
    ]


def test_budget_falls_back_to_limits_when_requests_are_missing(tmp_path):
    spec = container()
    del spec["resources"]["requests"]
    report = run([deployment(replicas=4, containers=[spec])], _budget(tmp_path))
    # cpu: 4 x limit 1 = 4 > 3; memory: 4 x limit 1Gi = 4Gi, exactly the budget.
    assert [v.message.split(";")[0] for v in report.violations] == ["stack application requests 4 cpu, over its budget of 3"]


def test_budget_counts_the_largest_init_container_when_it_exceeds_the_app_containers(tmp_path):
    init = container("init"); init["resources"]["requests"]["cpu"] = "2"
    manifest = deployment(replicas=2)
    manifest["spec"]["template"]["spec"]["initContainers"] = [init]
    report = run([manifest], _budget(tmp_path))  # max(2, 0.5) x 2 = 4 > 3
    assert [v.message.split(";")[0] for v in report.violations] == ["stack application requests 4 cpu, over its budget of 3"]


def test_budget_reports_a_stack_without_budget(tmp_path):
    report = run([deployment()], _budget(tmp_path, {"data": BUDGET["application"]}))
    assert summary(report.violations) == [("stack-budget", STACK, "stack application has no budget declared")]


def test_budget_counts_daemonsets_once_per_planned_node(tmp_path):
    daemonset = deployment(kind="DaemonSet", replicas=None)
    assert run([daemonset], _budget(tmp_path, daemonset_replicas=6)).violations == []  # 6 x 500m = 3
    assert [v.rule for v in run([daemonset], _budget(tmp_path / "b", daemonset_replicas=7)).violations] == ["stack-budget"]
