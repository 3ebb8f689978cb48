"""Bringing a run's children to the desired state, and reading them back.

``ensure_children`` is the one idempotent reconcile for create, resume and
spec updates: every desired child is created, or, when it exists (HTTP 409),
merge-patched to the desired state; children the spec rules out are
deleted. Running it twice changes nothing the second time, so kopf may run
it again after any failure, and a create that failed half-way (the server
stored the object but the answer was lost) converges on the next try.

An existing object that another controller owns is never taken over: that
is a ``ChildConflict`` (for example, a run deleted a moment ago whose
children the garbage collector has not removed yet), reported and retried.

``observe`` reads what the status needs; ``status_fields`` and
``progress_fields`` turn it into status with the pure ``runstatus`` and
``progress`` modules.
"""

from __future__ import annotations

import logging
from typing import Any

from zeroloop_operator import children, naming, progress, runstatus, scrape
from zeroloop_operator.children import Child
from zeroloop_operator.kube import ApiError, Kube
from zeroloop_operator.naming import RunRef
from zeroloop_operator.spec import RunSpec, SpecError

log = logging.getLogger(__name__)


class ChildConflict(Exception):
    """A child's name is taken by an object another controller owns."""


def controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("uid")
    return None


def apply(kube: Kube, run: RunRef, child: Child) -> str:
    """Create child, or patch the existing one; returns 'created' or 'patched'.

    An error names the child (the API server's message may not).
    """
    try:
        return _create_or_patch(kube, run, child)
    except ApiError as e:
        raise ApiError(e.status, f"{child.kind} {child.name}: {e.message}") from None


def _create_or_patch(kube: Kube, run: RunRef, child: Child) -> str:
    try:
        kube.create(child.manifest)
        return "created"
    except ApiError as e:
        if e.status != 409:
            raise
    existing = kube.get(child.kind, run.namespace, child.name)
    if existing is None:  # deleted between our create and get: next round creates it
        raise ApiError(409, "it changed while being created")
    owner = controller_uid(existing)
    if owner not in (None, run.uid):
        raise ChildConflict(f"{child.kind} {child.name} exists and belongs to another owner (uid {owner})")
    kube.patch(child.kind, run.namespace, child.name, child.patch)
    return "patched"


def delete_owned(kube: Kube, run: RunRef, kind: str, name: str) -> bool:
    """Delete a child if it exists and this run controls it."""
    existing = kube.get(kind, run.namespace, name)
    if existing is None or controller_uid(existing) != run.uid:
        return False
    return kube.delete(kind, run.namespace, name)


def ensure_children(kube: Kube, run: RunRef, spec: RunSpec) -> dict[str, str]:
    """Create or patch every desired child, delete obsolete ones; returns name -> action.

    Every child's name is checked first (SpecError): a name the API server would refuse must
    not leave the run half-built, with some children created and the rest refused.
    """
    problems = children.name_problems(run, spec)
    if problems:
        raise SpecError(problems)
    actions = {}
    for child in children.desired(run, spec):
        actions[f"{child.kind}/{child.name}"] = apply(kube, run, child)
    for kind, name in children.obsolete(run, spec):
        if delete_owned(kube, run, kind, name):
            actions[f"{kind}/{name}"] = "deleted"
    log.debug("reconciled %s/%s: %s", run.namespace, run.name, actions)
    return actions


def observe(kube: Kube, run: RunRef, spec: RunSpec) -> runstatus.Observed:
    deployments = {c: kube.get("Deployment", run.namespace, naming.deployment_name(run.name, c))
                   for c in children.active_components(spec)}
    claim = children.claim_name(run, spec)
    return runstatus.Observed(deployments, kube.get("PersistentVolumeClaim", run.namespace, claim), claim)


def missing_children(kube: Kube, run: RunRef, spec: RunSpec, observed: runstatus.Observed) -> list[str]:
    """Children that should exist but do not (deleted by hand, or never created)."""
    missing = [f"Deployment/{naming.deployment_name(run.name, c)}" for c, d in observed.deployments.items()
               if d is None]
    if observed.claim is None and not spec.storage.existing_claim:
        missing.append(f"PersistentVolumeClaim/{observed.claim_name}")
    if kube.get("ConfigMap", run.namespace, naming.configmap_name(run.name)) is None:
        missing.append(f"ConfigMap/{naming.configmap_name(run.name)}")
    return missing


def status_fields(run: RunRef, spec: RunSpec, observed: runstatus.Observed, generation: int,
                  old_status: dict[str, Any] | None, now: str) -> dict[str, Any]:
    return runstatus.compute(spec, observed, generation, old_status, now, run.name)


def progress_fields(kube: Kube, run: RunRef, spec: RunSpec, old_progress: dict[str, Any] | None, now: str,
                    timeout: float, deadline: float | None = None) -> tuple[dict[str, Any], runstatus.Condition] | None:
    """New progress from the run's pods' metrics, and the MetricsReadable condition (None when metrics are off).

    deadline: seconds the scrape round may take (the caller's status interval leaves room for the rest)."""
    if not spec.metrics.enabled:
        return None
    pods = scrape.run_pods(kube, run.namespace, run.name)
    live = {(p.get("metadata") or {}).get("name", "") for p in pods}
    result = scrape.scrape_pods(pods, spec.metrics.port, timeout=timeout, run_key=f"{run.namespace}/{run.name}",
                                deadline=deadline)
    return (progress.merge(old_progress, result.metrics, live, now),
            runstatus.metrics_condition(result.failures, result.targets))
