"""Readiness rules per kind, on plain objects as the API server returns them (no cluster)."""

from __future__ import annotations

from reconciler.kube.health import (awaits_first_consumer, crd_ready, deployment_ready, generic_ready, job_ready,
                                    namespace_ready, pod_ready, service_problems, statefulset_ready)


def custom_resource(generation: int = 1, **status: object) -> dict:
    return {"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "w", "generation": generation},
            "status": status}


def test_a_custom_resource_without_status_is_ready() -> None:
    assert generic_ready({"metadata": {"name": "w", "generation": 1}}) is None


def test_a_custom_resource_whose_controller_has_not_seen_the_latest_generation_is_not_ready() -> None:
    reason = generic_ready(custom_resource(generation=3, observedGeneration=2,
                                           conditions=[{"type": "Ready", "status": "True"}]))

    assert reason == "generation 3 not observed yet (observed 2)"


def test_ready_false_reconciling_and_stalled_each_make_a_custom_resource_unready() -> None:
    assert generic_ready(custom_resource(conditions=[{"type": "Ready", "status": "False", "message": "no disk"}])) \
        == "not ready: no disk"
    assert generic_ready(custom_resource(conditions=[{"type": "Reconciling", "status": "True", "reason": "Progressing"}])) \
        == "reconciling: Progressing"
    assert generic_ready(custom_resource(conditions=[{"type": "Stalled", "status": "True", "message": "quota"}])) \
        == "stalled: quota"


def test_conditions_the_generic_rules_do_not_know_leave_a_custom_resource_ready() -> None:
    assert generic_ready(custom_resource(observedGeneration=1,
                                         conditions=[{"type": "ScalingActive", "status": "False"}])) is None


def test_a_crd_is_ready_once_established() -> None:
    crd = {"status": {"conditions": [{"type": "NamesAccepted", "status": "True"}]}}
    assert crd_ready(crd) == "not Established"
    crd["status"]["conditions"].append({"type": "Established", "status": "True"})
    assert crd_ready(crd) is None


def test_a_terminating_namespace_is_not_ready() -> None:
    assert namespace_ready({"status": {"phase": "Terminating"}}) == "terminating"
    assert namespace_ready({"status": {"phase": "Active"}}) is None


def test_a_deployment_with_old_replicas_still_terminating_is_not_ready() -> None:
    deployment = {"metadata": {"generation": 2}, "spec": {"replicas": 2},
                  "status": {"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2,
                             "readyReplicas": 2, "replicas": 3}}

    assert deployment_ready(deployment) == "3 replicas, old ones still terminating"


def test_a_failed_job_is_reported_with_its_message() -> None:
    job = {"status": {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}}

    assert job_ready(job) == "failed: BackoffLimitExceeded"


def test_a_deployment_past_its_progress_deadline_has_failed() -> None:
    deployment = {"metadata": {"generation": 2}, "spec": {"replicas": 2},
                  "status": {"observedGeneration": 2, "updatedReplicas": 1, "availableReplicas": 1, "replicas": 2,
                             "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                             "message": 'ReplicaSet "web-5d" has timed out progressing.'}]}}

    assert deployment_ready(deployment) == 'failed: progress deadline exceeded: ReplicaSet "web-5d" has timed out progressing.'


def _statefulset(partition: int | None, updated: int, current_revision: str = "web-1") -> dict:
    rolling = {"partition": partition} if partition is not None else {}
    return {"metadata": {"generation": 2},
            "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": rolling}},
            "status": {"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": updated,
                       "currentRevision": current_revision, "updateRevision": "web-2"}}


def test_a_statefulset_rolled_out_down_to_its_partition_is_ready() -> None:
    assert statefulset_ready(_statefulset(partition=2, updated=1)) is None


def test_a_statefulset_not_yet_rolled_out_down_to_its_partition_is_not_ready() -> None:
    assert statefulset_ready(_statefulset(partition=1, updated=1)) == "1/2 updated above partition 1"


def test_a_statefulset_without_a_partition_waits_for_its_revisions_to_match() -> None:
    assert statefulset_ready(_statefulset(partition=None, updated=3)) == "rolling update in progress"
    assert statefulset_ready(_statefulset(partition=0, updated=3, current_revision="web-2")) is None


def test_a_crd_whose_names_another_crd_holds_has_failed() -> None:
    crd = {"status": {"conditions": [{"type": "NamesAccepted", "status": "False", "reason": "PluralConflict",
                                      "message": '"widgets" is already in use'}]}}

    assert crd_ready(crd) == 'failed: names not accepted: "widgets" is already in use'


def _slice(service: str, *ready: bool) -> dict:
    return {"metadata": {"labels": {"kubernetes.io/service-name": service}},
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": r}} for r in ready]}


def test_a_service_is_ready_with_one_ready_endpoint_in_any_of_its_slices() -> None:
    assert service_problems([_slice("web", False), _slice("web", False, True)]) == {"web": ""}


def test_a_service_whose_endpoints_are_all_unready_is_not_ready() -> None:
    assert service_problems([_slice("web", False, False)]) == {"web": "none of its 2 endpoint(s) ready"}


def test_a_service_without_any_endpoint_is_ready_as_kstatus_has_it() -> None:
    assert service_problems([_slice("web")]) == {"web": ""}


def _class(name: str, mode: str, default: bool = False) -> dict:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": name, "annotations": annotations}, "volumeBindingMode": mode}


def _claim(class_name: str | None, selected_node: bool = False) -> dict:
    annotations = {"volume.kubernetes.io/selected-node": "node-1"} if selected_node else {}
    return {"metadata": {"name": "data", "annotations": annotations},
            "spec": {**({"storageClassName": class_name} if class_name is not None else {})},
            "status": {"phase": "Pending"}}


CLASSES = [_class("fast", "Immediate"), _class("local", "WaitForFirstConsumer", default=True)]


def test_a_pending_claim_of_a_wait_for_first_consumer_class_awaits_its_first_pod() -> None:
    assert awaits_first_consumer(_claim("local"), CLASSES)
    assert awaits_first_consumer(_claim(None), CLASSES)  # the default class


def test_a_pending_claim_that_a_pod_was_scheduled_with_or_of_an_immediate_class_is_still_provisioning() -> None:
    assert not awaits_first_consumer(_claim("local", selected_node=True), CLASSES)
    assert not awaits_first_consumer(_claim("fast"), CLASSES)
    assert not awaits_first_consumer(_claim("unknown"), CLASSES)


def _pod(phase: str, ready: bool = False, **status: object) -> dict:
    return {"status": {"phase": phase, "conditions": [{"type": "Ready", "status": str(ready)}], **status}}


def test_a_pod_that_ran_to_completion_is_done_and_a_running_ready_pod_is_ready() -> None:
    assert pod_ready(_pod("Succeeded")) is None
    assert pod_ready(_pod("Running", ready=True)) is None


def test_a_pod_that_failed_or_crash_loops_has_failed() -> None:
    assert pod_ready(_pod("Failed", reason="Evicted", message="low on memory")) == "failed: Evicted: low on memory"
    looping = _pod("Running", containerStatuses=[{"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}])
    assert pod_ready(looping) == "failed: containers in CrashLoopBackOff: app"


def test_a_pending_or_unready_pod_is_waited_for() -> None:
    assert pod_ready(_pod("Pending")) == "phase Pending, not Ready"
    assert pod_ready(_pod("Running")) == "phase Running, not Ready"
