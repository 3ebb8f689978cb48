"""The Pod Security Standard each run's pods meet, and that the docs claim no more than that.

The checks are the Pod Security Standards' rules (kubernetes.io/docs/concepts/
security/pod-security-standards) for the fields a run's pods set: baseline
(no privileged containers, no host namespaces or ports, only the default
capabilities may be added) and restricted on top (runAsNonRoot, no root
user, no privilege escalation, drop ALL and add at most NET_BIND_SERVICE,
seccomp RuntimeDefault or Localhost).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import crd_rules
import docs
from zeroloop_operator import children, naming
from zeroloop_operator import spec as runspec

REPO = Path(__file__).resolve().parents[1]
RUN = naming.RunRef("demo", "ns", "uid")
BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def baseline_violations(pod: dict) -> list[str]:
    out = [f"host namespace {k}" for k in ("hostNetwork", "hostPID", "hostIPC") if pod.get(k)]
    for c in pod.get("initContainers", []) + pod["containers"]:
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            out.append(f"{c['name']}: privileged")
        extra = set((sc.get("capabilities") or {}).get("add") or []) - BASELINE_CAPABILITIES
        if extra:
            out.append(f"{c['name']}: adds {sorted(extra)}")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            out.append(f"{c['name']}: hostPort")
    return out


def restricted_violations(pod: dict) -> list[str]:
    out = baseline_violations(pod)
    psc = pod.get("securityContext") or {}
    if (psc.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        out.append("pod: seccompProfile")
    for c in pod.get("initContainers", []) + pod["containers"]:
        sc = c.get("securityContext") or {}
        non_root = sc.get("runAsNonRoot", psc.get("runAsNonRoot"))
        user = sc.get("runAsUser", psc.get("runAsUser"))
        if non_root is not True:
            out.append(f"{c['name']}: runAsNonRoot is not true")
        if user == 0:
            out.append(f"{c['name']}: runAsUser 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{c['name']}: allowPrivilegeEscalation")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{c['name']}: does not drop ALL capabilities")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{c['name']}: adds capabilities")
    return out


def pods(**storage) -> list[dict]:
    raw = {"apiVersion": "zeroloop.io/v1alpha1", "kind": "TrainingRun", "metadata": {"name": "demo"},
           "spec": {"image": "i", "storage": {"storageClassName": "s", **storage}}}
    spec = runspec.parse(crd_rules.admit(raw)[0]["spec"], "demo")
    return [c.manifest["spec"]["template"]["spec"] for c in children.desired(RUN, spec) if c.kind == "Deployment"]


def test_every_pod_meets_restricted_by_default():
    for pod in pods():
        assert restricted_violations(pod) == []


def test_set_ownership_pods_meet_baseline_only():
    for pod in pods(setOwnership=True):
        assert baseline_violations(pod) == []
        problems = restricted_violations(pod)
        assert problems and all(p.startswith("set-ownership:") for p in problems), problems


def paragraphs() -> list[tuple[str, str]]:
    out = []
    for path in docs.PAGES:
        out += [(path.name, p) for p in re.split(r"\n\s*\n", path.read_text())]
    crd = crd_rules.load_crd()
    out.append(("the CRD", str(crd_rules.version_schema(crd)["properties"]["spec"]["properties"]["storage"])))
    return out


@pytest.mark.parametrize("claim", [r"every pod runs as a\s+non-root", r"no\s+capabilities", r"restricted"])
def test_the_docs_name_the_exception_wherever_they_claim_locked_down_pods(claim):
    found = [(where, p) for where, p in paragraphs() if re.search(claim, p, re.I)]
    assert found, f"no text claims {claim!r}: update this test"
    for where, paragraph in found:
        assert "setOwnership" in paragraph, f"{where}: {paragraph[:300]}"
