"""The pure builders: a spec in, child manifests out, checked on their own.

Every manifest must pass kubernetes-validate --strict for Kubernetes 1.29 and
1.33; the tests also pin what the issue asks of the pods (security, GPUs,
grace periods, probes, checksums) and of the children (ownership, storage,
suspend, obsolete children).
"""

from __future__ import annotations

import dataclasses

import kubernetes_validate
import pytest
import yaml

import crd_rules
from zeroloop import plan
from zeroloop_operator import children, naming, podtemplates, runstatus, spec, stageconfig
from zeroloop_operator.naming import RunRef

KUBE_VERSIONS = ("1.29.0", "1.33.0")
RUN = RunRef("demo", "runs", "0f0e0d0c-aaaa-bbbb-cccc-000000000001")


def parsed(name: str = "demo", **fields) -> spec.RunSpec:
    """A spec as the API server would deliver it (CRD defaults applied), parsed."""
    raw = {"image": "registry.example/zeroloop:1", "storage": {"storageClassName": "standard-rwx"}, **fields}
    obj = {"apiVersion": "zeroloop.io/v1alpha1", "kind": "TrainingRun", "metadata": {"name": name}, "spec": raw}
    defaulted, errors = crd_rules.admit(obj)
    assert not errors, errors
    return spec.parse(defaulted["spec"], name)


VARIANTS = {
    "defaults": {},
    "cpu-only": {"selfplay": {"gpusPerPod": 0, "replicas": 2}, "trainer": {"gpus": 0}, "gatekeeper": {"gpus": 0}},
    "no-gating": {"gatekeeper": {"enabled": False}},
    "existing-claim": {"storage": {"existingClaim": "shared-data"}},
    "delete-policy": {"storage": {"storageClassName": "efs", "deletionPolicy": "Delete"}},
    "set-ownership": {"storage": {"storageClassName": "standard-rwx", "setOwnership": True}},
    "no-metrics": {"metrics": {"enabled": False}},
    "suspended": {"suspend": True},
    "scheduled": {
        "imagePullSecrets": ["regcred"],
        "selfplay": {"nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
                     "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                     "priorityClassName": "selfplay-low",
                     "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                         "weight": 1, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                                          "labelSelector": {"matchLabels": {"a": "b"}}}}]}},
                     "resources": {"requests": {"cpu": "6", "memory": "24Gi"}, "limits": {"memory": "32Gi"}}},
        "shuffler": {"maxRows": 5000000, "taperWindowScale": 50000},
    },
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_child_passes_strict_validation(variant, version):
    for child in children.desired(RUN, parsed(**VARIANTS[variant])):
        kubernetes_validate.validate(child.manifest, version, strict=True)


def test_strict_validation_would_catch_a_typo():
    dep = children.deployment(RUN, parsed(), "trainer").manifest
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBE_VERSIONS[0], strict=True)


def by_name(items: list[children.Child]) -> dict[str, dict]:
    return {f"{c.kind}/{c.name}": c.manifest for c in items}


def test_default_children_and_ownership():
    made = by_name(children.desired(RUN, parsed()))
    assert sorted(made) == sorted(
        ["PersistentVolumeClaim/demo-data", "ConfigMap/demo-config"]
        + [f"Deployment/demo-{c}" for c in naming.COMPONENTS]
        + [f"Service/demo-{c}-metrics" for c in naming.COMPONENTS])
    for key, manifest in made.items():
        meta = manifest["metadata"]
        assert meta["namespace"] == "runs" and meta["labels"]["zeroloop.io/run"] == "demo"
        if key.startswith("PersistentVolumeClaim"):
            assert "ownerReferences" not in meta  # Retain
        else:
            assert meta["ownerReferences"] == [RUN.owner_reference()]


