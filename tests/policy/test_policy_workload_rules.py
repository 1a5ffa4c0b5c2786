"""min-replicas, anti-affinity, pdb and the HPA rules, each on a minimal failing and passing manifest."""

from test_policy_builders import deployment, hpa, pdb, policies, run, summary

DEPLOY = "apps/Deployment/hf-app/prescription"


# --- min-replicas --------------------------------------------------------------------------------

def test_min_replicas_passes_with_three_replicas_in_prod(tmp_path):
    assert run([deployment(replicas=3)], policies(tmp_path, "min-replicas")).violations == []


def test_min_replicas_reports_two_replicas_in_prod(tmp_path):
    report = run([deployment(replicas=2)], policies(tmp_path, "min-replicas", settings={"replicas": {"min_replicas": 3}}))
    assert summary(report.violations) == [
        ("min-replicas", DEPLOY, "Deployment prescription runs 2 replica(s), at least 3 required: spec.replicas is 2")
    ]


def test_min_replicas_counts_an_unset_replicas_as_one(tmp_path):
    report = run([deployment(replicas=None)], policies(tmp_path, "min-replicas"))
    assert [v.message for v in report.violations] == [
        "Deployment prescription runs 1 replica(s), at least 3 required: spec.replicas is 1 (unset, defaults to 1)"
    ]


def test_min_replicas_uses_the_hpa_min_replicas_when_an_hpa_scales_the_workload(tmp_path):
    report = run([deployment(replicas=None), hpa(min_replicas=2)], policies(tmp_path, "min-replicas"))
    assert [v.message for v in report.violations] == [
        "Deployment prescription runs 2 replica(s), at least 3 required: HPA prescription minReplicas is 2"
    ]


def test_min_replicas_per_environment_allows_one_replica_in_dev(tmp_path):
    policy_set = policies(tmp_path, "min-replicas", env="dev",
                          settings={"replicas": {"min_replicas": 3}}, settings_by_env={"replicas": {"dev": {"min_replicas": 1}}})
    assert run([deployment(replicas=1)], policy_set).violations == []


def test_min_replicas_ignores_daemonsets(tmp_path):
    daemonset = deployment(kind="DaemonSet", replicas=None)
    assert run([daemonset], policies(tmp_path, "min-replicas")).violations == []


# --- anti-affinity -------------------------------------------------------------------------------

def test_anti_affinity_passes_with_required_hostname_anti_affinity_on_own_labels(tmp_path):
    assert run([deployment()], policies(tmp_path, "anti-affinity")).violations == []


def test_anti_affinity_reports_a_multi_replica_workload_without_it(tmp_path):
    report = run([deployment(affinity=False)], policies(tmp_path, "anti-affinity"))
    assert summary(report.violations) == [(
        "anti-affinity", DEPLOY,
        "Deployment prescription runs 3 replicas without required pod anti-affinity on kubernetes.io/hostname "
        "or a DoNotSchedule topology spread (maxSkew <= 1) on kubernetes.io/hostname selecting its own pod labels",
    )]


def test_anti_affinity_rejects_a_selector_that_does_not_match_the_pods(tmp_path):
    manifest = deployment()
    term = manifest["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    term["labelSelector"] = {"matchLabels": {"app.kubernetes.io/name": "someone-else"}}
    assert [v.rule for v in run([manifest], policies(tmp_path, "anti-affinity")).violations] == ["anti-affinity"]


def test_anti_affinity_rejects_preferred_anti_affinity(tmp_path):
    manifest = deployment()
    affinity = manifest["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [
        {"weight": 100, "podAffinityTerm": affinity.pop("requiredDuringSchedulingIgnoredDuringExecution")[0]}
    ]
    assert [v.rule for v in run([manifest], policies(tmp_path, "anti-affinity")).violations] == ["anti-affinity"]


def test_anti_affinity_rejects_a_zone_topology_key(tmp_path):
    manifest = deployment()
    term = manifest["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    term["topologyKey"] = "topology.kubernetes.io/zone"
    assert [v.rule for v in run([manifest], policies(tmp_path, "anti-affinity")).violations] == ["anti-affinity"]


def _spread(when: str) -> dict:
    manifest = deployment(affinity=False)
    manifest["spec"]["template"]["spec"]["topologySpreadConstraints"] = [{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "prescription"}},
    }]
    return manifest


def test_anti_affinity_accepts_a_do_not_schedule_topology_spread(tmp_path):
    assert run([_spread("DoNotSchedule")], policies(tmp_path, "anti-affinity")).violations == []


def test_anti_affinity_rejects_a_schedule_anyway_topology_spread(tmp_path):
    assert [v.rule for v in run([_spread("ScheduleAnyway")], policies(tmp_path, "anti-affinity")).violations] == ["anti-affinity"]


def test_anti_affinity_rejects_topology_spread_when_configured_to_accept_only_anti_affinity(tmp_path):
    policy_set = policies(tmp_path, "anti-affinity", settings={"anti-affinity": {"accept": ["pod-anti-affinity"]}})
    assert [v.rule for v in run([_spread("DoNotSchedule")], policy_set).violations] == ["anti-affinity"]


