"""The documentation as tests read it: the README and every page under docs/.

Commands and manifests shown to users are tested from here (test_readme,
test_crd, e2e), so a block moved from one page to another stays tested.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]


def code_blocks(*languages: str, pages: list[Path] | None = None) -> list[str]:
    """The fenced code blocks in these languages, page by page, in order."""
    out = []
    for page in pages or PAGES:
        for lang, body in re.findall(r"```(\w*)\n(.*?)\n```", page.read_text(), flags=re.S):
            if lang in languages:
                out.append(body)
    return out


def shell_commands() -> list[str]:
    """Every command line of the sh and bash blocks, continuation lines joined, comments cut."""
    out = []
    for block in code_blocks("sh", "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #", 1)[0].strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def training_runs() -> list[dict]:
    """Every TrainingRun in the YAML blocks of the docs."""
    out = []
    for block in code_blocks("yaml"):
        for doc in yaml.safe_load_all(block):
            if isinstance(doc, dict) and doc.get("kind") == "TrainingRun":
                out.append(doc)
    return out
