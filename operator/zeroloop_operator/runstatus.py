"""A run's status from what its children report: phase, conditions, replica counts.

Pure: the caller reads the Deployments and the claim and passes them in with
the previous status, and gets back the status fields to write. Conditions
have the metav1.Condition shape; a condition keeps its lastTransitionTime
while its status does not change, as Kubernetes tools expect.

Conditions:
- StorageReady: the claim exists and is Bound (WaitForFirstConsumer classes
  such as Filestore's bind only once the first pod is scheduled, so pods are
  created regardless and this only reports).
- Progressing: some component is rolling out or starting pods.
- Ready: every component has its desired pods ready.
- Degraded: the spec cannot be run (message says why) or a Deployment
  reports a ReplicaFailure (quota, admission).
- Suspended: ``spec.suspend`` and no pods left (reason Suspending while they
  drain).
- MetricsReadable: the status refresh could read every running pod's
  metrics; False (reason ScrapeFailed, naming the pods and why) while the
  run's progress cannot be read, e.g. when a NetworkPolicy blocks the
  operator. Only the refresh timer sets it; a reconcile keeps it as it was.
The phase summarises them: Degraded, Suspending, Suspended, Running, Pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zeroloop_operator import children, naming
from zeroloop_operator.spec import RunSpec

CONDITION_TYPES = ("StorageReady", "Progressing", "Ready", "Degraded", "Suspended", "MetricsReadable")
MAX_PODS_NAMED = 5  # in the MetricsReadable message
API_REJECTED = "APIRejected"  # Degraded reason: the API server refused a child for good


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str


@dataclass(frozen=True)
class Observed:
    """What the children say: Deployment per component (None: missing), the claim."""

    deployments: dict[str, dict[str, Any] | None]
    claim: dict[str, Any] | None
    claim_name: str


def component_counts(component: str, spec: RunSpec, deployment: dict[str, Any] | None) -> dict[str, int]:
    st = (deployment or {}).get("status") or {}
    return {"replicas": int(st.get("replicas") or 0), "readyReplicas": int(st.get("readyReplicas") or 0),
            "desiredReplicas": children.replicas(component, spec)}


def _rolling(deployment: dict[str, Any] | None, desired: int) -> bool:
    if deployment is None:
        return desired > 0
    st = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation")
    if generation is not None and st.get("observedGeneration", generation) < generation:
        return True
    return int(st.get("updatedReplicas") or 0) < desired or int(st.get("replicas") or 0) != desired


def _replica_failure(deployment: dict[str, Any] | None) -> str | None:
    for c in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "ReplicaFailure" and c.get("status") == "True":
            return c.get("message") or c.get("reason") or "ReplicaFailure"
    return None


def storage_condition(observed: Observed) -> Condition:
    if observed.claim is None:
        return Condition("StorageReady", False, "ClaimMissing",
                         f"PersistentVolumeClaim {observed.claim_name} does not exist")
    phase = (observed.claim.get("status") or {}).get("phase") or "Pending"
    if phase == "Bound":
        return Condition("StorageReady", True, "Bound", f"PersistentVolumeClaim {observed.claim_name} is bound")
    return Condition("StorageReady", False, phase,
                     f"PersistentVolumeClaim {observed.claim_name} is {phase} (classes with WaitForFirstConsumer "
                     "bind when the first pod is scheduled)")


def conditions_for(spec: RunSpec, observed: Observed) -> list[Condition]:
    counts = {c: component_counts(c, spec, observed.deployments.get(c)) for c in children.active_components(spec)}
    pods_left = sum(v["replicas"] for v in counts.values())
    not_ready = [f"{c} {v['readyReplicas']}/{v['desiredReplicas']}" for c, v in counts.items()
                 if v["readyReplicas"] < v["desiredReplicas"]]
    rolling = [c for c in counts if _rolling(observed.deployments.get(c), counts[c]["desiredReplicas"])]
    failures = [f"{c}: {m}" for c in counts if (m := _replica_failure(observed.deployments.get(c)))]
    out = [storage_condition(observed)]
    if spec.suspend:
        out.append(Condition("Progressing", False, "Suspended", "the run is suspended"))
        out.append(Condition("Ready", False, "Suspended", "the run is suspended"))
    elif rolling:
        out.append(Condition("Progressing", True, "RollingOut", "rolling out: " + ", ".join(rolling)))
    else:
        out.append(Condition("Progressing", False, "Stable", "every component runs its current spec"))
    if not spec.suspend:
        if not_ready:
            out.append(Condition("Ready", False, "PodsNotReady", "ready/desired: " + ", ".join(not_ready)))
        else:
            out.append(Condition("Ready", True, "AllReady", "every component has its pods ready"))
    if failures:
        out.append(Condition("Degraded", True, "ReplicaFailure", "; ".join(failures)))
    else:
        out.append(Condition("Degraded", False, "AsExpected", "the spec is valid"))
    if not spec.suspend:
        out.append(Condition("Suspended", False, "Running", "the run is not suspended"))
    elif pods_left:
        out.append(Condition("Suspended", False, "Suspending", f"waiting for {pods_left} pod(s) to stop"))
    else:
        out.append(Condition("Suspended", True, "Suspended", "every component is scaled to zero; storage is kept"))
    return out


def metrics_condition(failures: dict[str, str], asked: int) -> Condition:
    """MetricsReadable after a scrape round that asked `asked` pods, of which `failures` did not answer."""
    if not failures:
        return Condition("MetricsReadable", True, "Scraped", f"read the metrics of {asked} running pod(s)")
    named = [f"{pod} ({why})" for pod, why in sorted(failures.items())[:MAX_PODS_NAMED]]
    more = len(failures) - len(named)
    return Condition("MetricsReadable", False, "ScrapeFailed",
                     f"cannot read the metrics of {len(failures)} of {asked} running pod(s), so the run's progress "
                     "is not current (does a NetworkPolicy block the operator?): " + "; ".join(named)
                     + (f"; and {more} more" if more else ""))


def with_condition(status: dict[str, Any], condition: Condition, generation: int, now: str) -> list[dict[str, Any]]:
    """status's conditions with condition set (its lastTransitionTime kept while unchanged)."""
    old = status.get("conditions") or []
    merged = merge_conditions(old, [condition], generation, now)
    return [c for c in old if c.get("type") != condition.type] + merged


