"""The children a TrainingRun should have: pure builders, spec in, manifests out.

``desired(run, spec)`` returns every object the run needs, each as a
``Child`` with the full manifest (for create) and the JSON merge patch that
brings an existing object to it (for update):

- the PersistentVolumeClaim (unless ``storage.existingClaim``), owned by the
  run only when ``deletionPolicy`` is Delete, so Kubernetes' garbage
  collector removes it with the run; with Retain it outlives the run (and a
  new run of the same name picks it up again). Its spec is immutable after
  creation, so the patch only touches labels and ownerReferences;
- the ConfigMap of stage config files;
- a Deployment per component (gatekeeper only when gating is enabled), with
  replicas zero while suspended;
- a headless metrics Service per component when metrics are enabled.

Everything except a retained claim carries a controller ownerReference.
A merge patch cannot say "this key is gone" by leaving it out, so the patch
of a Deployment nulls the pod-template keys a spec change can remove
(nodeSelector, tolerations, ...). ``obsolete`` names children that must not
exist for this spec (the gatekeeper when gating is off, Services when
metrics are off).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from zeroloop_operator import naming, podtemplates, stageconfig
from zeroloop_operator.naming import RunRef
from zeroloop_operator.spec import RunSpec, quantity_text


@dataclass(frozen=True)
class Child:
    """An object to create if missing, and the merge patch that updates it."""

    manifest: dict[str, Any]
    patch: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def name(self) -> str:
        return self.manifest["metadata"]["name"]


def _meta(run: RunRef, name: str, labels: dict[str, str], owned: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": run.namespace, "labels": labels}
    if owned:
        meta["ownerReferences"] = [run.owner_reference()]
    return meta


def claim_name(run: RunRef, spec: RunSpec) -> str:
    return spec.storage.existing_claim or naming.claim_name(run.name)


def claim(run: RunRef, spec: RunSpec) -> Child | None:
    if spec.storage.existing_claim:
        return None
    owned = spec.storage.deletion_policy == "Delete"
    meta = _meta(run, naming.claim_name(run.name), naming.run_labels(run.name), owned)
    manifest = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": {
            "accessModes": list(spec.storage.access_modes),
            "storageClassName": spec.storage.storage_class_name,
            "resources": {"requests": {"storage": quantity_text(spec.storage.size)}},
        },
    }
    patch = {"metadata": {"labels": meta["labels"], "ownerReferences": meta.get("ownerReferences", [])}}
    return Child(manifest, patch)


def configmap(run: RunRef, spec: RunSpec) -> Child:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(run, naming.configmap_name(run.name), naming.run_labels(run.name)),
        "data": stageconfig.files(spec),
    }
    return Child(manifest, _as_patch(manifest))


def replicas(component: str, spec: RunSpec) -> int:
    """Desired pods of a component (zero while suspended or disabled)."""
    if spec.suspend:
        return 0
    if component == "selfplay":
        return spec.selfplay.replicas
    if component == "gatekeeper" and not spec.gatekeeper.enabled:
        return 0
    return 1


def _strategy(component: str) -> dict[str, Any]:
    # GPUs are scarce: self-play rolls without surge; single writers never overlap.
    if component == "selfplay":
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "25%"}}
    return {"type": "Recreate"}


def deployment(run: RunRef, spec: RunSpec, component: str) -> Child:
    config_data = stageconfig.files(spec)
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(run, naming.deployment_name(run.name, component),
                          naming.component_labels(run.name, component)),
        "spec": {
            "replicas": replicas(component, spec),
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": naming.selector_labels(run.name, component)},
            "strategy": _strategy(component),
            "template": podtemplates.pod_template(component, run.name, spec, claim_name(run, spec), config_data),
        },
    }
    patch = _as_patch(manifest)
    template = patch["spec"]["template"]
    for key in podtemplates.REMOVABLE_POD_SPEC_KEYS:
        template["spec"].setdefault(key, None)
    for key in podtemplates.REMOVABLE_POD_ANNOTATIONS:
        template["metadata"]["annotations"].setdefault(key, None)
    return Child(manifest, patch)


def service(run: RunRef, spec: RunSpec, component: str) -> Child:
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(run, naming.service_name(run.name, component),
                          naming.component_labels(run.name, component)),
        "spec": {
            "clusterIP": "None",
            "selector": naming.selector_labels(run.name, component),
            "ports": [{"name": "metrics", "port": spec.metrics.port, "targetPort": "metrics", "protocol": "TCP"}],
        },
    }
    # clusterIP is immutable once set; leave it out of updates.
    patch = _as_patch(manifest)
    del patch["spec"]["clusterIP"]
    return Child(manifest, patch)


def active_components(spec: RunSpec) -> tuple[str, ...]:
    return tuple(c for c in naming.COMPONENTS if c != "gatekeeper" or spec.gatekeeper.enabled)


def desired(run: RunRef, spec: RunSpec) -> list[Child]:
    """Every child the run needs, in creation order (storage and config first)."""
    out: list[Child] = []
    pvc = claim(run, spec)
    if pvc is not None:
        out.append(pvc)
    out.append(configmap(run, spec))
    for component in active_components(spec):
        out.append(deployment(run, spec, component))
        if spec.metrics.enabled:
            out.append(service(run, spec, component))
    return out


def name_problems(run: RunRef, spec: RunSpec) -> list[str]:
    """Names and labels of the desired children that the API server would refuse."""
    problems = []
    for child in desired(run, spec):
        problems += naming.child_name_problems(child.kind, child.name, child.manifest["metadata"]["labels"])
    return problems


def obsolete(run: RunRef, spec: RunSpec) -> list[tuple[str, str]]:
    """(kind, name) of children this spec rules out, to delete if they exist."""
    out: list[tuple[str, str]] = []
    for component in naming.COMPONENTS:
        if component not in active_components(spec):
            out.append(("Deployment", naming.deployment_name(run.name, component)))
            out.append(("Service", naming.service_name(run.name, component)))
        elif not spec.metrics.enabled:
            out.append(("Service", naming.service_name(run.name, component)))
    return out


def _as_patch(manifest: dict[str, Any]) -> dict[str, Any]:
    """A merge patch setting every field of manifest (identity fields dropped)."""
    patch = copy.deepcopy(manifest)
    for key in ("apiVersion", "kind"):
        patch.pop(key, None)
    for key in ("name", "namespace"):
        patch["metadata"].pop(key, None)
    return patch
