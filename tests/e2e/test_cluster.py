"""End to end on a real cluster: install the chart, run a tiny CPU TrainingRun, wait for an accepted model.

Runs only with ``-m cluster`` and skips when ``KUBECONFIG`` (or the default
kubeconfig) reaches no API server. The images must be pullable by the
cluster (with kind: ``kind load docker-image``). Settings:

- ZEROLOOP_E2E_STAGE_IMAGE (default zeroloop:0.1.0) and
  ZEROLOOP_E2E_OPERATOR_IMAGE (default zeroloop-operator:0.1.0);
- ZEROLOOP_E2E_STORAGE_CLASS (default: the cluster's default class);
- ZEROLOOP_E2E_TIMEOUT seconds to wait for the first accepted model (3600).

It installs into a fresh namespace with namespaced RBAC, so it does not
disturb an operator already installed, and removes everything afterwards.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import pytest

import docs
import helmtool

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(7200)]


@pytest.fixture(scope="module")
def api():
    kubernetes = pytest.importorskip("kubernetes")
    try:
        kubernetes.config.load_kube_config()
        client = kubernetes.client.ApiClient()
        kubernetes.client.VersionApi(client).get_code(_request_timeout=5)
    except Exception as e:  # no kubeconfig, no server, no credentials
        pytest.skip(f"no reachable Kubernetes cluster: {e}")
    return client


def tiny_run() -> dict:
    for doc in docs.training_runs():
        if doc["metadata"]["name"] == "tiny":
            return doc
    raise AssertionError("the docs have no TrainingRun named tiny")


def default_storage_class(api) -> str:
    import kubernetes

    for sc in kubernetes.client.StorageV1Api(api).list_storage_class().items:
        annotations = sc.metadata.annotations or {}
        if annotations.get("storageclass.kubernetes.io/is-default-class") == "true":
            return sc.metadata.name
    pytest.skip("the cluster has no default StorageClass; set ZEROLOOP_E2E_STORAGE_CLASS")


def diagnostics(api, namespace: str) -> str:
    import kubernetes

    core = kubernetes.client.CoreV1Api(api)
    lines = []
    for pod in core.list_namespaced_pod(namespace).items:
        lines.append(f"pod {pod.metadata.name}: {pod.status.phase}")
        try:
            log = core.read_namespaced_pod_log(pod.metadata.name, namespace, tail_lines=15)
            lines += ["    " + line for line in log.splitlines()]
        except Exception as e:  # container not started yet
            lines.append(f"    (no log: {e})")
    return "\n".join(lines)


def test_tiny_cpu_run_reaches_an_accepted_model(api):
    import kubernetes

    helm = helmtool.helm_or_skip()
    namespace = f"zeroloop-e2e-{secrets.token_hex(3)}"
    stage_image = os.environ.get("ZEROLOOP_E2E_STAGE_IMAGE", "zeroloop:0.1.0")
    operator_image = os.environ.get("ZEROLOOP_E2E_OPERATOR_IMAGE", "zeroloop-operator:0.1.0")
    repo, _, tag = operator_image.rpartition(":")
    kubeconfig = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
    core = kubernetes.client.CoreV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        helmtool.run(helm, "install", "zeroloop-e2e", str(REPO / "charts" / "zeroloop"), "--namespace", namespace,
                     "--kubeconfig", kubeconfig, "--wait", "--timeout", "10m",
                     "--set", f"image.repository={repo}", "--set", f"image.tag={tag}",
                     "--set", "image.pullPolicy=IfNotPresent", "--set", "rbac.clusterWide=false",
                     "--set", "operator.statusInterval=5", timeout=900, cluster=True)
        run = tiny_run()
        run["metadata"]["namespace"] = namespace
        run["spec"]["image"] = stage_image
        run["spec"]["storage"]["storageClassName"] = (os.environ.get("ZEROLOOP_E2E_STORAGE_CLASS")
                                                      or default_storage_class(api))
        custom.create_namespaced_custom_object("zeroloop.io", "v1alpha1", namespace, "trainingruns", run)

        deadline = time.monotonic() + float(os.environ.get("ZEROLOOP_E2E_TIMEOUT", "3600"))
        status: dict = {}
        while time.monotonic() < deadline:
            obj = custom.get_namespaced_custom_object("zeroloop.io", "v1alpha1", namespace, "trainingruns", "tiny")
            status = obj.get("status") or {}
            progress = status.get("progress") or {}
            if progress.get("acceptedModels", 0) >= 1 or progress.get("latestModel"):
                break
            degraded = [c for c in status.get("conditions") or [] if c["type"] == "Degraded" and c["status"] == "True"]
            assert not degraded, degraded
            time.sleep(10)
        else:
            pytest.fail(f"no accepted model in time; status: {status}\n{diagnostics(api, namespace)}")
        assert status["phase"] == "Running", status
        assert status["selfplay"]["readyReplicas"] >= 1
        assert status["progress"]["games"] > 0 and status["progress"]["samples"] > 0
    finally:
        # The documented order: delete the run and wait until it is gone (the operator removes its
        # finalizer), then uninstall the chart.
        try:
            custom.delete_namespaced_custom_object("zeroloop.io", "v1alpha1", namespace, "trainingruns", "tiny")
            for _ in range(60):
                custom.get_namespaced_custom_object("zeroloop.io", "v1alpha1", namespace, "trainingruns", "tiny")
                time.sleep(2)
        except kubernetes.client.exceptions.ApiException:
            pass  # gone (404)
        helmtool.run(helm, "uninstall", "zeroloop-e2e", "--namespace", namespace, "--kubeconfig", kubeconfig,
                     check=False, cluster=True)
        core.delete_namespace(namespace)
