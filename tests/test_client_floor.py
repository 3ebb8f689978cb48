"""The operator's Kubernetes client works with the oldest kubernetes release that pyproject allows.

``zeroloop_operator.kube`` uses ``ApiClient.param_serialize`` and the
``call_api`` of the client that openapi-generator 7 produces, which appeared
in kubernetes 37.0.0; with 36.x every call would raise AttributeError and
reconcile would retry forever. This test reads the floor from pyproject,
fetches that exact release from PyPI once (into ``.tools/``, checked
against a pinned sha256), and runs the client code against a small
recording API server with the floor release first on sys.path; and it shows
that the release before the floor lacks what the client uses, so the floor
is the real one.
Without PyPI access it skips.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / ".tools"
WHEEL_SHA256 = {
    "37.0.0": "eb957f804fe462275b1757426427105c99e2110c65b902f0d44763bf3e802109",
    "36.0.3": "8fde9241c4b298e6374a069dcf728359b4e72c2fb29489a975ba4e1c047cf10f",
}
BEFORE_FLOOR = "36.0.3"


def declared_floor() -> str:
    text = (REPO / "pyproject.toml").read_text()
    (floor,) = re.findall(r'"kubernetes>=([0-9.]+)', text)
    return floor


def release(version: str) -> Path:
    """A directory holding that release's `kubernetes` package (fetched and checked once)."""
    target = TOOLS / f"kubernetes-{version}"
    if (target / "kubernetes" / "__init__.py").exists():
        return target
    wheels = TOOLS / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    name = f"kubernetes-{version}-py2.py3-none-any.whl"
    if not (wheels / name).exists():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--dest", str(wheels), f"kubernetes=={version}"]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if result.returncode != 0 or not (wheels / name).exists():
            pytest.skip(f"cannot fetch kubernetes=={version}: {result.stderr.strip()[-300:]}")
    data = (wheels / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == WHEEL_SHA256[version], f"{name}: unexpected sha256"
    tmp = target.with_name(target.name + ".tmp")
    with zipfile.ZipFile(wheels / name) as whl:
        whl.extractall(tmp, [n for n in whl.namelist() if n.startswith("kubernetes/")])
    os.replace(tmp, target)
    return target


class RecordingApiServer(http.server.ThreadingHTTPServer):
    """Answers the few calls the probe makes, as an API server would, and records each request."""

    def __init__(self):
        self.requests: list[dict] = []
        super().__init__(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                server.requests.append({"method": self.command, "path": self.path, "body": body,
                                        "content_type": self.headers.get("Content-Type"),
                                        "authorization": self.headers.get("Authorization")})
                path = self.path.split("?")[0]
                if path.endswith("/configmaps/missing"):
                    self._answer(404, {"kind": "Status", "code": 404, "reason": "NotFound",
                                       "message": 'configmaps "missing" not found'})
                elif path.endswith("/services"):
                    self._answer(422, {"kind": "Status", "code": 422, "reason": "Invalid",
                                       "message": 'Service "bad.name" is invalid: metadata.name: Invalid value'})
                elif self.command == "GET" and path.endswith("/configmaps"):
                    self._answer(200, {"kind": "ConfigMapList", "items": [
                        {"metadata": {"name": "a", "labels": {"x": "1"}}},
                        {"metadata": {"name": "b", "labels": {"x": "2"}}}]})
                elif self.command == "POST":
                    self._answer(201, body)
                else:
                    self._answer(200, {"kind": "ConfigMap", "metadata": {"name": "a"}, "echo": body})

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

            def log_message(self, *args):
                pass

        return Handler


def probe(version: str) -> tuple[subprocess.CompletedProcess, RecordingApiServer]:
    server = RecordingApiServer()
    path = os.pathsep.join([str(release(version)), str(REPO / "operator"), str(REPO / "stages")])
    try:
        result = subprocess.run([sys.executable, str(REPO / "tests" / "kube_client_probe.py"), server.url],
                                capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": path})
    finally:
        server.shutdown()
        server.server_close()
    return result, server


def test_the_client_works_with_the_declared_floor():
    floor = declared_floor()
    assert floor in WHEEL_SHA256, f"pin the sha256 of kubernetes {floor} here"
    result, server = probe(floor)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out["version"] == floor
    assert out["missing"] is None and out["deleted"] is True and out["listed"] == ["a"]
    assert out["created"]["data"] == {"k": "v"}
    assert out["patched"]["echo"] == {"data": {"k": None, "j": "w"}}
    assert out["refused"] == {"status": 422, "permanent": True,
                              "message": 'Service "bad.name" is invalid: metadata.name: Invalid value'}
    by_method = {r["method"]: r for r in server.requests}
    assert by_method["PATCH"]["content_type"] == "application/merge-patch+json"
    assert server.requests[1]["method"] == "POST"
    assert server.requests[1]["path"] == "/api/v1/namespaces/ns/configmaps?fieldManager=zeroloop-operator"
    assert by_method["DELETE"]["body"]["propagationPolicy"] == "Background"
    assert all(r["authorization"] == "Bearer token-123" for r in server.requests)


def test_the_release_before_the_floor_lacks_what_the_client_uses():
    """So the floor is the real one (36.x also needs `six`, which 37 dropped, so it is read, not run)."""
    api_client = (release(BEFORE_FLOOR) / "kubernetes" / "client" / "api_client.py").read_text()
    assert "def call_api(" in api_client and "def param_serialize(" not in api_client
    floor_client = (release(declared_floor()) / "kubernetes" / "client" / "api_client.py").read_text()
    assert "def param_serialize(" in floor_client
