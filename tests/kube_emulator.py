"""A kmock Kubernetes emulator that behaves enough like an API server for kopf.

kmock stores objects but never sets ``uid``, ``creationTimestamp``,
``resourceVersion`` or ``generation``; kopf relies on the resource version
to recognise its own patches (without it, it waits out a consistency
timeout after each one) and the operator relies on uids for ownership.
``StampingEmulator`` stamps them on every write, bumps ``generation`` when a
patch changes ``spec``, and, after an object is gone, deletes the objects
whose ownerReferences point at it, as Kubernetes' garbage collector would.

Like a real API server, it refuses built-in objects that core Kubernetes'
validation refuses, with 422 and a Status body carrying the server's
message (``refusals``): names that are not DNS-1035 labels (Services) or
DNS-1123 subdomains (the rest), invalid label values, and the pod-template
rules that a TrainingRun's schema cannot see (tolerations, node affinity).
The rules and messages are those of Kubernetes' apimachinery and core
validation, written here independently of the operator's own checks.

A test can also play an admission webhook (``admission``: a function of
the request that returns the error to refuse it with, or None): a refused
request changes nothing, as on a real server, unlike kmock's fault
injection (``kmock[...] << 422`` still stores what was sent).

Everything else is kmock's: merge patches (lists replaced), no selectors,
no defaulting, no controllers (Deployments get no status unless a test
writes it), fault injection with ``kmock[...] << 500``.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import re
import uuid
from collections.abc import Callable
from typing import Any

import kmock


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what kmock applies): null deletes, dicts merge, the rest replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


_DNS_1035 = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS_1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_1123_SUBDOMAIN = rf"{_DNS_1123_LABEL}(\.{_DNS_1123_LABEL})*"
_LABEL_VALUE = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
VALIDATED = {"services": "Service", "deployments": "Deployment.apps", "configmaps": "ConfigMap",
             "persistentvolumeclaims": "PersistentVolumeClaim"}


def _name_refusals(plural: str, name: str) -> list[tuple[str, str, str]]:
    if plural == "services":
        if len(name) > 63 or not re.fullmatch(_DNS_1035, name):
            return [("metadata.name", name, "a DNS-1035 label must consist of lower case alphanumeric characters "
                     "or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. "
                     f"'my-name',  or 'abc-123', regex used for validation is '{_DNS_1035}')")]
    elif len(name) > 253 or not re.fullmatch(_DNS_1123_SUBDOMAIN, name):
        return [("metadata.name", name, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character")]
    return []


def _label_refusals(where: str, labels: dict) -> list[tuple[str, str, str]]:
    return [(f"{where}", v, "a valid label must be an empty string or consist of alphanumeric characters, '-', "
             "'_' or '.', and must start and end with an alphanumeric character")
            for v in (labels or {}).values() if len(v) > 63 or not re.fullmatch(_LABEL_VALUE, v)]


def _pod_refusals(where: str, pod: dict) -> list[tuple[str, str, str]]:
    out = []
    for i, t in enumerate(pod.get("tolerations") or []):
        at = f"{where}.tolerations[{i}]"
        operator = t.get("operator") or "Equal"
        if not t.get("key") and operator != "Exists":
            out.append((f"{at}.operator", operator, "operator must be Exists when `key` is empty, which means "
                        '"match all values and all keys"'))
        if operator == "Exists" and t.get("value"):
            out.append((f"{at}.operator", t["value"], "value must be empty when `operator` is 'Exists'"))
        if t.get("tolerationSeconds") is not None and t.get("effect") != "NoExecute":
            out.append((f"{at}.effect", t.get("effect") or "", "effect must be 'NoExecute' when "
                        "`tolerationSeconds` is set"))
    required = (((pod.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is not None:
        at = f"{where}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
        if not required.get("nodeSelectorTerms"):
            out.append((at, "null", "must have at least one node selector term"))
        for i, term in enumerate(required.get("nodeSelectorTerms") or []):
            for j, req in enumerate(term.get("matchExpressions") or []):
                op, values = req.get("operator"), req.get("values") or []
                if op in ("In", "NotIn") and not values:
                    out.append((f"{at}[{i}].matchExpressions[{j}].values", "null",
                                "must be specified when `operator` is 'In' or 'NotIn'"))
                elif op in ("Exists", "DoesNotExist") and values:
                    out.append((f"{at}[{i}].matchExpressions[{j}].values", str(values),
                                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
    return out


def refusals(plural: str, obj: dict) -> list[tuple[str, str, str]]:
    """(field, value, detail) for each rule of core validation that obj breaks."""
    meta = obj.get("metadata") or {}
    out = _name_refusals(plural, meta.get("name") or "")
    out += _label_refusals("metadata.labels", meta.get("labels"))
    if plural == "deployments":
        template = (obj.get("spec") or {}).get("template") or {}
        out += _label_refusals("spec.template.metadata.labels", (template.get("metadata") or {}).get("labels"))
        out += _pod_refusals("spec.template.spec", template.get("spec") or {})
    return out


def invalid_error(plural: str, name: str, problems: list[tuple[str, str, str]]) -> kmock.KubernetesError:
    """422 Invalid, with the message and causes a real API server puts in its Status body."""
    causes = [f'{field}: Invalid value: "{value}": {detail}' for field, value, detail in problems]
    message = f'{VALIDATED[plural]} "{name}" is invalid: ' + (
        causes[0] if len(causes) == 1 else "[" + ", ".join(causes) + "]")
    details = {"name": name, "group": "apps" if plural == "deployments" else "", "kind": plural,
               "causes": [{"reason": "FieldValueInvalid", "message": f'Invalid value: "{v}": {d}', "field": f}
                          for f, v, d in problems]}
    return kmock.KubernetesError(status=422, reason="Invalid", message=message, details=details)


class StampingEmulator(kmock.KubernetesEmulator):
    _versions = itertools.count(1)
    admission: Callable[[Any], kmock.KubernetesError | None] | None = None  # a test's webhook (see above)

    def _validate(self, request) -> None:
        """Refuse what core Kubernetes validation refuses (creates and merge patches of built-in kinds)."""
        plural = request.resource.plural
        if plural not in VALIDATED or request.subresource is not None or not isinstance(request.data, dict):
            return
        if request.action == kmock.action.CREATE:
            result = request.data
        elif request.action == kmock.action.UPDATE and request.name is not None:
            key = (request.resource, request.namespace, request.name)
            if key not in self._objects or self._objects[key].deleted:
                return
            result = merge_patch(self._objects[key].raw, request.data)
        else:
            return
        problems = refusals(plural, result)
        if problems:
            raise invalid_error(plural, (result.get("metadata") or {}).get("name") or "", problems)

    async def _handle(self, request):  # type: ignore[override]
        key = None
        if request.resource is not None:
            data_ok = isinstance(request.data, dict)
            try:
                self._validate(request)
                refusal = self.admission(request) if self.admission is not None else None
                if refusal is not None:
                    raise refusal
            except kmock.KubernetesError as e:
                return await self._render_error(e)
            if request.action == kmock.action.CREATE and data_ok:
                self._stamp_create(request)
                meta = request.data["metadata"]
                key = (request.resource, meta.get("namespace"), meta.get("name"))
            elif request.action == kmock.action.UPDATE and request.name is not None:
                key = (request.resource, request.namespace, request.name)
                if data_ok:
                    self._stamp_update(request, key)
                elif isinstance(request.data, list):  # a JSON patch (kopf's finalizers)
                    self._check_json_patch_tests(request, key)
                    request.data.append({"op": "add", "path": "/metadata/resourceVersion",
                                         "value": str(next(self._versions))})
            elif request.action == kmock.action.DELETE and request.name is not None:
                key = (request.resource, request.namespace, request.name)
        try:
            return await super()._handle(request)
        finally:
            if key is not None:
                await self._collect_garbage(key)

    def _stamp_create(self, request) -> None:
        meta = request.data.setdefault("metadata", {})
        if request.namespace and not meta.get("namespace"):
            meta["namespace"] = request.namespace
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["resourceVersion"] = str(next(self._versions))
        meta["generation"] = 1

    def _check_json_patch_tests(self, request, key) -> None:
        """A failed JSON-patch `test` of the resourceVersion is 422 on a real server (kopf relies on it)."""
        if key not in self._objects or self._objects[key].deleted:
            return
        current = (self._objects[key].raw.get("metadata") or {}).get("resourceVersion")
        for op in request.data:
            if op.get("op") == "test" and op.get("path") == "/metadata/resourceVersion" and op.get("value") != current:
                raise kmock.KubernetesError(status=422, reason="Invalid",
                                            message=f"the object has been modified (resourceVersion {current})")

    def _stamp_update(self, request, key) -> None:
        if key not in self._objects or self._objects[key].deleted:
            return
        current = self._objects[key].raw
        meta_patch = request.data.get("metadata") or {}
        request.data["metadata"] = meta_patch
        meta_patch["resourceVersion"] = str(next(self._versions))
        if request.subresource is None and isinstance(request.data.get("spec"), dict):
            old_spec = current.get("spec") or {}
            if merge_patch(old_spec, request.data["spec"]) != old_spec:
                meta_patch["generation"] = int((current.get("metadata") or {}).get("generation") or 0) + 1

    async def _collect_garbage(self, key) -> None:
        """Delete dependents of objects that are gone (by ownerReference uid), repeatedly."""
        async with self._lock:
            if key not in self._objects or not self._objects[key].deleted:
                return
            gone = {(self._objects[key].last.get("metadata") or {}).get("uid")}
            while gone:
                doomed = []
                for k, obj in self._objects.items():
                    if obj.deleted:
                        continue
                    owners = {r.get("uid") for r in (obj.get("metadata") or {}).get("ownerReferences") or []}
                    if owners & gone:
                        doomed.append(k)
                gone = set()
                for k in doomed:
                    raw = self._objects[k].raw
                    self._objects[k].delete()
                    gone.add((raw.get("metadata") or {}).get("uid"))
                    await self._buses[k[0]].put({"type": "DELETED", "object": raw})


TRAININGRUNS = "zeroloop.io/v1alpha1/trainingruns"


def declare_resources(server: Any) -> None:
    """Built-in resources plus the TrainingRun with its subresources (for discovery)."""
    server.resources.load_bundled()
    server.resources[TRAININGRUNS] = kmock.ResourceInfo(
        kind="TrainingRun", singular="trainingrun", namespaced=True, shortnames={"zlrun"},
        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
        subresources={"status", "scale"},
    )


def kubeconfig_text(url: str) -> str:
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: kmock, cluster: {{server: '{url}'}}}}]\n"
        "users: [{name: kmock, user: {token: kmock-token}}]\n"
        "contexts: [{name: kmock, context: {cluster: kmock, user: kmock}}]\n"
        "current-context: kmock\n"
    )


# How long a wait gives up after: a bound for an operator that is stuck, not the pace expected of it. On a
# loaded 2-core machine (load average 7 and more) one reconcile can take many seconds, so a wait for
# what the operator will do must never be the test's measure of speed; what must NOT happen is checked
# after counted events (the refresh timer's rounds, retries), never after a fixed sleep.
PATIENCE = 60.0


async def wait_for(predicate, timeout: float = PATIENCE, interval: float = 0.05, what: str = "condition"):
    """Poll predicate() (sync) until it returns something truthy; return that."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            result = predicate()
        except (KeyError, TypeError, IndexError):
            result = None
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
