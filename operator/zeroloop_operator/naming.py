"""Names, labels and owner references of a TrainingRun's children.

Every child's name is the run's name plus a fixed suffix, so the operator
finds its children by name (no label queries needed, and kmock-style mocks
that ignore selectors work too). Labels follow the Kubernetes recommended
set; the selector of each Deployment uses only the two labels that never
change (``zeroloop.io/run`` and the component), because a Deployment's
selector is immutable.

Child Service names are DNS-1035 labels (at most 63 characters, starting
with a letter): the longest suffix, ``-gatekeeper-metrics``, leaves 44
characters for the run's name, which must itself be a DNS-1035 label (no
dots: ``go19.v2`` is a valid object name but ``go19.v2-selfplay-metrics`` is
not a valid Service name). The CRD's CEL rule and ``spec.parse`` both
enforce that, and ``child_name_problems`` checks every child's name by its
kind's rule before the first one is created, so a run is never left
half-built by a name the API server refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GROUP = "zeroloop.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "TrainingRun"
PLURAL = "trainingruns"

COMPONENTS = ("selfplay", "shuffler", "trainer", "gatekeeper")
MAX_RUN_NAME = 44
MANAGER = "zeroloop-operator"

DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Kinds whose names the API server checks as DNS-1035 labels; the rest are DNS-1123 subdomains.
LABEL_NAMED_KINDS = frozenset({"Service"})

LABEL_RUN = "zeroloop.io/run"
LABEL_COMPONENT = "app.kubernetes.io/component"
ANNOTATION_CONFIG_CHECKSUM = "zeroloop.io/config-checksum"


@dataclass(frozen=True)
class RunRef:
    """The identity of a TrainingRun: what children need to name and own."""

    name: str
    namespace: str
    uid: str

    def owner_reference(self) -> dict:
        """An ownerReference making the run the controller of a child."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def deployment_name(run: str, component: str) -> str:
    return f"{run}-{component}"


def service_name(run: str, component: str) -> str:
    return f"{run}-{component}-metrics"


def configmap_name(run: str) -> str:
    return f"{run}-config"


def claim_name(run: str) -> str:
    return f"{run}-data"


def run_labels(run: str) -> dict[str, str]:
    """Labels every child of a run carries."""
    return {
        "app.kubernetes.io/name": "zeroloop",
        "app.kubernetes.io/instance": run,
        "app.kubernetes.io/part-of": "zeroloop",
        "app.kubernetes.io/managed-by": MANAGER,
        LABEL_RUN: run,
    }


def component_labels(run: str, component: str) -> dict[str, str]:
    return {**run_labels(run), LABEL_COMPONENT: component}


def selector_labels(run: str, component: str) -> dict[str, str]:
    """The immutable selector of a component's Deployment and Service."""
    return {LABEL_RUN: run, LABEL_COMPONENT: component}


def selector_string(labels: dict[str, str]) -> str:
    """A label selector in the string form the scale subresource expects."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def name_problems(run: str) -> list[str]:
    """Why a run's name cannot name its children (empty when it can)."""
    problems = []
    if len(run) > MAX_RUN_NAME:
        problems.append(f"the name {run!r} has {len(run)} characters; at most {MAX_RUN_NAME} fit the child "
                        f"names (Service {service_name(run, 'gatekeeper')!r} must be at most 63)")
    if not DNS_1035_LABEL.match(run):
        problems.append(f"the name {run!r} must be a DNS-1035 label: lower-case letters, digits and '-', starting "
                        "with a letter (child Service names are built from it)")
    return problems


def child_name_problems(kind: str, name: str, labels: dict[str, str]) -> list[str]:
    """Why the API server would refuse a child of this kind, name and labels (empty when it would not)."""
    problems = []
    if kind in LABEL_NAMED_KINDS:
        if len(name) > 63 or not DNS_1035_LABEL.match(name):
            problems.append(f"{kind} name {name!r} is not a DNS-1035 label (at most 63 characters: lower-case "
                            "letters, digits and '-', starting with a letter)")
    elif len(name) > 253 or not DNS_1123_SUBDOMAIN.match(name):
        problems.append(f"{kind} name {name!r} is not a DNS-1123 subdomain")
    for key, value in labels.items():
        if len(value) > 63 or not LABEL_VALUE.match(value):
            problems.append(f"{kind} {name}: label {key}={value!r} is not a valid label value")
    return problems
