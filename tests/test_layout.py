"""The BASEDIR layout is one pure module, and no other code joins a run's paths by hand."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO, cli_env
from zeroloop import layout
from zeroloop.storage import BaseDir, open_location

NAMES = {layout.SELFPLAY, layout.TDATA, layout.SGFS, layout.INPROGRESS, layout.SHUFFLEDDATA, layout.TRAIN,
         layout.TOEXPORT, layout.MODELS, layout.MODELSTOBETESTED, layout.REJECTEDMODELS, layout.GATEKEEPERSGF,
         layout.QUARANTINE, layout.SUMMARIES, layout.LOGS, layout.LOOP, layout.LADDER, layout.REPORT}
SOURCES = [*sorted((REPO / "stages" / "zeroloop").rglob("*.py")),
           *sorted((REPO / "operator" / "zeroloop_operator").rglob("*.py")), *sorted((REPO / "tools").glob("*.py"))]


def test_layout_imports_nothing_but_the_standard_library():
    code = ("import sys; import zeroloop.layout; "
            "print(sorted(m for m in ('torch', 'numba', 'numpy', 'fsspec') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_basedir_names_the_layout_paths(tmp_path):
    base = BaseDir.open(str(tmp_path / "run"))
    root = base.root
    assert base.tdata("m") == layout.tdata(root, "m") == f"{root}/selfplay/m/tdata"
    assert base.sgfs("m") == f"{root}/selfplay/m/sgfs" and base.inprogress("m") == f"{root}/selfplay/m/inprogress"
    assert (base.models, base.modelstobetested, base.rejectedmodels, base.gatekeepersgf) == (
        f"{root}/models", f"{root}/modelstobetested", f"{root}/rejectedmodels", f"{root}/gatekeepersgf")
    assert base.train("b") == f"{root}/train/b" and base.toexport(True) == f"{root}/torchmodels_toexport_extra"
    assert layout.loop_settings(root) == f"{root}/loop/settings.json"
    assert layout.log(root, "train") == f"{root}/logs/train.log"
    assert layout.ladder_results(root) == f"{root}/ladder/ladder.json"
    assert layout.report_file(root) == f"{root}/report/report.md"
    assert layout.quarantine(root) == f"{root}/quarantine"
    # a self-play directory handed to a stage names the same places as BASEDIR does
    assert layout.tdata_file(base.selfplay, "m", "x") == f"{root}/selfplay/m/tdata/x.npz"


def test_open_location_takes_paths_and_urls(tmp_path):
    storage, path = open_location(str(tmp_path / "a" / ".." / "b") + "/")
    assert storage.local and path == str(tmp_path / "b")
    storage, path = open_location("memory://zl-layout/x/")
    assert not storage.local and path == "/zl-layout/x"


def _hand_joined(path: Path) -> list[str]:
    """Layout names joined by hand: a join(...) or base.path(...) with one as a literal, or an f-string /NAME."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in ("join", "path"):
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and arg.value in NAMES:
                        found.append(f"{path.name}:{node.lineno}: {arg.value!r} in {name}()")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            if isinstance(node.right, ast.Constant) and node.right.value in NAMES:
                found.append(f"{path.name}:{node.lineno}: / {node.right.value!r}")
        if isinstance(node, ast.JoinedStr):
            for part in node.values:
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    if any(part.value.startswith(f"/{n}") for n in NAMES):
                        found.append(f"{path.name}:{node.lineno}: f-string {part.value!r}")
    return found


def test_no_code_joins_the_layout_by_hand():
    offenders = [hit for src in SOURCES if src.name != "layout.py" for hit in _hand_joined(src)]
    assert offenders == []
