"""The operator against a mock API server (kmock, stamping uids and versions).

The real handlers run in kopf inside the test's event loop, with short
intervals. Each test creates a TrainingRun the way the API server would
store it (CRD defaults applied) and checks what the operator made of it.
"""

from __future__ import annotations

import asyncio
import copy
import http.server
import threading
import time

import kopf
import kubernetes.config.kube_config
import pytest

import crd_rules
from kube_emulator import PATIENCE, TRAININGRUNS, StampingEmulator, declare_resources, kubeconfig_text, wait_for
from zeroloop_operator.config import OperatorConfig
from zeroloop_operator.handlers import register

NS = "runs"
DEPLOYMENTS = "apps/v1/deployments"
PVCS = "v1/persistentvolumeclaims"
CONFIGMAPS = "v1/configmaps"
SERVICES = "v1/services"
EVENTS = "v1/events"
COMPONENTS = ("selfplay", "shuffler", "trainer", "gatekeeper")

# A test's bound: several waits, each bounded by PATIENCE; a passing test takes seconds.
pytestmark = [pytest.mark.kmock(cls=StampingEmulator), pytest.mark.timeout(4 * PATIENCE)]


def run_object(name: str = "demo", **spec) -> dict:
    """A TrainingRun as the API server stores it: defaults applied, schema and CEL checked."""
    obj = {
        "apiVersion": "zeroloop.io/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"image": "registry.example/zeroloop:test",
                 "storage": {"storageClassName": "standard-rwx"}, **spec},
    }
    defaulted, errors = crd_rules.admit(obj)
    assert not errors, errors
    return defaulted