def test_storage_variants():
    delete = by_name(children.desired(RUN, parsed(**VARIANTS["delete-policy"])))
    assert delete["PersistentVolumeClaim/demo-data"]["metadata"]["ownerReferences"][0]["uid"] == RUN.uid
    assert delete["PersistentVolumeClaim/demo-data"]["spec"] == {
        "accessModes": ["ReadWriteMany"], "storageClassName": "efs", "resources": {"requests": {"storage": "100Gi"}}}
    existing = by_name(children.desired(RUN, parsed(**VARIANTS["existing-claim"])))
    assert not [k for k in existing if k.startswith("PersistentVolumeClaim")]
    volume = existing["Deployment/demo-trainer"]["spec"]["template"]["spec"]["volumes"][0]
    assert volume == {"name": "data", "persistentVolumeClaim": {"claimName": "shared-data"}}
    # Retain after Delete: the patch removes the ownerReference so the claim outlives the run.
    pvc = children.claim(RUN, parsed())
    assert pvc.patch["metadata"]["ownerReferences"] == []
    assert "spec" not in pvc.patch  # a claim's spec is immutable


def pod(manifest: dict) -> dict:
    return manifest["spec"]["template"]["spec"]


@pytest.mark.parametrize("component", naming.COMPONENTS)
def test_pods_are_locked_down(component):
    dep = children.deployment(RUN, parsed(), component).manifest
    spec_ = pod(dep)
    assert spec_["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                        "fsGroup": 10001, "fsGroupChangePolicy": "OnRootMismatch",
                                        "seccompProfile": {"type": "RuntimeDefault"}}
    assert spec_["automountServiceAccountToken"] is False
    (c,) = spec_["containers"]
    assert c["securityContext"] == {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts["/data"] == "data" and mounts["/scratch"] == "scratch"
    volumes = {v["name"]: v for v in spec_["volumes"]}
    assert "emptyDir" in volumes["scratch"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    # numba's cache outlives the pod (a new pod loads the search, not compiles it); the others are scratch
    assert env["NUMBA_CACHE_DIR"] == f"/data/{RUN.name}/cache/numba" and env["TORCHINDUCTOR_CACHE_DIR"].startswith("/scratch/")
    assert [e["name"] for e in c["env"]].count("NUMBA_CACHE_DIR") == 1
    assert env["HOME"] == env["TMPDIR"] == "/scratch"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert c["ports"] == [{"name": "metrics", "containerPort": 9100, "protocol": "TCP"}]
    assert c["command"] == ["zeroloop"] and c["args"][-2:] == ["--log-format", "json"]


def test_set_ownership_adds_a_minimal_root_init_container():
    plain = pod(children.deployment(RUN, parsed(), "selfplay").manifest)
    assert "initContainers" not in plain
    assert children.deployment(RUN, parsed(), "selfplay").patch["spec"]["template"]["spec"]["initContainers"] is None
    for component in naming.COMPONENTS:
        spec_ = pod(children.deployment(RUN, parsed(**VARIANTS["set-ownership"]), component).manifest)
        (init,) = spec_["initContainers"]
        assert init["command"] == ["sh", "-c", "mkdir -p /data/demo && chown 10001:10001 /data/demo && "
                                               "chmod 0775 /data/demo"]
        assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]}
        assert init["securityContext"]["allowPrivilegeEscalation"] is False
        assert init["securityContext"]["readOnlyRootFilesystem"] is True
        assert spec_["containers"][0]["securityContext"]["runAsNonRoot"] is True


def test_grace_periods_cover_each_stages_flush():
    s = parsed(selfplay={"terminationGracePeriodSeconds": 90})
    graces = {c: pod(children.deployment(RUN, s, c).manifest)["terminationGracePeriodSeconds"]
              for c in naming.COMPONENTS}
    assert graces == {"selfplay": 90, "trainer": 120, "shuffler": 30, "gatekeeper": 30}
    assert pod(children.deployment(RUN, parsed(), "selfplay").manifest)["terminationGracePeriodSeconds"] == 60


def test_gpus_are_limits_and_cpu_runs_use_the_cpu_device():
    gpu = parsed(selfplay={"gpusPerPod": 2})
    c = pod(children.deployment(RUN, gpu, "selfplay").manifest)["containers"][0]
    assert c["resources"] == {"requests": {"cpu": "3", "memory": "8Gi"}, "limits": {"nvidia.com/gpu": "2"}}
    assert c["args"][c["args"].index("--device") + 1] == "cuda"
    cpu = parsed(**VARIANTS["cpu-only"])
    for component in ("selfplay", "trainer", "gatekeeper"):
        c = pod(children.deployment(RUN, cpu, component).manifest)["containers"][0]
        assert "nvidia.com/gpu" not in c["resources"].get("limits", {})
        assert c["args"][c["args"].index("--device") + 1] == "cpu"