def test_anti_affinity_counts_hpa_min_replicas(tmp_path):
    report = run([deployment(replicas=None, affinity=False), hpa(min_replicas=2)], policies(tmp_path, "anti-affinity"))
    assert [v.rule for v in report.violations] == ["anti-affinity"]


def test_anti_affinity_does_not_apply_to_a_single_replica(tmp_path):
    assert run([deployment(replicas=1, affinity=False)], policies(tmp_path, "anti-affinity")).violations == []


# --- pdb -----------------------------------------------------------------------------------------

def test_pdb_passes_with_one_pdb_allowing_one_disruption(tmp_path):
    assert run([deployment(), pdb(maxUnavailable=1)], policies(tmp_path, "pdb")).violations == []


def test_pdb_reports_a_multi_replica_workload_without_pdb(tmp_path):
    report = run([deployment()], policies(tmp_path, "pdb"))
    assert summary(report.violations) == [("pdb", DEPLOY, "Deployment prescription (3 replicas) is not covered by any PodDisruptionBudget")]


def test_pdb_reports_a_pdb_that_allows_no_disruption(tmp_path):
    report = run([deployment(), pdb(minAvailable=3)], policies(tmp_path, "pdb"))
    assert [v.message for v in report.violations] == [
        "PodDisruptionBudget prescription allows 0 disruptions for Deployment prescription (3 replicas), so no node can be drained"
    ]


def test_pdb_rounds_a_min_available_percentage_up_like_the_disruption_controller(tmp_path):
    # 3 replicas, minAvailable 90% -> ceil(2.7) = 3 must stay: no disruption allowed.
    assert [v.rule for v in run([deployment(), pdb(minAvailable="90%")], policies(tmp_path, "pdb")).violations] == ["pdb"]
    assert run([deployment(), pdb(minAvailable="50%")], policies(tmp_path / "b", "pdb")).violations == []


def test_pdb_rounds_a_max_unavailable_percentage_up(tmp_path):
    assert run([deployment(), pdb(maxUnavailable="10%")], policies(tmp_path, "pdb")).violations == []


def test_pdb_reports_two_pdbs_selecting_the_same_pods(tmp_path):
    second = pdb(maxUnavailable=1)
    second["metadata"]["name"] = "prescription-extra"
    report = run([deployment(), pdb(), second], policies(tmp_path, "pdb"))
    assert [v.message for v in report.violations] == [
        "Deployment prescription (3 replicas) is covered by 2 PodDisruptionBudgets (prescription, prescription-extra); "
        "the eviction API refuses to evict its pods"
    ]


def test_pdb_in_another_namespace_does_not_cover(tmp_path):
    assert [v.rule for v in run([deployment(), pdb(namespace="hf-data")], policies(tmp_path, "pdb")).violations] == ["pdb"]


# --- hpa-target / hpa-replicas-in-git ------------------------------------------------------------

def test_hpa_target_passes_when_the_target_exists(tmp_path):
    assert run([deployment(replicas=None), hpa()], policies(tmp_path, "hpa-target", "hpa-replicas-in-git")).violations == []


def test_hpa_target_reports_a_missing_target(tmp_path):
    report = run([hpa(target="ghost")], policies(tmp_path, "hpa-target"))
    assert summary(report.violations) == [(
        "hpa-target", "autoscaling/HorizontalPodAutoscaler/hf-app/ghost",
        "HorizontalPodAutoscaler ghost targets Deployment ghost, which the environment does not render in namespace hf-app",
    )]


def test_hpa_target_reports_a_target_of_the_wrong_kind(tmp_path):
    report = run([deployment(replicas=None), hpa(kind="StatefulSet")], policies(tmp_path, "hpa-target"))
    assert [v.rule for v in report.violations] == ["hpa-target"]


def test_hpa_target_reports_two_hpas_on_one_workload(tmp_path):
    report = run([deployment(replicas=None), hpa(), hpa(name="second")], policies(tmp_path, "hpa-target"))
    assert len(report.violations) == 2
    assert all("is scaled by 2 HorizontalPodAutoscalers (prescription, second)" in v.message for v in report.violations)


def test_hpa_replicas_in_git_reports_replicas_on_an_hpa_managed_workload(tmp_path):
    report = run([deployment(replicas=3), hpa()], policies(tmp_path, "hpa-replicas-in-git"))
    assert summary(report.violations) == [(
        "hpa-replicas-in-git", DEPLOY,
        "Deployment prescription sets spec.replicas: 3 but is scaled by HorizontalPodAutoscaler prescription; "
        "every sync would reset the HPA's choice",
    )]


def test_hpa_replicas_in_git_allows_replicas_without_an_hpa(tmp_path):
    assert run([deployment(replicas=3)], policies(tmp_path, "hpa-replicas-in-git")).violations == []


def test_pdb_is_not_required_for_a_single_replica(tmp_path):
    assert run([deployment(replicas=1)], policies(tmp_path, "pdb")).violations == []


def test_pdb_on_a_single_replica_must_still_allow_a_drain(tmp_path):
    report = run([deployment(replicas=1), pdb(minAvailable=1)], policies(tmp_path, "pdb"))
    assert [v.message for v in report.violations] == [
        "PodDisruptionBudget prescription allows 0 disruptions for Deployment prescription (1 replicas), so no node can be drained"
    ]