@pytest.fixture
async def operator(kmock, tmp_path, monkeypatch):
    """kopf running zeroloop's handlers against kmock; yields the kmock server."""
    declare_resources(kmock)
    config_path = tmp_path / "kubeconfig"
    config_path.write_text(kubeconfig_text(str(kmock.url)))
    monkeypatch.setenv("KUBECONFIG", str(config_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(config_path))
    registry = kopf.OperatorRegistry()
    register(registry, OperatorConfig(status_interval=0.3, retry_delay=0.2, conflict_delay=0.3,
                                      api_timeout=5, scrape_timeout=1, workers=4))
    settings = kopf.OperatorSettings()
    settings.networking.error_backoffs = [0.05, 0.1, 0.2]
    settings.posting.default_backoffs = [0.05, 0.1]
    settings.queueing.error_delays = [0.1, 0.2, 0.5]
    settings.scanning.disabled = True
    # kopf cancels every task started after it in its loop when it stops, so it gets its own thread.
    stop = threading.Event()
    thread = threading.Thread(target=asyncio.run, name="kopf", daemon=True, args=(
        kopf.operator(registry=registry, settings=settings, clusterwide=True, standalone=True, stop_flag=stop),))
    thread.start()
    yield kmock
    await settle(kmock)
    await stop_operator(stop, thread, settings)


async def stop_operator(stop: threading.Event, thread: threading.Thread, settings: kopf.OperatorSettings) -> None:
    """Stop kopf and wait for the handlers it ran in threads: kopf leaves a timer round that outlasts its exit
    wait running (no thread can be cancelled), and a round that logs after the test has ended writes to closed
    streams. The API server stays up meanwhile, so the round ends as it would in a cluster."""
    loop = asyncio.get_running_loop()
    stop.set()
    await loop.run_in_executor(None, thread.join, PATIENCE)
    assert not thread.is_alive(), "the operator did not stop"
    finished = loop.run_in_executor(None, settings.execution.executor.shutdown, True)
    await asyncio.wait_for(finished, PATIENCE)  # a round is bounded by its timeouts (and stops at the write)


async def settle(kmock) -> None:
    """Let in-flight reconciles finish (stopping kopf mid-handler makes it wait for hung tasks)."""
    def settled():
        runs = [o.raw for k, o in kmock.objects.items() if k[0].plural == "trainingruns" and not o.deleted]
        return all((r.get("status") or {}).get("observedGeneration") == r["metadata"].get("generation")
                   for r in runs)
    try:
        await wait_for(settled, timeout=PATIENCE / 2, what="settled")
    except AssertionError:
        pass


async def create(kmock, obj: dict) -> dict:
    resp = await kmock.post(f"/apis/zeroloop.io/v1alpha1/namespaces/{NS}/trainingruns", json=obj)
    assert resp.status == 201 or resp.status == 200, await resp.text()
    return await resp.json()


async def patch(kmock, path: str, body) -> dict:
    resp = await kmock.patch(path, json=body, headers={"Content-Type": "application/merge-patch+json"})
    assert resp.status == 200, await resp.text()
    return await resp.json()


def run_path(name: str = "demo") -> str:
    return f"/apis/zeroloop.io/v1alpha1/namespaces/{NS}/trainingruns/{name}"


async def timer_rounds(kmock, rounds: int = 3, name: str = "demo") -> None:
    """Wait until the refresh timer has run rounds more times: what a sleep cannot promise on a loaded machine.

    Each round begins by reading the run (nothing else GETs it: kopf watches), so rounds + 1 reads from now
    are at least rounds whole rounds.
    """
    def reads():
        return len(list(kmock["get", run_path(name)]))

    start = reads()
    await wait_for(lambda: reads() >= start + rounds + 1, what=f"{rounds} rounds of the refresh timer")


def obj(kmock, resource: str, name: str) -> dict | None:
    try:
        found = kmock.objects[resource, NS, name]
    except KeyError:
        return None
    return None if found.deleted else found.raw


def container(dep: dict) -> dict:
    return dep["spec"]["template"]["spec"]["containers"][0]


def run_status(kmock, name: str = "demo") -> dict:
    return (obj(kmock, TRAININGRUNS, name) or {}).get("status") or {}


def condition(kmock, type_: str, name: str = "demo") -> dict | None:
    return next((c for c in run_status(kmock, name).get("conditions") or [] if c["type"] == type_), None)


async def all_children(kmock, name: str = "demo", components=COMPONENTS):
    await wait_for(lambda: all(obj(kmock, DEPLOYMENTS, f"{name}-{c}") for c in components)
                   and obj(kmock, CONFIGMAPS, f"{name}-config"), what="children")


async def test_create_makes_exactly_the_expected_children(operator):
    kmock = operator
    created = await create(kmock, run_object(selfplay={"replicas": 3, "gpusPerPod": 2}))
    uid = created["metadata"]["uid"]
    await all_children(kmock)
    await wait_for(lambda: obj(kmock, SERVICES, "demo-gatekeeper-metrics"), what="services")

    children = {(k[0].plural, k[2]) for k, o in kmock.objects.items()
                if not o.deleted and k[0].plural not in ("events", "trainingruns")}
    expected = {("persistentvolumeclaims", "demo-data"), ("configmaps", "demo-config")}
    expected |= {("deployments", f"demo-{c}") for c in COMPONENTS}
    expected |= {("services", f"demo-{c}-metrics") for c in COMPONENTS}
    assert children == expected

    for component in COMPONENTS:
        dep = obj(kmock, DEPLOYMENTS, f"demo-{component}")
        refs = dep["metadata"]["ownerReferences"]
        assert refs == [{"apiVersion": "zeroloop.io/v1alpha1", "kind": "TrainingRun", "name": "demo",
                         "uid": uid, "controller": True, "blockOwnerDeletion": True}]
        pod = dep["spec"]["template"]["spec"]
        assert pod["volumes"][0] == {"name": "data", "persistentVolumeClaim": {"claimName": "demo-data"}}
    selfplay = obj(kmock, DEPLOYMENTS, "demo-selfplay")
    assert selfplay["spec"]["replicas"] == 3
    assert container(selfplay)["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container(obj(kmock, DEPLOYMENTS, "demo-trainer"))["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in container(obj(kmock, DEPLOYMENTS, "demo-shuffler"))["resources"].get(
        "limits", {})
    assert obj(kmock, DEPLOYMENTS, "demo-trainer")["spec"]["strategy"] == {"type": "Recreate"}

    pvc = obj(kmock, PVCS, "demo-data")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["storageClassName"] == "standard-rwx"
    assert "ownerReferences" not in pvc["metadata"], "Retain: the claim must outlive the run"
    assert obj(kmock, CONFIGMAPS, "demo-config")["metadata"]["ownerReferences"][0]["uid"] == uid

    status = await wait_for(lambda: run_status(kmock).get("observedGeneration") == 1 and run_status(kmock),
                            what="status")
    assert status["selfplay"]["selector"] == "app.kubernetes.io/component=selfplay,zeroloop.io/run=demo"
    assert status["selfplay"]["desiredReplicas"] == 3
    assert status["phase"] == "Pending"
    assert status["observedGeneration"] == 1


async def test_status_follows_the_deployments(operator):
    kmock = operator
    await create(kmock, run_object())
    await all_children(kmock)
    assert condition(kmock, "Ready") is None or condition(kmock, "Ready")["status"] == "False"
    # The emulator has no controllers: play the Deployment controller and the PVC binder.
    for component in COMPONENTS:
        kmock.objects[DEPLOYMENTS, NS, f"demo-{component}"].patch(
            {"status": {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "observedGeneration": 1}})
    kmock.objects[PVCS, NS, "demo-data"].patch({"status": {"phase": "Bound"}})
    await wait_for(lambda: run_status(kmock).get("phase") == "Running", what="phase Running")
    assert condition(kmock, "Ready")["status"] == "True"
    assert condition(kmock, "StorageReady")["status"] == "True"
    assert condition(kmock, "Progressing")["status"] == "False"
    assert run_status(kmock)["selfplay"]["ready"] == "1/1"


def play_controllers(kmock, name: str = "demo", pods: dict[str, int] | None = None) -> None:
    """Stand in for the Deployment controller: report pods (all ready) per component."""
    for component in COMPONENTS:
        dep = obj(kmock, DEPLOYMENTS, f"{name}-{component}")
        if dep is None:
            continue
        n = dep["spec"]["replicas"] if pods is None else pods.get(component, 0)
        kmock.objects[DEPLOYMENTS, NS, f"{name}-{component}"].patch({"status": {
            "replicas": n, "readyReplicas": n, "updatedReplicas": n,
            "observedGeneration": dep["metadata"]["generation"]}})


async def test_spec_update_patches_the_children(operator):
    kmock = operator
    await create(kmock, run_object(trainer={"nodeSelector": {"pool": "a100"}}))
    await all_children(kmock)
    before = obj(kmock, DEPLOYMENTS, "demo-selfplay")["spec"]["template"]["metadata"]["annotations"]
    trainer_before = obj(kmock, DEPLOYMENTS, "demo-trainer")["spec"]["template"]["metadata"]["annotations"]
    await patch(kmock, run_path(), {"spec": {
        "image": "registry.example/zeroloop:v2",
        "selfplay": {"visits": 800},
        "trainer": {"nodeSelector": None, "lrScale": 0.5},
    }})
    await wait_for(lambda: container(obj(kmock, DEPLOYMENTS, "demo-trainer"))["image"].endswith(":v2"),
                   what="the new image")
    for component in COMPONENTS:
        await wait_for(lambda: container(obj(kmock, DEPLOYMENTS, f"demo-{component}"))["image"].endswith(":v2"),
                       what=f"{component} image")
    assert "max_visits: 800" in obj(kmock, CONFIGMAPS, "demo-config")["data"]["selfplay.yaml"]
    after = obj(kmock, DEPLOYMENTS, "demo-selfplay")["spec"]["template"]["metadata"]["annotations"]
    assert after["zeroloop.io/config-checksum"] != before["zeroloop.io/config-checksum"], "self-play must roll"
    trainer = obj(kmock, DEPLOYMENTS, "demo-trainer")
    assert "nodeSelector" not in trainer["spec"]["template"]["spec"], "a removed field must be removed"
    args = container(trainer)["args"]
    assert args[args.index("--lr-scale") + 1] == "0.5"
    assert trainer["spec"]["template"]["metadata"]["annotations"] == trainer_before, \
        "the trainer reads no config file: a self-play config change must not restart it"
    await wait_for(lambda: run_status(kmock).get("observedGeneration") == 2, what="observedGeneration 2")


async def test_scale_subresource_changes_selfplay_replicas(operator):
    kmock = operator
    await create(kmock, run_object())
    await all_children(kmock)
    # `kubectl scale --replicas 5` writes .spec.selfplay.replicas (the CRD's specReplicasPath).
    await patch(kmock, run_path(), {"spec": {"selfplay": {"replicas": 5}}})
    await wait_for(lambda: obj(kmock, DEPLOYMENTS, "demo-selfplay")["spec"]["replicas"] == 5, what="5 replicas")
    play_controllers(kmock)
    status = await wait_for(lambda: run_status(kmock).get("selfplay", {}).get("replicas") == 5 and run_status(kmock),
                            what="status replicas")
    assert status["selfplay"]["ready"] == "5/5"
    assert obj(kmock, DEPLOYMENTS, "demo-trainer")["spec"]["replicas"] == 1


async def test_suspend_scales_to_zero_keeps_the_claim_and_resume_restores(operator):
    kmock = operator
    await create(kmock, run_object(selfplay={"replicas": 2}))
    await all_children(kmock)
    play_controllers(kmock)
    await patch(kmock, run_path(), {"spec": {"suspend": True}})
    for component in COMPONENTS:
        await wait_for(lambda: obj(kmock, DEPLOYMENTS, f"demo-{component}")["spec"]["replicas"] == 0,
                       what=f"{component} at zero")
    assert obj(kmock, PVCS, "demo-data") is not None
    await wait_for(lambda: run_status(kmock).get("phase") == "Suspending", what="Suspending")
    assert condition(kmock, "Suspended")["reason"] == "Suspending"
    play_controllers(kmock)  # the pods are gone
    await wait_for(lambda: run_status(kmock).get("phase") == "Suspended", what="Suspended")
    assert condition(kmock, "Suspended")["status"] == "True"
    await patch(kmock, run_path(), {"spec": {"suspend": False}})
    await wait_for(lambda: obj(kmock, DEPLOYMENTS, "demo-selfplay")["spec"]["replicas"] == 2
                   and obj(kmock, DEPLOYMENTS, "demo-gatekeeper")["spec"]["replicas"] == 1, what="resumed")


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
async def test_delete_cleans_up_and_keeps_only_a_retained_claim(operator, policy):
    kmock = operator
    await create(kmock, run_object(storage={"storageClassName": "standard-rwx", "deletionPolicy": policy}))
    await all_children(kmock)
    await wait_for(lambda: "zeroloop.io/finalizer" in obj(kmock, TRAININGRUNS, "demo")["metadata"].get(
        "finalizers", []), what="the finalizer")
    resp = await kmock.delete(run_path())
    assert resp.status == 200
    await wait_for(lambda: obj(kmock, TRAININGRUNS, "demo") is None, what="the run gone")
    await wait_for(lambda: obj(kmock, DEPLOYMENTS, "demo-selfplay") is None, what="garbage collection")
    assert obj(kmock, CONFIGMAPS, "demo-config") is None
    assert obj(kmock, SERVICES, "demo-trainer-metrics") is None
    assert (obj(kmock, PVCS, "demo-data") is not None) == (policy == "Retain")


async def test_a_new_run_reuses_a_retained_claim(operator):
    kmock = operator
    await create(kmock, run_object())
    await all_children(kmock)
    await kmock.delete(run_path())
    await wait_for(lambda: obj(kmock, DEPLOYMENTS, "demo-trainer") is None, what="garbage collection")
    second = await create(kmock, run_object(storage={"storageClassName": "standard-rwx",
                                                     "deletionPolicy": "Delete"}))
    await wait_for(lambda: obj(kmock, PVCS, "demo-data")["metadata"].get("ownerReferences"),
                   what="the claim adopted")
    assert obj(kmock, PVCS, "demo-data")["metadata"]["ownerReferences"][0]["uid"] == second["metadata"]["uid"]


def warning_events(kmock, reason: str) -> list[dict]:
    return [o.raw for k, o in kmock.objects.items() if k[0].plural == "events" and not o.deleted
            and o.raw.get("reason") == reason]


async def test_invalid_spec_gives_degraded_and_an_event_and_recovers(operator):
    kmock = operator
    bad = run_object(trainer={"resources": {"requests": {"cpu": "8"}, "limits": {"cpu": "4"}}})
    await create(kmock, bad)
    degraded = await wait_for(lambda: condition(kmock, "Degraded"), what="Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "InvalidSpec"
    assert "spec.trainer.resources: the cpu request 8 exceeds its limit 4" in degraded["message"]
    assert run_status(kmock)["phase"] == "Degraded"
    events = await wait_for(lambda: warning_events(kmock, "InvalidSpec"), what="an event")
    assert events[0]["type"] == "Warning" and "exceeds its limit" in events[0]["message"]
    assert events[0]["involvedObject"]["name"] == "demo"
    await timer_rounds(kmock)  # still nothing made, no retry storm
    assert obj(kmock, DEPLOYMENTS, "demo-trainer") is None
    assert len(warning_events(kmock, "InvalidSpec")) == 1
    await patch(kmock, run_path(), {"spec": {"trainer": {"resources": {"requests": {"cpu": "2"}}}}})
    await all_children(kmock)
    await wait_for(lambda: condition(kmock, "Degraded")["status"] == "False", what="Degraded cleared")


def children_now(kmock) -> dict:
    """Every child object as stored now (resourceVersion included): what a refused spec must leave alone."""
    return {k[0].plural + "/" + k[2]: copy.deepcopy(o.raw) for k, o in kmock.objects.items()
            if not o.deleted and k[0].plural not in ("events", "trainingruns")}


async def test_a_selfplay_config_selfplay_would_refuse_changes_nothing_running(operator):
    """An unknown key or a bad value in spec.selfplay.config: Degraded and a Warning naming it, every child as it
    was (no pod restarted into a crash loop), also through the timer's rounds; a good spec goes on from there."""
    kmock = operator
    await create(kmock, run_object(selfplay={"config": {"cpuct": 1.5}}))
    await all_children(kmock)
    await wait_for(lambda: run_status(kmock).get("observedGeneration") == 1, what="generation 1 reconciled")
    before = children_now(kmock)
    await patch(kmock, run_path(), {"spec": {"selfplay": {"replicas": 3, "config": {
        "cpuct": 1.8, "max_visit": 5, "dirichlet_weight": 2}}}})
    degraded = await wait_for(lambda: (c := condition(kmock, "Degraded")) and c["status"] == "True" and c,
                              what="Degraded")
    assert degraded["reason"] == "InvalidSpec" and run_status(kmock)["observedGeneration"] == 2
    assert "spec.selfplay.config: unknown key max_visit (did you mean max_visits?" in degraded["message"]
    assert "spec.selfplay.config: dirichlet_weight = 2.0 is above the maximum 1.0" in degraded["message"]
    (event,) = await wait_for(lambda: warning_events(kmock, "InvalidSpec"), what="a Warning event")
    assert "unknown key max_visit" in event["message"] and event["involvedObject"]["name"] == "demo"
    await timer_rounds(kmock)
    assert children_now(kmock) == before
    assert condition(kmock, "Degraded")["status"] == "True" and len(warning_events(kmock, "InvalidSpec")) == 1
    await patch(kmock, run_path(), {"spec": {"selfplay": {"config": {"max_visit": None, "dirichlet_weight": 0.5}}}})
    await wait_for(lambda: obj(kmock, DEPLOYMENTS, "demo-selfplay")["spec"]["replicas"] == 3, what="3 replicas")
    await wait_for(lambda: condition(kmock, "Degraded")["status"] == "False", what="Degraded cleared")
    selfplay_yaml = obj(kmock, CONFIGMAPS, "demo-config")["data"]["selfplay.yaml"]
    assert "cpuct: 1.8" in selfplay_yaml and "dirichlet_weight: 0.5" in selfplay_yaml


async def test_converges_despite_api_errors(operator):
    kmock = operator
    deployments = f"/apis/apps/v1/namespaces/{NS}/deployments"
    # The first creates fail with 500 (the emulator still stores the object, as a server whose
    # answer was lost would), patches hit 409 conflicts, reads fail, and kopf's own patches fail.
    kmock["post", deployments][:3] << 500
    kmock["patch", f"{deployments}/demo-selfplay"][:2] << 409
    kmock["get", f"/api/v1/namespaces/{NS}/persistentvolumeclaims/demo-data"][:2] << 500
    kmock["patch", run_path() + "/status"][:2] << 500
    await create(kmock, run_object(selfplay={"replicas": 4}))
    await all_children(kmock)
    await wait_for(lambda: run_status(kmock).get("observedGeneration") == 1, what="status written")
    await wait_for(lambda: obj(kmock, DEPLOYMENTS, "demo-selfplay")["spec"]["replicas"] == 4, what="replicas")
    for component in COMPONENTS:
        dep = obj(kmock, DEPLOYMENTS, f"demo-{component}")
        assert dep["metadata"]["ownerReferences"][0]["name"] == "demo"
        assert container(dep)["image"] == "registry.example/zeroloop:test"
    assert len(list(kmock["post", deployments])) > 4, "the injected errors must have been met"
    assert len(list(kmock["patch", f"{deployments}/demo-selfplay"])) > 2
    # A later update still goes through.
    await patch(kmock, run_path(), {"spec": {"selfplay": {"replicas": 6}}})
    await wait_for(lambda: obj(kmock, DEPLOYMENTS, "demo-selfplay")["spec"]["replicas"] == 6, what="update")


class MetricsServers:
    """Plain HTTP servers on loopback addresses 127.0.0.N, one per fake pod, same port."""

    def __init__(self, ips: list[str]):
        self.texts: dict[str, str] = {ip: "" for ip in ips}
        self.servers = []
        port = 0
        for ip in ips:
            server = http.server.ThreadingHTTPServer((ip, port), self._handler(ip))
            port = server.server_address[1]
            self.servers.append(server)
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self.port = port

    def _handler(self, ip: str):
        texts = self.texts

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if texts[ip] is None:  # a pod that cannot be read (as if blocked)
                    self.send_response(503)
                    self.end_headers()
                    return
                body = texts[ip].encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler

    def close(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()


def exposition(**values) -> str:
    """Metrics text as a stage's prometheus_client would serve it."""
    import prometheus_client as prom

    registry = prom.CollectorRegistry()
    if "games" in values:
        prom.Counter("zeroloop_selfplay_games", "h", registry=registry).inc(values["games"])
    if "model" in values:
        prom.Info("zeroloop_selfplay_model", "h", registry=registry).info({"name": values["model"]})
    if "samples" in values:
        prom.Counter("zeroloop_train_samples", "h", registry=registry).inc(values["samples"])
        prom.Gauge("zeroloop_train_data_rows", "h", registry=registry).set(values["train_rows"])
    if "rows" in values:
        prom.Gauge("zeroloop_shuffle_data_rows", "h", registry=registry).set(values["rows"])
    if "accepted" in values:
        prom.Counter("zeroloop_gatekeeper_models_accepted", "h", registry=registry).inc(values["accepted"])
        prom.Counter("zeroloop_gatekeeper_models_rejected", "h", registry=registry).inc(values["rejected"])
        prom.Gauge("zeroloop_gatekeeper_candidate_win_rate", "h", registry=registry).set(values["win_rate"])
    return prom.generate_latest(registry).decode()


def add_pod(kmock, name: str, run: str, component: str, ip: str) -> None:
    kmock.objects["v1/pods", NS, name] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "uid": name,
                     "labels": {"zeroloop.io/run": run, "app.kubernetes.io/component": component}},
        "status": {"phase": "Running", "podIP": ip},
    }


async def test_progress_comes_from_the_pods_metrics(operator):
    kmock = operator
    ips = [f"127.0.0.{n}" for n in range(2, 8)]
    servers = MetricsServers(ips)
    try:
        await create(kmock, run_object(metrics={"port": servers.port}))
        await all_children(kmock)
        texts = servers.texts
        texts["127.0.0.2"] = exposition(games=10, model="demo-b6c96-s2000-d900")
        texts["127.0.0.3"] = exposition(games=5, model="demo-b6c96-s1000-d500")
        texts["127.0.0.4"] = exposition(samples=2500, train_rows=950)
        texts["127.0.0.5"] = exposition(rows=1000)
        texts["127.0.0.6"] = exposition(accepted=1, rejected=0, win_rate=0.56)
        texts["127.0.0.7"] = exposition(games=1000)  # another run's pod
        add_pod(kmock, "demo-selfplay-a", "demo", "selfplay", "127.0.0.2")
        add_pod(kmock, "demo-selfplay-b", "demo", "selfplay", "127.0.0.3")
        add_pod(kmock, "demo-trainer-a", "demo", "trainer", "127.0.0.4")
        add_pod(kmock, "demo-shuffler-a", "demo", "shuffler", "127.0.0.5")
        add_pod(kmock, "demo-gatekeeper-a", "demo", "gatekeeper", "127.0.0.6")
        add_pod(kmock, "other-selfplay-a", "other", "selfplay", "127.0.0.7")

        def progress():
            return run_status(kmock).get("progress") or {}

        await wait_for(lambda: progress().get("games") == 15, what="15 games")
        p = progress()
        assert p["latestModel"] == "demo-b6c96-s2000-d900"
        assert p["samples"] == 2500 and p["rows"] == 1000
        assert p["acceptedModels"] == 1 and p["lastGating"]["result"] == "accepted"
        assert p["lastGating"]["winRate"] == 0.56

        # selfplay-a restarts (its counter starts again) and plays 2 games; b plays 3 more.
        texts["127.0.0.2"] = exposition(games=2, model="demo-b6c96-s3000-d1200")
        texts["127.0.0.3"] = exposition(games=8, model="demo-b6c96-s3000-d1200")
        texts["127.0.0.6"] = exposition(accepted=1, rejected=1, win_rate=0.41)
        await wait_for(lambda: progress().get("games") == 20, what="20 games")
        await wait_for(lambda: progress().get("rejectedModels") == 1, what="a rejection")
        assert progress()["latestModel"] == "demo-b6c96-s3000-d1200"
        assert progress()["lastGating"]["result"] == "rejected"
        await timer_rounds(kmock)  # more rounds with the same counters add nothing
        assert progress()["games"] == 20 and progress()["acceptedModels"] == 1

        # A pod that goes away is forgotten; its games stay counted.
        del kmock.objects["v1/pods", NS, "demo-selfplay-a"]
        await wait_for(lambda: len([p for p in progress()["pods"] if p["component"] == "selfplay"]) == 1,
                       what="pod forgotten")
        assert progress()["games"] == 20
    finally:
        servers.close()


async def test_every_status_field_written_is_declared_in_the_crd(operator):
    """A real API server drops undeclared status fields: everything written must be in the schema."""
    kmock = operator
    await create(kmock, run_object())
    await all_children(kmock)
    play_controllers(kmock)
    await create(kmock, run_object("broken", trainer={"resources": {"limits": {"nvidia.com/gpu": "1"}}}))
    await wait_for(lambda: condition(kmock, "Degraded", "broken"), what="Degraded")
    await wait_for(lambda: run_status(kmock).get("progress"), what="progress")
    status_schema = crd_rules.version_schema(crd_rules.load_crd())["properties"]["status"]
    def status_patches():  # merge patches (kopf's, for reconcile) and JSON patches (the timer's), as merge bodies
        out = []
        for r in kmock["patch"]:
            if r.subresource == "status" and isinstance(r.data, dict):
                out.append(r.data)
            elif r.subresource == "status" and isinstance(r.data, list):
                set_ = [op for op in r.data if op["op"] == "add" and op["path"].startswith("/status/")]
                assert all(op["op"] == "test" or op in set_ or op["path"] in ("/status", "/metadata/resourceVersion")
                           or op["op"] == "remove" for op in r.data), r.data
                out.append({"status": {op["path"].split("/")[2]: op["value"] for op in set_}})
        return out

    def seen_all_kinds():
        bodies = [p.get("status", {}) for p in status_patches()]
        return (any("progress" in b for b in bodies) and any("observedGeneration" in b for b in bodies)
                and any(c.get("reason") == "InvalidSpec" for b in bodies for c in b.get("conditions", [])))

    await wait_for(seen_all_kinds, what="status patches from reconcile, the timer and an invalid spec")
    patches = status_patches()
    for body in patches:
        assert set(body) <= {"status", "metadata"}, body
        assert crd_rules.schema_errors(status_schema, body["status"]) == [], body["status"]
    # kopf's bookkeeping stays in zeroloop.io annotations (no status.kopf, no kopf.zalando.org keys).
    for name in ("demo", "broken"):
        meta = obj(kmock, TRAININGRUNS, name)["metadata"]
        assert not [k for k in meta.get("annotations", {}) if "kopf.zalando.org" in k]
        assert "kopf" not in obj(kmock, TRAININGRUNS, name).get("status", {})


def rbac_verb(request) -> str:
    method = getattr(request.method, "value", str(request.method)).upper()
    if method == "GET":
        if request.params.get("watch") == "true":
            return "watch"
        return "get" if request.name else "list"
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[method]


def allowed(rules: list[dict], group: str, resource: str, verb: str) -> bool:
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)


async def test_rbac_grants_exactly_what_the_operator_uses(operator):
    """Every request the operator sends is allowed by the chart's ClusterRole, and every rule is used."""
    import helmtool
    import yaml
    from test_chart import CHART

    helm = helmtool.helm_or_skip()
    rendered = helmtool.run(helm, "template", "zl", str(CHART), "--show-only", "templates/rbac.yaml").stdout
    role = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ClusterRole")
    rules = role["rules"]

    kmock = operator
    servers = MetricsServers(["127.0.0.2"])
    try:
        servers.texts["127.0.0.2"] = exposition(games=1, model="demo-b6c96-s1-d1")
        await create(kmock, run_object(metrics={"port": servers.port}))
        await all_children(kmock)
        add_pod(kmock, "demo-selfplay-a", "demo", "selfplay", "127.0.0.2")
        await wait_for(lambda: (run_status(kmock).get("progress") or {}).get("games") == 1, what="progress")
        await patch(kmock, run_path(), {"spec": {"gatekeeper": {"enabled": False}}})
        await wait_for(lambda: obj(kmock, DEPLOYMENTS, "demo-gatekeeper") is None, what="gatekeeper deleted")
        await create(kmock, run_object("broken", trainer={"resources": {"limits": {"nvidia.com/gpu": "2"}}}))
        await wait_for(lambda: warning_events(kmock, "InvalidSpec"), what="an event")
        await kmock.delete(run_path())
        await wait_for(lambda: obj(kmock, TRAININGRUNS, "demo") is None, what="deleted")
    finally:
        servers.close()

    used = set()
    for request in kmock:
        agent = request.headers.get("User-Agent", "")
        if request.resource is None or request.resource.plural is None or agent.startswith("kmock/"):
            continue  # the test's own requests, and API discovery (allowed to every user)
        resource = request.resource.plural + (f"/{request.subresource}" if request.subresource else "")
        used.add((request.resource.group, resource, rbac_verb(request)))
    for group, resource, verb in sorted(used):
        assert allowed(rules, group, resource, verb), f"RBAC lacks {verb} on {group}/{resource}"
    granted = {(g, res, v) for r in rules for g in r["apiGroups"] for res in r["resources"] for v in r["verbs"]}
    unused = {g for g in granted if g not in used}
    # Granted but not seen here: finalizer updates (needed where OwnerReferencesPermissionEnforcement
    # is on), events.k8s.io (newer event API), and status get (kubectl/clients reading it).
    assert unused <= {("zeroloop.io", "trainingruns/finalizers", "update"), ("events.k8s.io", "events", "create"),
                      ("zeroloop.io", "trainingruns/status", "get")}, unused


async def test_a_child_name_owned_by_someone_else_is_not_taken_over(operator):
    kmock = operator
    foreign = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "demo-config", "namespace": NS, "uid": "other-uid",
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "x",
                                                 "uid": "other-owner", "controller": True}]},
               "data": {"theirs": "yes"}}
    kmock.objects[CONFIGMAPS, NS, "demo-config"] = foreign
    await create(kmock, run_object())
    degraded = await wait_for(lambda: (c := condition(kmock, "Degraded")) and c["status"] == "True" and c,
                              what="Degraded")
    assert degraded["reason"] == "ChildConflict" and "ConfigMap demo-config exists" in degraded["message"]
    assert obj(kmock, CONFIGMAPS, "demo-config")["data"] == {"theirs": "yes"}
    await wait_for(lambda: warning_events(kmock, "ChildConflict"), what="an event")
    del kmock.objects[CONFIGMAPS, NS, "demo-config"]
    await wait_for(lambda: "selfplay.yaml" in (obj(kmock, CONFIGMAPS, "demo-config") or {}).get("data", {}),
                   what="the run's own ConfigMap")
    await all_children(kmock)
    await wait_for(lambda: condition(kmock, "Degraded")["status"] == "False", what="Degraded cleared")