def _kept(old_status: dict[str, Any] | None, computed: list[Condition], generation: int) -> list[dict[str, Any]]:
    """Old conditions of types this computation does not set (MetricsReadable, set by the refresh).

    They are restamped with this generation: every condition names the generation the status describes.
    """
    types = {c.type for c in computed}
    return [{**c, "observedGeneration": generation} for c in (old_status or {}).get("conditions") or []
            if c.get("type") not in types]


def phase_for(spec: RunSpec, conditions: list[Condition]) -> str:
    by_type = {c.type: c for c in conditions}
    if by_type["Degraded"].status:
        return "Degraded"
    if spec.suspend:
        return "Suspended" if by_type["Suspended"].status else "Suspending"
    return "Running" if by_type["Ready"].status else "Pending"


def merge_conditions(old: list[dict[str, Any]] | None, new: list[Condition], generation: int,
                     now: str) -> list[dict[str, Any]]:
    """metav1.Conditions for new, keeping lastTransitionTime where status is unchanged."""
    previous = {c.get("type"): c for c in old or []}
    out = []
    for c in new:
        status = "True" if c.status else "False"
        before = previous.get(c.type)
        since = before.get("lastTransitionTime") if before and before.get("status") == status else None
        out.append({"type": c.type, "status": status, "reason": c.reason, "message": c.message,
                    "observedGeneration": generation, "lastTransitionTime": since or now})
    return out


def compute(spec: RunSpec, observed: Observed, generation: int, old_status: dict[str, Any] | None,
            now: str, run_name: str) -> dict[str, Any]:
    """The status fields of a valid run (everything but progress)."""
    conditions = conditions_for(spec, observed)
    out: dict[str, Any] = {
        "phase": phase_for(spec, conditions),
        "observedGeneration": generation,
        "conditions": merge_conditions((old_status or {}).get("conditions"), conditions, generation, now)
        + _kept(old_status, conditions, generation),
        "storage": {"claimName": observed.claim_name,
                    "phase": ((observed.claim or {}).get("status") or {}).get("phase") or
                    ("Missing" if observed.claim is None else "Pending")},
    }
    for component in naming.COMPONENTS:
        out[component] = component_counts(component, spec, observed.deployments.get(component))
    sp = out["selfplay"]
    sp["ready"] = f"{sp['readyReplicas']}/{sp['desiredReplicas']}"
    sp["selector"] = naming.selector_string(naming.selector_labels(run_name, "selfplay"))
    return out


def rejection(status: dict[str, Any]) -> dict[str, Any] | None:
    """The Degraded condition of a spec the API server refused, if that is where the run stands."""
    for c in status.get("conditions") or []:
        if c.get("type") == "Degraded" and c.get("status") == "True" and c.get("reason") == API_REJECTED:
            return c
    return None


def invalid(problems: list[str], generation: int, old_status: dict[str, Any] | None, now: str,
            reason: str = "InvalidSpec") -> dict[str, Any]:
    """Status fields for a run the operator cannot carry out: Degraded (with reason), the rest kept."""
    old_conditions = [c for c in (old_status or {}).get("conditions") or [] if c.get("type") != "Degraded"]
    degraded = Condition("Degraded", True, reason, "; ".join(problems))
    merged = merge_conditions((old_status or {}).get("conditions"), [degraded], generation, now)
    return {"phase": "Degraded", "observedGeneration": generation, "conditions": old_conditions + merged}
