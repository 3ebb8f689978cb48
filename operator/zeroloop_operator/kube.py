"""A small Kubernetes API client over plain dicts: get, list, create, merge-patch, delete.

The builders produce plain manifest dicts, so the operator sends them as
they are. The kubernetes package's typed API methods are a poor fit here:
their create methods want model objects (which reject integer quantities),
and their patch methods pick the JSON-Patch content type for a dict body.
This module keeps the package's configuration, authentication and TLS
(``ApiClient``, configured by the operator's login) and issues the
requests itself, with the content type it means: JSON merge patch
(RFC 7386), where ``null`` deletes a key and lists are replaced whole.

Only the kinds a run's children use are known; errors become ``ApiError``
with the HTTP status, 404 on get/delete becomes None/False.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Kind:
    api_prefix: str  # /api/v1 or /apis/GROUP/VERSION
    plural: str


KINDS: dict[str, Kind] = {
    "PersistentVolumeClaim": Kind("/api/v1", "persistentvolumeclaims"),
    "ConfigMap": Kind("/api/v1", "configmaps"),
    "Service": Kind("/api/v1", "services"),
    "Pod": Kind("/api/v1", "pods"),
    "Deployment": Kind("/apis/apps/v1", "deployments"),
    "TrainingRun": Kind("/apis/zeroloop.io/v1alpha1", "trainingruns"),
}


class ApiError(Exception):
    """A Kubernetes API request failed (status 0: no HTTP answer)."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(f"HTTP {status}: {message}" if status else message)


def path(kind: str, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
    k = KINDS[kind]
    p = f"{k.api_prefix}/namespaces/{namespace}/{k.plural}"
    if name:
        p += f"/{name}"
    if subresource:
        p += f"/{subresource}"
    return p


def labels_match(obj: dict[str, Any], selector: dict[str, str]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


class Kube:
    """Requests to the API server of the operator's login."""

    def __init__(self, api_client: kubernetes.client.ApiClient | None = None, timeout: float = 30.0,
                 field_manager: str = "zeroloop-operator"):
        self.api = api_client or kubernetes.client.ApiClient()
        self.timeout = timeout
        self.field_manager = field_manager

    def request(self, method: str, resource_path: str, *, body: Any = None,
                query: list[tuple[str, str]] | None = None, content_type: str = "application/json") -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        serialized = self.api.param_serialize(method=method, resource_path=resource_path,
                                              query_params=query or [], header_params=headers, body=body,
                                              auth_settings=["BearerToken"])
        m, url, hdrs, data = serialized[0], serialized[1], serialized[2], serialized[3]
        try:
            response = self.api.call_api(m, url, header_params=hdrs, body=data, _request_timeout=self.timeout)
            response.read()
        except ApiException as e:
            raise ApiError(e.status or 0, str(e.reason or e)) from None
        except Exception as e:  # urllib3 connection errors and the like
            raise ApiError(0, f"{type(e).__name__}: {e}") from None
        text = response.data.decode() if isinstance(response.data, bytes) else (response.data or "")
        if not 200 <= response.status < 300:
            raise ApiError(response.status, _status_message(text) or str(response.reason))
        return json.loads(text) if text else {}

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.request("GET", path(kind, namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    def list(self, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        """Objects whose labels match selector (filtered here too, in case the server does not)."""
        query = [("labelSelector", ",".join(f"{k}={v}" for k, v in sorted(selector.items())))]
        items = self.request("GET", path(kind, namespace), query=query).get("items") or []
        return [o for o in items if labels_match(o, selector)]

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        return self.request("POST", path(manifest["kind"], meta["namespace"]), body=manifest,
                            query=[("fieldManager", self.field_manager)])

    def patch(self, kind: str, namespace: str, name: str, body: dict[str, Any],
              subresource: str | None = None) -> dict[str, Any]:
        return self.request("PATCH", path(kind, namespace, name, subresource), body=body,
                            query=[("fieldManager", self.field_manager)], content_type=MERGE_PATCH)

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        try:
            self.request("DELETE", path(kind, namespace, name),
                         body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            raise


def _status_message(text: str) -> str:
    try:
        return str(json.loads(text).get("message") or "")
    except (ValueError, AttributeError):
        return text[:200]