async def test_unreadable_metrics_set_a_condition_until_they_can_be_read(operator):
    kmock = operator
    # b answers 503 (an address where nothing listens could be any other process's port on a shared machine).
    servers = MetricsServers(["127.0.0.2", "127.0.0.9"])
    try:
        await create(kmock, run_object(metrics={"port": servers.port}))
        await all_children(kmock)
        servers.texts["127.0.0.2"] = exposition(games=4, model="demo-b6c96-s1-d1")
        servers.texts["127.0.0.9"] = None
        add_pod(kmock, "demo-selfplay-a", "demo", "selfplay", "127.0.0.2")
        add_pod(kmock, "demo-selfplay-b", "demo", "selfplay", "127.0.0.9")
        # Under load a's answer may come after the per-pod timeout (1 s) in some round: wait for a round it made.
        blocked = await wait_for(lambda: (c := condition(kmock, "MetricsReadable")) and c["status"] == "False"
                                 and "demo-selfplay-a" not in c["message"] and c, what="only b unreadable")
        assert blocked["reason"] == "ScrapeFailed" and "demo-selfplay-b" in blocked["message"]
        await wait_for(lambda: (run_status(kmock).get("progress") or {}).get("games") == 4,
                       what="readable pods still count")
        # A spec change reconciles and rewrites the conditions: this one stays until a scrape says otherwise.
        await patch(kmock, run_path(), {"spec": {"selfplay": {"visits": 700}}})
        await wait_for(lambda: run_status(kmock).get("observedGeneration") == 2, what="reconciled")
        assert condition(kmock, "MetricsReadable")["status"] == "False"
        del kmock.objects["v1/pods", NS, "demo-selfplay-b"]
        await wait_for(lambda: condition(kmock, "MetricsReadable")["status"] == "True", what="readable again")
    finally:
        servers.close()