def test_stage_command_lines_follow_the_documented_clis():
    s = parsed(runNamePrefix="kg", trainer={"batchSize": 128, "lrScale": 0.5},
               shuffler={"minRows": 1000, "keepTargetRows": 5000})
    args = {c: podtemplates.stage_args(c, "demo", s) for c in naming.COMPONENTS}
    assert args["selfplay"][:7] == ["selfplay", "--output-dir", "/data/demo/selfplay", "--models-dir",
                                    "/data/demo/models", "--config", "/etc/zeroloop/selfplay.yaml"]
    sh = args["shuffler"]
    assert sh[:4] == ["shuffle-export-loop", "/data/demo", "--name-prefix", "kg"] and "--gating" in sh
    assert sh[sh.index("--min-rows") + 1] == "1000" and sh[sh.index("--keep-target-rows") + 1] == "5000"
    assert sh[sh.index("--batch-size") + 1] == "128"
    tr = args["trainer"]
    assert tr[:6] == ["train", "/data/demo", "--name", "b6c96", "--model-kind", "b6c96"]
    for flag, value in (("--batch-size", "128"), ("--export-mode", "main"), ("--lr-scale", "0.5"),
                        ("--lr-warmup-samples", "10000"), ("--swa-period-samples", "250000"),
                        ("--checkpoint-interval-seconds", "120")):  # as the local loop passes them (zeroloop.plan)
        assert tr[tr.index(flag) + 1] == value, flag
    assert "--no-repeat-files" in tr
    gk = args["gatekeeper"]
    for flag, value in (("--test-models-dir", "/data/demo/modelstobetested"),
                        ("--accepted-models-dir", "/data/demo/models"),
                        ("--rejected-models-dir", "/data/demo/rejectedmodels"),
                        ("--sgf-output-dir", "/data/demo/gatekeepersgf"), ("--selfplay-dir", "/data/demo/selfplay"),
                        ("--required-candidate-win-prop", "0.5"), ("--config", "/etc/zeroloop/gatekeeper.yaml")):
        assert gk[gk.index(flag) + 1] == value
    for component in naming.COMPONENTS:
        assert args[component][args[component].index("--metrics-port") + 1] == "9100"
    no_gating = podtemplates.stage_args("shuffler", "demo", parsed(gatekeeper={"enabled": False}))
    assert "--gating" not in no_gating


def test_config_files_carry_the_spec_and_extra_keys():
    s = parsed(boardSizes=[9, 13], boardSizeWeights=[3, 1], komi=6.5,
               selfplay={"visits": 400, "cheapVisits": 64, "config": {"max_moves_per_area": 3.0}},
               gatekeeper={"sprt": {"enabled": True}})
    data = stageconfig.files(s)
    sp = yaml.safe_load(data["selfplay.yaml"])
    assert sp == {"num_games": 256, "board_sizes": [9, 13], "board_size_weights": [3.0, 1.0], "data_board_len": 13,
                  "komi_mean": 6.5, "max_visits": 400, "cheap_visits": 64, "full_search_prob": 0.25,
                  "inprogress_stop_search_seconds": 5.0, "nn_precision": "fp16", "max_moves_per_area": 3.0,
                  **plan.METHODS_SELFPLAY}  # KataGo's methods the plan turns on for every run
    gk = yaml.safe_load(data["gatekeeper.yaml"])
    assert gk["sprt"] is True and gk["num_games_per_gating"] == 200 and gk["max_visits"] == 150
    assert gk["board_sizes"] == [9, 13] and gk["board_size_weights"] == [3.0, 1.0] and gk["nn_precision"] == "fp16"
    cpu_only = yaml.safe_load(stageconfig.files(parsed(selfplay={"gpusPerPod": 0}))["selfplay.yaml"])
    assert cpu_only["nn_precision"] == "fp32"
    # Without weights, every size is equally likely (the stages want one weight per size).
    assert yaml.safe_load(stageconfig.files(parsed(boardSizes=[7, 9]))["selfplay.yaml"])["board_size_weights"] == \
        [1.0, 1.0]


