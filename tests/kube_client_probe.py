"""Run zeroloop_operator.kube against an API server URL and print what it got, as JSON.

Started by test_client_floor.py in a subprocess whose sys.path puts a given
release of the kubernetes package first, so the operator's client code meets
exactly that release.
"""

from __future__ import annotations

import json
import sys

import kubernetes
import kubernetes.client

from zeroloop_operator.kube import ApiError, Kube


def main(url: str) -> None:
    config = kubernetes.client.Configuration()
    config.host = url
    config.api_key = {"authorization": "token-123"}
    config.api_key_prefix = {"authorization": "Bearer"}
    kube = Kube(kubernetes.client.ApiClient(config), timeout=5)
    out: dict = {"version": kubernetes.__version__}
    out["missing"] = kube.get("ConfigMap", "ns", "missing")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns", "labels": {"x": "1"}},
          "data": {"k": "v"}}
    out["created"] = kube.create(cm)
    out["patched"] = kube.patch("ConfigMap", "ns", "a", {"data": {"k": None, "j": "w"}})
    out["listed"] = [o["metadata"]["name"] for o in kube.list("ConfigMap", "ns", {"x": "1"})]
    out["deleted"] = kube.delete("ConfigMap", "ns", "a")
    try:
        kube.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad.name", "namespace": "ns"}})
    except ApiError as e:
        out["refused"] = {"status": e.status, "message": e.message, "permanent": e.permanent}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
