"""`zeroloop operator render RUN.yaml`: every object the operator would create for a TrainingRun, offline.

Built by the same pure code the operator reconciles with (``spec.parse``,
``children.desired``, which take each stage's arguments and config files
from the run plan), without a cluster: review a run before applying it,
diff it in GitOps, or set its stage commands beside the ones a local loop
logs in ``BASEDIR/logs/<stage>.log``. The API server's defaults are the
spec's dataclass defaults (a test holds them to the CRD's), so an
abbreviated manifest renders as the operator would see it once admitted.
The owner's uid is a placeholder: the real one exists only after the run is
created.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from zeroloop.errors import UserError
from zeroloop_operator import children, naming
from zeroloop_operator import spec as runspec

PLACEHOLDER_UID = "00000000-0000-0000-0000-000000000000"


def runs_in(text: str, where: str) -> list[dict[str, Any]]:
    """The TrainingRuns of a YAML stream (other kinds are refused: they are not ours to render)."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise UserError(f"{where}: not valid YAML ({e})") from None
    if not docs:
        raise UserError(f"{where}: no TrainingRun in it")
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict) or doc.get("kind") != naming.KIND:
            kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
            raise UserError(f"{where}: document {i + 1} is a {kind}, not a {naming.KIND}")
        if not isinstance(doc.get("metadata"), dict) or not doc["metadata"].get("name"):
            raise UserError(f"{where}: document {i + 1} has no metadata.name")
    return docs


def render(run: dict[str, Any], namespace: str = "default") -> list[dict[str, Any]]:
    """The manifests the operator creates for one TrainingRun, in creation order."""
    meta = run["metadata"]
    try:
        spec = runspec.parse(run.get("spec"), meta["name"])
    except runspec.SpecError as e:
        raise UserError(f"TrainingRun {meta['name']}: {e}") from None
    ref = naming.RunRef(meta["name"], meta.get("namespace") or namespace, PLACEHOLDER_UID)
    return [child.manifest for child in children.desired(ref, spec)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", metavar="RUN.yaml", help="a file with one or more TrainingRuns ('-': stdin)")
    parser.add_argument("--namespace", "-n", default="default",
                        help="the namespace of runs whose metadata names none (as kubectl apply -n)")


def run(args: argparse.Namespace) -> int:
    where = "stdin" if args.manifest == "-" else args.manifest
    try:
        text = sys.stdin.read() if args.manifest == "-" else open(args.manifest).read()
    except OSError as e:
        raise UserError(f"{where}: {e.strerror or e}") from None
    objects = [obj for run in runs_in(text, where) for obj in render(run, args.namespace)]
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False))
    return 0