def test_checksum_rolls_only_the_pods_that_read_the_changed_file():
    a, b = parsed(), parsed(selfplay={"visits": 900})
    def annotations(s, component):
        return children.deployment(RUN, s, component).manifest["spec"]["template"]["metadata"]["annotations"]
    assert annotations(a, "selfplay") != annotations(b, "selfplay")
    assert annotations(a, "gatekeeper") == annotations(b, "gatekeeper")
    assert annotations(a, "trainer") == annotations(b, "trainer")
    assert naming.ANNOTATION_CONFIG_CHECKSUM not in annotations(a, "trainer")


def test_merge_patch_removes_what_the_spec_no_longer_sets():
    patch = children.deployment(RUN, parsed(), "selfplay").patch
    template = patch["spec"]["template"]
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets"):
        assert template["spec"][key] is None
    scheduled = children.deployment(RUN, parsed(**VARIANTS["scheduled"]), "selfplay").patch
    assert scheduled["spec"]["template"]["spec"]["priorityClassName"] == "selfplay-low"
    no_metrics = children.deployment(RUN, parsed(metrics={"enabled": False}), "selfplay").patch
    assert no_metrics["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] is None
    assert "name" not in patch["metadata"] and "kind" not in patch


def test_suspend_gating_and_metrics_switches():
    suspended = by_name(children.desired(RUN, parsed(suspend=True, selfplay={"replicas": 8})))
    assert {k: m["spec"]["replicas"] for k, m in suspended.items() if k.startswith("Deployment")} == {
        f"Deployment/demo-{c}": 0 for c in naming.COMPONENTS}
    assert "PersistentVolumeClaim/demo-data" in suspended
    no_gating = parsed(gatekeeper={"enabled": False})
    assert "Deployment/demo-gatekeeper" not in by_name(children.desired(RUN, no_gating))
    assert set(children.obsolete(RUN, no_gating)) == {("Deployment", "demo-gatekeeper"),
                                                      ("Service", "demo-gatekeeper-metrics")}
    no_metrics = parsed(metrics={"enabled": False})
    assert not [k for k in by_name(children.desired(RUN, no_metrics)) if k.startswith("Service")]
    c = pod(children.deployment(RUN, no_metrics, "selfplay").manifest)["containers"][0]
    assert "livenessProbe" not in c and "--metrics-port" not in c["args"]
    assert children.obsolete(RUN, parsed()) == []


def test_selfplay_rolls_without_surge_and_single_writers_recreate():
    assert children.deployment(RUN, parsed(), "selfplay").manifest["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "25%"}}
    for component in ("shuffler", "trainer", "gatekeeper"):
        assert children.deployment(RUN, parsed(), component).manifest["spec"]["strategy"] == {"type": "Recreate"}


# --- spec.parse: what the schema cannot check -------------------------------------------------

def test_dataclass_defaults_equal_the_crd_defaults():
    minimal = {"image": "x", "storage": {"storageClassName": "s"}}
    _, errors = crd_rules.admit({"apiVersion": "zeroloop.io/v1alpha1", "kind": "TrainingRun",
                                 "metadata": {"name": "demo"}, "spec": minimal})
    defaulted = crd_rules.apply_defaults(crd_rules.version_schema(crd_rules.load_crd())["properties"]["spec"],
                                         minimal)
    assert not errors
    assert spec.parse(minimal, "demo") == spec.parse(defaulted, "demo")


@pytest.mark.parametrize("fields, message", [
    ({"trainer": {"resources": {"requests": {"memory": "64Gi"}, "limits": {"memory": "32Gi"}}}},
     "spec.trainer.resources: the memory request 64Gi exceeds its limit 32Gi"),
    ({"selfplay": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}},
     "spec.selfplay.resources.limits: set GPUs with gpusPerPod/gpus, not nvidia.com/gpu"),
    ({"selfplay": {"config": {"max_visits": 5}}},
     "spec.selfplay.config.max_visits is set by spec.selfplay.visits; set it there"),
    ({"boardSizeWeights": [0, 0], "boardSizes": [9, 13]}, "spec.boardSizeWeights must not all be zero"),
])
def test_parse_reports_what_the_schema_cannot(fields, message):
    raw = {"image": "x", "storage": {"storageClassName": "s"}, **fields}
    with pytest.raises(spec.SpecError) as err:
        spec.parse(raw, "demo")
    assert message in str(err.value)


def test_selfplay_config_keys_are_checked_by_selfplays_own_settings_each_named():
    """A key self-play does not know, or a value it would refuse, is refused here, not in a crash-looping pod."""
    raw = {"image": "x", "storage": {"storageClassName": "s"},
           "selfplay": {"config": {"max_visit": 3, "cpuct": -1, "nn_precision": "fp8", "reuse_tree": "yes",
                                   "ko_rules": ["simple", "japanese"], "komi_auto": True, "num_games": 8}}}
    with pytest.raises(spec.SpecError) as err:
        spec.parse(raw, "demo")
    assert err.value.problems == [
        "spec.selfplay.config.num_games is set by spec.selfplay.gamesInParallel; set it there",
        "spec.selfplay.config: unknown key max_visit (did you mean max_visits? "
        "`zeroloop selfplay --help-config` lists every key)",
        "spec.selfplay.config: cpuct = -1.0 is below the minimum 0.0",
        "spec.selfplay.config: nn_precision = 'fp8' is not one of 'fp32', 'fp16', 'bf16'",
        "spec.selfplay.config: reuse_tree = 'yes' is not true or false",
        "spec.selfplay.config: ko_rules = 'japanese' is not one of 'simple', 'positional', 'situational'"]


def test_selfplay_config_is_checked_whole_as_the_pods_would_read_it():
    """Checks across keys see the keys typed fields set, and name the field behind such a key."""
    raw = {"image": "x", "storage": {"storageClassName": "s"},
           "selfplay": {"visits": 200, "cheapVisits": 50, "config": {"reduce_visits": True, "reduced_visits_min": 300}}}
    with pytest.raises(spec.SpecError) as err:
        spec.parse(raw, "demo")
    assert err.value.problems == ["spec.selfplay.config: reduced_visits_min 300 is more than max_visits 200 "
                                  "(max_visits is spec.selfplay.visits)"]
    raw["selfplay"]["config"]["reduced_visits_min"] = 150
    assert stageconfig.selfplay_config(spec.parse(raw, "demo"))["reduced_visits_min"] == 150


def test_every_selfplay_key_a_typed_field_sets_is_named_with_its_field():
    """SELFPLAY_KEYS_FROM_FIELDS is what the plan renders from the run itself, not where it runs or its methods."""
    run = parsed(features="katago-v7", boardSizeWeights=[1.0])
    rendered = set(plan.selfplay_config(stageconfig.describe(run), plan.Placement("/b", "/etc")))
    assert rendered - set(plan.METHODS_SELFPLAY) == set(stageconfig.SELFPLAY_KEYS_FROM_FIELDS)


def test_parse_checks_the_run_name_and_collects_every_problem():
    raw = {"image": "x", "storage": {"storageClassName": "s"}, "selfplay": {"visits": "many"}}
    with pytest.raises(spec.SpecError) as err:
        spec.parse(raw, "x" * 45)
    assert err.value.problems == ["spec.selfplay.visits = 'many' has the wrong type"]
    with pytest.raises(spec.SpecError) as err:
        spec.parse({"image": "x", "storage": {"storageClassName": "s"}}, "9lives")
    assert "must be a DNS-1035 label" in str(err.value)
    with pytest.raises(spec.SpecError) as err:
        spec.parse({"image": "x", "storage": {"storageClassName": "s"}}, "go19.v2")
    assert "'go19.v2' must be a DNS-1035 label" in str(err.value)
    with pytest.raises(spec.SpecError) as err:
        spec.parse({"image": "x", "storage": {}}, "demo")
    assert "set exactly one of spec.storage.existingClaim" in str(err.value)


# --- runstatus: conditions from what the children report ----------------------------------------

def deployment_status(replicas: int, ready: int, updated: int | None = None, generation: int = 1) -> dict:
    return {"metadata": {"generation": generation},
            "status": {"replicas": replicas, "readyReplicas": ready,
                       "updatedReplicas": replicas if updated is None else updated, "observedGeneration": generation}}


def observed(deps: dict, claim_phase: str | None = "Bound") -> runstatus.Observed:
    claim = None if claim_phase is None else {"status": {"phase": claim_phase}}
    return runstatus.Observed(deps, claim, "demo-data")


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_status_running_when_every_component_is_ready():
    s = parsed(selfplay={"replicas": 2})
    deps = {c: deployment_status(2 if c == "selfplay" else 1, 2 if c == "selfplay" else 1)
            for c in naming.COMPONENTS}
    st = runstatus.compute(s, observed(deps), 3, None, "2026-01-01T00:00:00Z", "demo")
    assert st["phase"] == "Running" and st["observedGeneration"] == 3
    assert conditions(st) == {"StorageReady": ("True", "Bound"), "Progressing": ("False", "Stable"),
                              "Ready": ("True", "AllReady"), "Degraded": ("False", "AsExpected"),
                              "Suspended": ("False", "Running")}
    assert st["selfplay"] == {"replicas": 2, "readyReplicas": 2, "desiredReplicas": 2, "ready": "2/2",
                              "selector": "app.kubernetes.io/component=selfplay,zeroloop.io/run=demo"}


def test_status_pending_while_rolling_and_storage_waiting():
    s = parsed(selfplay={"replicas": 4})
    deps = {c: deployment_status(1, 1) for c in naming.COMPONENTS}
    deps["selfplay"] = deployment_status(4, 1, updated=2)
    deps["trainer"] = None
    st = runstatus.compute(s, observed(deps, "Pending"), 1, None, "t0", "demo")
    cond = conditions(st)
    assert st["phase"] == "Pending"
    assert cond["Progressing"] == ("True", "RollingOut") and cond["Ready"] == ("False", "PodsNotReady")
    assert cond["StorageReady"] == ("False", "Pending")
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert "selfplay 1/4" in ready["message"] and "trainer 0/1" in ready["message"]


def test_status_suspending_then_suspended_and_transition_times():
    s = parsed(suspend=True)
    draining = {c: deployment_status(1, 1) for c in naming.COMPONENTS}
    first = runstatus.compute(s, observed(draining), 2, None, "t1", "demo")
    assert first["phase"] == "Suspending" and conditions(first)["Suspended"] == ("False", "Suspending")
    gone = {c: deployment_status(0, 0) for c in naming.COMPONENTS}
    second = runstatus.compute(s, observed(gone), 2, first, "t2", "demo")
    assert second["phase"] == "Suspended" and conditions(second)["Suspended"] == ("True", "Suspended")
    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert times["Suspended"] == "t2" and times["StorageReady"] == "t1"  # unchanged status keeps its time


def test_replica_failure_is_degraded_and_invalid_spec_keeps_other_conditions():
    deps = {c: deployment_status(0, 0) for c in naming.COMPONENTS}
    deps["trainer"]["status"]["conditions"] = [{"type": "ReplicaFailure", "status": "True",
                                                "message": "exceeded quota: gpu"}]
    st = runstatus.compute(parsed(), observed(deps), 1, None, "t", "demo")
    assert st["phase"] == "Degraded" and "trainer: exceeded quota: gpu" in str(st["conditions"])
    bad = runstatus.invalid(["spec.x is wrong"], 2, st, "t9")
    assert bad["phase"] == "Degraded"
    assert conditions(bad)["Degraded"] == ("True", "InvalidSpec")
    assert conditions(bad)["StorageReady"] == conditions(st)["StorageReady"]


def test_owner_reference_and_name_limits():
    assert RUN.owner_reference()["controller"] is True
    assert naming.name_problems("a" * 44) == []
    assert naming.service_name("a" * 44, "gatekeeper").__len__() == 63
    assert naming.name_problems("a" * 45)


def test_spec_dataclasses_cover_every_crd_spec_field():
    """Each field in the CRD's spec schema has a dataclass field (and no dataclass field is extra)."""
    schema = crd_rules.version_schema(crd_rules.load_crd())["properties"]["spec"]

    def keys(cls) -> set[str]:
        return {spec._camel(f.name) for f in dataclasses.fields(cls)}

    assert set(schema["properties"]) == keys(spec.RunSpec)
    for name, cls in (("selfplay", spec.SelfplaySpec), ("shuffler", spec.ShufflerSpec),
                      ("trainer", spec.TrainerSpec), ("gatekeeper", spec.GatekeeperSpec),
                      ("storage", spec.StorageSpec), ("metrics", spec.MetricsSpec)):
        assert set(schema["properties"][name]["properties"]) == keys(cls), name
    assert set(schema["properties"]["gatekeeper"]["properties"]["sprt"]["properties"]) == keys(spec.SprtSpec)
