"""Every example run fits the nodes it names: requests against the providers' allocatable CPU and memory.

A pod whose requests exceed what a node can allocate stays Pending forever,
with nothing in the run's status but "0/4 ready". This test takes every
TrainingRun the documentation and the chart ship (README and docs YAML
blocks, charts/zeroloop/examples), applies the CRD's defaults as the API
server would, and holds each component's requests against the node type its
nodeSelector names.

Allocatable = capacity - kube-reserved - eviction threshold, computed with
the formulas the providers publish:

- GKE ("Standard cluster architecture: node allocatable resources",
  cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes):
  memory reserved 25% of the first 4 GiB, 20% of the next 4, 10% of the
  next 8, 6% of the next 112, 2% above 128 GiB, plus a 100 MiB eviction
  threshold; CPU reserved 6% of the first core, 1% of the second, 0.5% of
  the next two, 0.25% of the rest.
- EKS (the EKS-optimized AMI's bootstrap, amazon-eks-ami): the same CPU
  formula; memory reserved 11 MiB per pod the node can run (max pods from
  the VPC CNI's eni-max-pods table) plus 255 MiB, plus 100 MiB eviction.

Capacity is the instance's published vCPUs and memory (aws.amazon.com/ec2/
instance-types, cloud.google.com/compute/docs/machine-resource) less what
the guest kernel keeps before the kubelet counts it (about 3-4% on both
clouds; 4% here). Every node also runs system DaemonSets (kube-proxy, the
CNI, CSI node plugins, the GPU device plugin, log agents); an allowance of
0.5 CPU and 1 GiB per node stands for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from kubernetes.utils.quantity import parse_quantity

import crd_rules
import docs
from zeroloop_operator import naming

REPO = Path(__file__).resolve().parents[1]
GIB = Decimal(2**30)
MIB = Decimal(2**20)
KERNEL_SHARE = Decimal("0.04")
DAEMONSET_CPU = Decimal("0.5")
DAEMONSET_MEMORY = GIB


@dataclass(frozen=True)
class NodeType:
    provider: str  # gke or eks
    vcpus: int
    memory_gib: int
    gpus: int
    max_pods: int = 110  # GKE's default; EKS: the VPC CNI's eni-max-pods figure


NODE_TYPES = {
    # GKE machine types (G2: one L4 per 4/8 vCPUs as published; N2 general purpose).
    "g2-standard-4": NodeType("gke", 4, 16, 1),
    "g2-standard-8": NodeType("gke", 8, 32, 1),
    "g2-standard-16": NodeType("gke", 16, 64, 1),
    "n2-standard-4": NodeType("gke", 4, 16, 0),
    "n2-standard-8": NodeType("gke", 8, 32, 0),
    # EC2 instance types (G6: NVIDIA L4; max pods from eni-max-pods.txt).
    "g6.xlarge": NodeType("eks", 4, 16, 1, 58),
    "g6.2xlarge": NodeType("eks", 8, 32, 1, 58),
    "g6.4xlarge": NodeType("eks", 16, 64, 1, 234),
    "m6i.xlarge": NodeType("eks", 4, 16, 0, 58),
    "m6i.2xlarge": NodeType("eks", 8, 32, 0, 58),
}
# Node labels that name a GPU rather than a type: the smallest type the docs pair with it.
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
KARPENTER_GPU_LABEL = "karpenter.k8s.aws/instance-gpu-name"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
GPU_NAMED_TYPES = {(GKE_ACCELERATOR_LABEL, "nvidia-l4"): "g2-standard-8", (KARPENTER_GPU_LABEL, "l4"): "g6.xlarge"}


def _tiered(amount: Decimal, tiers: list[tuple[Decimal, Decimal]]) -> Decimal:
    """Sum of share * slice over consecutive slices of amount (the last tier takes the rest)."""
    reserved, left = Decimal(0), amount
    for size, share in tiers:
        part = min(left, size)
        reserved += part * share
        left -= part
        if left <= 0:
            break
    return reserved


def cpu_reserved(vcpus: int) -> Decimal:
    return _tiered(Decimal(vcpus), [(Decimal(1), Decimal("0.06")), (Decimal(1), Decimal("0.01")),
                                    (Decimal(2), Decimal("0.005")), (Decimal(10**6), Decimal("0.0025"))])


def memory_reserved(node: NodeType) -> Decimal:
    memory = node.memory_gib * GIB
    if node.provider == "gke":
        kube = _tiered(memory, [(4 * GIB, Decimal("0.25")), (4 * GIB, Decimal("0.20")), (8 * GIB, Decimal("0.10")),
                                (112 * GIB, Decimal("0.06")), (memory, Decimal("0.02"))])
    else:
        kube = (11 * node.max_pods + 255) * MIB
    return kube + 100 * MIB  # eviction threshold


def allocatable(node: NodeType) -> tuple[Decimal, Decimal]:
    """(CPUs, bytes) a node offers to pods, less the DaemonSet allowance."""
    cpu = node.vcpus - cpu_reserved(node.vcpus) - DAEMONSET_CPU
    memory = node.memory_gib * GIB * (1 - KERNEL_SHARE) - memory_reserved(node) - DAEMONSET_MEMORY
    return cpu, memory


def test_allocatable_matches_the_published_examples():
    # GKE's documentation works 32 GiB: 3.56 GiB reserved (+100 MiB eviction); 8 vCPUs: 90 mCPU.
    assert memory_reserved(NODE_TYPES["g2-standard-8"]) == Decimal("3.56") * GIB + 100 * MIB
    assert cpu_reserved(8) == Decimal("0.09")
    # EKS on a 58-pod node: 893 MiB kube-reserved; 4 vCPUs: 80 mCPU.
    assert memory_reserved(NODE_TYPES["g6.xlarge"]) == (893 + 100) * MIB
    assert cpu_reserved(4) == Decimal("0.08")
    cpu, _ = allocatable(NODE_TYPES["g6.xlarge"])
    assert cpu < 4, "the old self-play default (4 CPUs) cannot fit a g6.xlarge"


def doc_runs() -> list[tuple[str, dict]]:
    """(where, run) for every TrainingRun in the docs' YAML blocks and the chart's examples."""
    out = [(f"docs:{doc['metadata']['name']}", doc) for doc in docs.training_runs()]
    for path in sorted((REPO / "charts" / "zeroloop" / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "TrainingRun":
                out.append((f"examples/{path.name}", doc))
    return out


def node_type(selector: dict[str, str]) -> str | None:
    if INSTANCE_TYPE_LABEL in selector:
        return selector[INSTANCE_TYPE_LABEL]
    for (label, value), typ in GPU_NAMED_TYPES.items():
        if selector.get(label) == value:
            return typ
    return None


def gpus(component: str, spec: dict) -> int:
    part = spec[component]
    return int(part.get("gpusPerPod", 1) if component == "selfplay" else part.get("gpus", 0))


RUNS = doc_runs()


def test_the_docs_and_examples_have_platform_runs():
    names = [where for where, _ in RUNS]
    assert "examples/gke.yaml" in names and "examples/eks.yaml" in names
    assert len(RUNS) >= 3, names


@pytest.mark.parametrize("where, run", RUNS, ids=[w for w, _ in RUNS])
def test_every_example_pod_fits_the_node_it_names(where, run):
    defaulted, errors = crd_rules.admit(run)
    assert errors == [], errors
    spec = defaulted["spec"]
    for component in naming.COMPONENTS:
        part = spec[component]
        if component == "gatekeeper" and not part.get("enabled", True):
            continue
        typ = node_type(part.get("nodeSelector") or {})
        if typ is None:
            assert not where.startswith("examples/"), f"{where}: {component} names no node type"
            continue
        assert typ in NODE_TYPES, f"{where}: {component} names {typ}, which the test's table lacks"
        node = NODE_TYPES[typ]
        cpu, memory = allocatable(node)
        requests = part["resources"].get("requests") or {}
        want_cpu = parse_quantity(requests.get("cpu", "0"))
        want_memory = parse_quantity(requests.get("memory", "0"))
        assert want_cpu <= cpu, f"{where}: {component} requests {want_cpu} CPUs; a {typ} offers {cpu:.2f}"
        assert want_memory <= memory, (f"{where}: {component} requests {want_memory / GIB:.1f} GiB; "
                                       f"a {typ} offers {memory / GIB:.2f}")
        assert gpus(component, spec) <= node.gpus, f"{where}: {component} wants more GPUs than a {typ} has"


def test_the_docs_name_the_machine_behind_each_gpu_label():
    text = "\n".join(p.read_text() for p in [*docs.PAGES, *(REPO / "charts" / "zeroloop" / "examples").glob("*.yaml")])
    for typ in GPU_NAMED_TYPES.values():
        assert typ in text
