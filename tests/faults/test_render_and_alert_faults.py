"""A kustomize build that hangs (a remote base on a host that never answers) and an alert sink that
hangs: each is cut off after its timeout, says so, and holds nothing else up."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from daemon_support import http_receiver
from helpers import wait_for
from manifests import configmap, make_env, write_stack
from reconciler.config import load_environment
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.notify import Alert, AlertKind, AppriseSink, Notifier, apprise_url
from reconciler.retrying import RetryPolicy
from reconciler.pipeline.engine import Engine
from reconciler.results import StackState


@pytest.mark.cluster
def test_a_hanging_kustomize_build_fails_its_stack_after_the_render_timeout_and_independent_stacks_apply(
        tmp_path: Path, repo, namespace: str, kubeconfig: Path, api_client: client.ApiClient,
        silent_host: int) -> None:
    write_stack(repo, "fine", [configmap("fine", namespace, {"v": "1"})])
    repo.write("stacks/hung/kustomization.yaml", {"resources": [f"http://127.0.0.1:{silent_host}/objects.yaml"]})
    repo.commit("one stack with a remote base on a host that never answers")
    env_file = make_env(tmp_path, repo, namespace, [{"name": "fine", "path": "stacks/fine"},
                                                    {"name": "hung", "path": "stacks/hung"}], renderTimeout="2s")

    result = Engine(load_environment(env_file), cache_dir=tmp_path / "cache", kubeconfig=kubeconfig).sync()

    states = {s.stack: s for s in result.stacks}
    assert states["hung"].state is StackState.FAILED
    assert "did not finish within 2s" in states["hung"].reason
    assert states["fine"].state is StackState.APPLIED
    assert client.CoreV1Api(api_client).read_namespaced_config_map("fine", namespace).data == {"v": "1"}


def test_an_alert_sink_that_never_answers_holds_up_no_other_sink_and_its_failure_is_counted(silent_host: int) -> None:
    metrics = Metrics()
    alert = Alert(kind=AlertKind.SYNC_FAILED, env="prod", stack="data", severity="critical", title="sync failed",
                  message="timeout")
    with http_receiver() as good:
        hung = AppriseSink(f"json://127.0.0.1:{silent_host}/alerts?cto=1&rto=1", name="hung")  # 1 s timeouts
        notifier = Notifier([hung, AppriseSink(apprise_url(good.url), name="good")], metrics,
                            retry=RetryPolicy(attempts=2, base_delay_s=0.05))

        notifier.publish([alert], [])

        wait_for(lambda: good.bodies, timeout_s=5, what="delivery to the working sink")
        assert notifier.flush(30)
        notifier.close()
    assert metrics.registry.get_sample_value("reconciler_alert_delivery_failures_total", {"sink": "hung"}) == 2
