"""The Dockerfiles, checked without a container engine (none runs here).

What can be checked offline: the final stages run as the user the operator's
pods and the chart expect, set the same cache paths the operator mounts,
install torch the README's way and no build tools, and the operator image
installs everything the operator imports and nothing heavier (proved by
importing the operator with torch, numpy and numba made unimportable).
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli_env
from zeroloop_operator import podtemplates

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "Dockerfile"
OPERATOR = REPO / "images" / "operator.Dockerfile"
BUILD_TOOLS = ("gcc", "g++", "make", "build-essential", "python3-dev", "libc6-dev", "cmake", "git")


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if line.strip().startswith("#") and not pending:
            continue
        pending += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            if pending.strip():
                word, _, rest = pending.strip().partition(" ")
                out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def final_stage(path: Path) -> list[tuple[str, str]]:
    steps = instructions(path)
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def env_of(steps: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for kind, args in steps:
        if kind == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


@pytest.mark.parametrize("path", [STAGE, OPERATOR], ids=["stage", "operator"])
def test_final_image_runs_as_the_pods_user_without_build_tools(path):
    final = final_stage(path)
    users = [args for kind, args in final if kind == "USER"]
    assert users == [f"{podtemplates.RUN_AS}:{podtemplates.RUN_AS}"]
    text = " ".join(args for kind, args in final if kind == "RUN")
    for tool in BUILD_TOOLS:
        assert not re.search(rf"install[^&;]*\b{re.escape(tool)}\b", text), f"{tool} in the final image"
    copies = [args for kind, args in final if kind == "COPY"]
    assert copies == ["--from=build /opt/zeroloop /opt/zeroloop"], "only the built environment is copied"
    build = " ".join(args for kind, args in instructions(path) if kind == "RUN")
    assert "pip uninstall -y pip setuptools wheel" in build
    assert [args for kind, args in final if kind == "ENTRYPOINT"] == ['["zeroloop"]']


def test_stage_image_caches_match_the_operators_scratch_mount():
    env = env_of(final_stage(STAGE))
    for key, value in podtemplates.SCRATCH_ENV.items():
        assert env.get(key) == value, key
    assert "/usr/games" in env["PATH"]  # GNU Go


def test_stage_image_installs_torch_as_the_readme_does():
    steps = instructions(STAGE)
    args = {a.split("=")[0].split()[0]: a for k, a in steps if k == "ARG"}
    assert "BASE_IMAGE=python:3.11-slim-bookworm" in args["BASE_IMAGE"]
    assert args["TORCH_INDEX_URL"].endswith("=https://download.pytorch.org/whl/cpu")
    assert args["TORCH_VERSION"] == "TORCH_VERSION=2.13.0"
    runs = [a for k, a in steps if k == "RUN"]
    torch_step = next(i for i, a in enumerate(runs) if '"torch==${TORCH_VERSION}"' in a)
    package_step = next(i for i, a in enumerate(runs) if "pip install --no-cache-dir ." in a)
    assert torch_step < package_step, "torch first, then the package"
    readme = REPO / "README.md"
    if readme.exists() and "torch==" in readme.read_text():
        assert "torch==2.13.0" in readme.read_text()


def third_party_imports(package_dir: Path) -> set[str]:
    names = set()
    for path in package_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("zeroloop", "zeroloop_operator")}


def test_operator_image_installs_what_the_operator_imports():
    distributions = {"kopf": "kopf", "kubernetes": "kubernetes", "prometheus_client": "prometheus-client",
                     "yaml": "pyyaml"}
    imported = third_party_imports(REPO / "operator" / "zeroloop_operator")
    assert imported <= set(distributions), imported - set(distributions)
    run = " ".join(a for k, a in instructions(OPERATOR) if k == "RUN")
    assert "pip install --no-cache-dir --no-deps ." in run
    for module in imported:
        assert f'"{distributions[module]}>=' in run, distributions[module]


def test_operator_imports_no_stage_stack():
    """The operator (and `zeroloop operator --help`) work where torch, numpy and numba are absent."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'numpy', 'numba'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import zeroloop_operator.run, zeroloop_operator.handlers\n"
        "from zeroloop.cli import main\n"
        "sys.exit(main(['operator', '--help']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--all-namespaces" in result.stdout
