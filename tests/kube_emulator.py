"""A kmock Kubernetes emulator that behaves enough like an API server for kopf.

kmock stores objects but never sets ``uid``, ``creationTimestamp``,
``resourceVersion`` or ``generation``; kopf relies on the resource version
to recognise its own patches (without it, it waits out a consistency
timeout after each one) and the operator relies on uids for ownership.
``StampingEmulator`` stamps them on every write, bumps ``generation`` when a
patch changes ``spec``, and, after an object is gone, deletes the objects
whose ownerReferences point at it, as Kubernetes' garbage collector would.

Everything else is kmock's: merge patches (lists replaced), no selectors,
no defaulting or validation, no controllers (Deployments get no status
unless a test writes it), fault injection with ``kmock[...] << 500``.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import uuid
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


class StampingEmulator(kmock.KubernetesEmulator):
    _versions = itertools.count(1)

    async def _handle(self, request):  # type: ignore[override]
        key = None
        if request.resource is not None:
            data_ok = isinstance(request.data, dict)
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


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
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