def stored_without_admission(name: str, **spec) -> dict:
    """A run as an older CRD (without today's rules) let the API server store it: defaults applied only."""
    obj = {"apiVersion": "zeroloop.io/v1alpha1", "kind": "TrainingRun", "metadata": {"name": name, "namespace": NS},
           "spec": {"image": "registry.example/zeroloop:test", "storage": {"storageClassName": "standard-rwx"},
                    **spec}}
    return crd_rules.apply_defaults(crd_rules.version_schema(crd_rules.load_crd()), obj)


def children_of(kmock, run: str) -> list[tuple[str, str]]:
    return sorted((k[0].plural, k[2]) for k, o in kmock.objects.items()
                  if not o.deleted and k[0].plural not in ("events", "trainingruns") and k[2].startswith(run))


async def test_a_dotted_run_name_creates_nothing(operator):
    """go19.v2 is a valid object name, but go19.v2-selfplay-metrics is not a Service name (422)."""
    kmock = operator
    await create(kmock, stored_without_admission("go19.v2"))
    degraded = await wait_for(lambda: condition(kmock, "Degraded", "go19.v2"), what="Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "InvalidSpec"
    assert "'go19.v2' must be a DNS-1035 label" in degraded["message"]
    await wait_for(lambda: warning_events(kmock, "InvalidSpec"), what="an event")
    await timer_rounds(kmock, name="go19.v2")
    assert children_of(kmock, "go19") == [], "nothing may be created for a run that cannot be completed"


def test_the_emulated_api_server_refuses_such_names_as_a_real_one():
    from kube_emulator import refusals

    (problem,) = refusals("services", {"metadata": {"name": "go19.v2-selfplay-metrics"}})
    assert problem[0] == "metadata.name" and "DNS-1035 label" in problem[2]
    assert refusals("deployments", {"metadata": {"name": "go19.v2-selfplay"}}) == []


async def test_a_spec_core_kubernetes_refuses_is_degraded_with_its_message_and_not_retried(operator):
    kmock = operator
    deployments = f"/apis/apps/v1/namespaces/{NS}/deployments"
    # The CRD admits both tolerations; core Kubernetes validation refuses them.
    bad_tolerations = [{"operator": "Equal", "value": "x", "effect": "NoSchedule"},
                       {"key": "spot", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 30}]
    await create(kmock, run_object(trainer={"tolerations": bad_tolerations}))
    degraded = await wait_for(lambda: (c := condition(kmock, "Degraded")) and c["status"] == "True" and c,
                              what="Degraded")
    assert degraded["reason"] == "APIRejected"
    assert 'Deployment.apps "demo-trainer" is invalid' in degraded["message"]
    assert "operator must be Exists when `key` is empty" in degraded["message"]
    assert "effect must be 'NoExecute' when `tolerationSeconds` is set" in degraded["message"]
    assert run_status(kmock)["phase"] == "Degraded"
    (event,) = await wait_for(lambda: warning_events(kmock, "APIRejected"), what="a Warning event")
    assert event["type"] == "Warning" and "operator must be Exists" in event["message"]
    posts = len([r for r in kmock["post", deployments] if r.data["metadata"]["name"] == "demo-trainer"])
    # Retries would come 0.2 s after a failure, timer rounds 0.3 s apart: in three rounds, none may try again.
    await timer_rounds(kmock)
    assert len([r for r in kmock["post", deployments] if r.data["metadata"]["name"] == "demo-trainer"]) == posts
    assert condition(kmock, "Degraded")["reason"] == "APIRejected", "the refresh keeps the refusal"
    assert len(warning_events(kmock, "APIRejected")) == 1
    # A spec change is tried again, and a good one clears the condition.
    await patch(kmock, run_path(), {"spec": {"trainer": {"tolerations": [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}}})
    await all_children(kmock)
    await wait_for(lambda: condition(kmock, "Degraded")["status"] == "False", what="Degraded cleared")


async def test_temporary_api_errors_back_off_exponentially(operator):
    """retry_delay 0.2 s doubling: three failures take at least 0.2+0.4+0.8 s (fixed delays: 0.6)."""
    kmock = operator
    # kmock stores a POSTed object even when it answers with an error, so the failing call is the
    # patch of an existing (unowned) ConfigMap that the run adopts.
    kmock.objects[CONFIGMAPS, NS, "demo-config"] = {"apiVersion": "v1", "kind": "ConfigMap",
                                                     "metadata": {"name": "demo-config", "namespace": NS}}
    config_patch = f"/api/v1/namespaces/{NS}/configmaps/demo-config"
    kmock["patch", config_patch][:3] << 503
    start = asyncio.get_running_loop().time()
    await create(kmock, run_object())
    await wait_for(lambda: len(list(kmock["patch", config_patch])) >= 4, what="the fourth try")
    elapsed = asyncio.get_running_loop().time() - start
    assert elapsed >= 1.35, f"four tries in {elapsed:.2f} s: the delay did not grow"
    await all_children(kmock)
    assert condition(kmock, "Degraded") is None or condition(kmock, "Degraded")["status"] == "False"


def test_retry_delay_doubles_up_to_its_cap():
    from zeroloop_operator.handlers import MAX_RETRY_DELAY, retry_delay

    assert [retry_delay(10, n) for n in range(4)] == [10, 20, 40, 80]
    assert retry_delay(10, 10) == MAX_RETRY_DELAY and retry_delay(10, 10_000) == MAX_RETRY_DELAY
    assert retry_delay(600, 0) == 600, "a first delay above the cap is kept"


async def test_conditions_name_the_generation_reconcile_acted_on(operator):
    """While a spec change cannot be applied yet, neither observedGeneration may claim it was."""
    kmock = operator
    await create(kmock, run_object())
    await all_children(kmock)
    await wait_for(lambda: run_status(kmock).get("observedGeneration") == 1, what="generation 1 reconciled")
    # A refresh that read the run before its first reconcile may still land (it heals next round):
    # wait for a round that began after it (progress.updateTime is when a round began, to the second).
    reconciled = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    await wait_for(lambda: (run_status(kmock).get("progress") or {}).get("updateTime", "") > reconciled,
                   what="a refresh after the reconcile")
    # Three refused tries: retries after 0.2, 0.4 and 0.8 s, while the timer refreshes every 0.3 s. Until the
    # fourth try the change is not applied, so no status may claim it; kmock answers in this event loop, so
    # the tries counted and the status read are of one moment.
    selfplay = f"/apis/apps/v1/namespaces/{NS}/deployments/demo-selfplay"
    kmock["patch", selfplay][:3] << 503
    await patch(kmock, run_path(), {"spec": {"selfplay": {"visits": 900}}})
    refused_seen = []

    def applied() -> bool:
        tries = len(list(kmock["patch", selfplay]))
        if tries >= 4:
            return True
        status = run_status(kmock)
        assert status["observedGeneration"] == 1, status
        assert {c["observedGeneration"] for c in status["conditions"]} == {1}, status["conditions"]
        if tries:
            refused_seen.append(tries)
        return False

    await wait_for(applied, what="the fourth try")
    assert refused_seen, "the status was never read between the refused tries"
    assert obj(kmock, TRAININGRUNS, "demo")["metadata"]["generation"] == 2
    await wait_for(lambda: {c["observedGeneration"] for c in run_status(kmock)["conditions"]} == {2}
                   and run_status(kmock)["observedGeneration"] == 2, what="generation 2 reconciled")


def test_ensure_children_checks_every_name_before_creating_any():
    """Even for a spec that reached it unchecked, no child is created when any child's name would be refused."""
    from zeroloop_operator import naming, reconcile
    from zeroloop_operator import spec as runspec

    class RecordingKube:
        def __init__(self):
            self.calls = []

        def __getattr__(self, name):
            return lambda *args, **kwargs: self.calls.append(name)

    kube = RecordingKube()
    spec = runspec.RunSpec(image="i", storage=runspec.StorageSpec(storage_class_name="s"))
    with pytest.raises(runspec.SpecError) as err:
        reconcile.ensure_children(kube, naming.RunRef("go19.v2", NS, "uid"), spec)
    assert kube.calls == []
    assert "Service name 'go19.v2-selfplay-metrics' is not a DNS-1035 label" in str(err.value)
    assert not any("Deployment" in p for p in err.value.problems), "dots are fine in other kinds' names"


async def test_progress_of_200_selfplay_pods(operator):
    """A run of 200 self-play pods, 10 of them hung: every status round still ends (the round's deadline and
    the per-pod timeout bound it), and progress counts the games of every pod that answers."""
    from test_scrape import ManyPods

    kmock = operator
    hung = set(range(10, 20))
    pods = ManyPods(hung, set())
    try:
        await create(kmock, run_object(metrics={"port": pods.port}))
        await all_children(kmock)
        for n in range(1, 201):
            add_pod(kmock, f"demo-selfplay-{n}", "demo", "selfplay", f"127.0.0.{n}")
        want = sum(n for n in range(1, 201) if n not in hung)

        def progress():
            return run_status(kmock).get("progress") or {}

        await wait_for(lambda: progress().get("games") == want, what=f"{want} games from 190 pods")
        listed = {p["name"] for p in progress()["pods"]}
        assert len(listed) == 190 and not listed & {f"demo-selfplay-{n}" for n in hung}  # never read: not listed
    finally:
        pods.close()


async def test_a_status_computed_from_an_older_read_is_not_written(kmock, tmp_path, monkeypatch):
    """The refresh timer's write (patch_status_if_unchanged) is refused once anything wrote the run after the
    round read it, so a slow round cannot undo the Degraded condition reconcile set meanwhile."""
    from zeroloop_operator.kube import ApiError, Kube

    declare_resources(kmock)
    config_path = tmp_path / "kubeconfig"
    config_path.write_text(kubeconfig_text(str(kmock.url)))
    await create(kmock, run_object())
    await patch(kmock, run_path() + "/status", {"status": {"phase": "Running", "conditions": []}})
    kube = Kube(kubernetes.config.new_client_from_config(config_file=str(config_path)), timeout=5)
    off_loop = asyncio.get_running_loop().run_in_executor  # Kube blocks; kmock answers on this loop
    read = await off_loop(None, kube.get, "TrainingRun", NS, "demo")
    degraded = [{"type": "Degraded", "status": "True", "reason": "InvalidSpec"}]
    await patch(kmock, run_path() + "/status", {"status": {"conditions": degraded}})  # reconcile, meanwhile
    stale = {"conditions": [{"type": "Degraded", "status": "False"}], "phase": "Running"}
    with pytest.raises(ApiError) as refused:
        await off_loop(None, kube.patch_status_if_unchanged, "TrainingRun", NS, "demo",
                       read["metadata"]["resourceVersion"], read["status"], stale)
    assert refused.value.status in (409, 422)
    assert run_status(kmock)["conditions"] == degraded
    # read afresh, the same write goes through: fields set, fields it does not name kept, None removes
    read = await off_loop(None, kube.get, "TrainingRun", NS, "demo")
    await off_loop(None, kube.patch_status_if_unchanged, "TrainingRun", NS, "demo",
                   read["metadata"]["resourceVersion"], read["status"], {"conditions": [], "phase": None})
    assert run_status(kmock) == {"conditions": []}


async def test_a_status_the_api_server_refuses_is_a_warning_not_a_race(operator, caplog):
    """A 422 on the refresh timer's status write while the run's version has not moved is the API server
    refusing the status itself (here a webhook): a warning logged each round and one Warning event (timers' logs
    post none), never the quiet 'dropped' of a race; nothing else changes, and once the server takes it, it is
    written."""
    import kmock as kmock_lib

    kmock = operator
    await create(kmock, run_object())
    await all_children(kmock)
    await wait_for(lambda: run_status(kmock).get("observedGeneration") == 1, what="reconciled")
    refused = []

    def webhook(request):  # the timer's write is the only JSON patch (a list) of a run's status
        if request.resource.plural == "trainingruns" and request.subresource == "status" \
                and isinstance(request.data, list):
            refused.append(request)
            return kmock_lib.KubernetesError(status=422, reason="Invalid", message="status.progress: refused here")
        return None

    kmock.admission = webhook
    before = copy.deepcopy(obj(kmock, TRAININGRUNS, "demo"))
    first = len(caplog.records)  # earlier rounds may have met a real race, before the webhook
    await wait_for(lambda: len(refused) >= 3, what="three refused status writes")
    kmock.admission = None
    window = caplog.records[first:]
    assert obj(kmock, TRAININGRUNS, "demo")["metadata"]["resourceVersion"] == \
        before["metadata"]["resourceVersion"], "a refused write changes nothing"
    (event,) = await wait_for(lambda: warning_events(kmock, "StatusRefused"), what="a Warning event")
    assert event["type"] == "Warning" and "status.progress: refused here" in event["message"]
    texts = [r.getMessage() for r in window if r.name.startswith("kopf")]
    assert any("status refresh not written" in t and "refused here" in t for t in texts), texts
    assert not any("status refresh dropped" in t for t in texts), "a refusal is not a race"
    # Once the server takes it again, the timer writes: progress moves on.
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    await wait_for(lambda: (run_status(kmock).get("progress") or {}).get("updateTime", "") > stamp,
                   what="a refresh written after the refusals")
    assert condition(kmock, "Degraded") is None or condition(kmock, "Degraded")["status"] == "False"
    assert len(warning_events(kmock, "StatusRefused")) == 1, "one event per refusal, not one per round"
