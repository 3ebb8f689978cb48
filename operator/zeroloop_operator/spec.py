"""A TrainingRun's spec as typed, checked values: what the builders consume.

The API server validates a TrainingRun against the CRD's schema and CEL
rules and fills in its defaults before the operator sees it. ``parse`` turns
that dict into frozen dataclasses (camelCase keys become snake_case fields)
and then checks what a schema cannot: resource quantities that do not fit
together, GPUs requested in two places, config keys that would override a
typed field, train flags the trainer would refuse (``spec.trainer.flags``,
checked by the trainer's own settings), self-play config keys self-play
would refuse (``spec.selfplay.config``: each key checked by self-play's own
settings, then the whole config file the run renders, as the pods would
read it), a run name too long for its children's names. All problems are
collected and raised together as one ``SpecError``; the operator turns it
into a Degraded condition and a Warning Event, never a crash loop, and
changes no child.

The dataclass defaults repeat the CRD's defaults, so a spec that reaches the
operator without them (an older object, a mock API server) still means the
same run; a test holds the two sets of defaults together.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from zeroloop.train.options import extra_flag_problems
from zeroloop_operator import naming, stageconfig

GPU_RESOURCE = "nvidia.com/gpu"


class SpecError(ValueError):
    """A spec the schema accepted but the operator cannot run; lists every problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass(frozen=True)
class Pods:
    """What every component's pods share: compute resources and scheduling."""

    resources: dict = field(default_factory=dict)
    node_selector: dict = field(default_factory=dict)
    tolerations: list = field(default_factory=list)
    affinity: dict = field(default_factory=dict)
    priority_class_name: str | None = None


@dataclass(frozen=True)
class SelfplaySpec(Pods):
    replicas: int = 1
    gpus_per_pod: int = 1
    visits: int = 600
    cheap_visits: int = 100
    full_search_prob: float = 0.25
    games_in_parallel: int = 256
    config: dict = field(default_factory=dict)
    termination_grace_period_seconds: int = 60
    resources: dict = field(default_factory=lambda: {"requests": {"cpu": "3", "memory": "8Gi"}})


@dataclass(frozen=True)
class ShufflerSpec(Pods):
    min_rows: int = 250000
    max_rows: int | None = None
    keep_target_rows: int = 1200000
    expand_window_per_row: float = 0.4
    taper_window_exponent: float = 0.65
    taper_window_scale: int | None = None
    num_processes: int = 4
    katago_export: bool = False
    resources: dict = field(default_factory=lambda: {"requests": {"cpu": "2", "memory": "8Gi"}})


@dataclass(frozen=True)
class TrainerSpec(Pods):
    batch_size: int = 256
    lr_scale: float = 1.0
    lr_warmup_samples: int = 10000
    flags: dict = field(default_factory=dict)
    samples_per_epoch: int = 1000000
    max_train_bucket_per_new_data: float = 4.0
    max_train_bucket_size: int = 5000000
    gpus: int = 1
    termination_grace_period_seconds: int = 120
    resources: dict = field(default_factory=lambda: {"requests": {"cpu": "4", "memory": "16Gi"}})


@dataclass(frozen=True)
class SprtSpec:
    enabled: bool = False
    elo0: float = 0.0
    elo1: float = 35.0
    alpha: float = 0.05
    beta: float = 0.05


@dataclass(frozen=True)
class GatekeeperSpec(Pods):
    enabled: bool = True
    games: int = 200
    visits: int = 150
    required_candidate_win_prop: float = 0.5
    sprt: SprtSpec = field(default_factory=SprtSpec)
    gpus: int = 1
    resources: dict = field(default_factory=lambda: {"requests": {"cpu": "2", "memory": "4Gi"}})


@dataclass(frozen=True)
class StorageSpec:
    existing_claim: str | None = None
    storage_class_name: str | None = None
    size: str = "100Gi"
    access_modes: list = field(default_factory=lambda: ["ReadWriteMany"])
    deletion_policy: str = "Retain"
    set_ownership: bool = False


@dataclass(frozen=True)
class MetricsSpec:
    enabled: bool = True
    port: int = 9100


@dataclass(frozen=True)
class RunSpec:
    image: str = ""
    image_pull_policy: str = "IfNotPresent"
    image_pull_secrets: list = field(default_factory=list)
    model_kind: str = "b6c96"
    features: str = "zeroloop"
    run_name_prefix: str | None = None
    board_sizes: list = field(default_factory=lambda: [19])
    board_size_weights: list | None = None
    komi: float = 7.5
    suspend: bool = False
    selfplay: SelfplaySpec = field(default_factory=SelfplaySpec)
    shuffler: ShufflerSpec = field(default_factory=ShufflerSpec)
    trainer: TrainerSpec = field(default_factory=TrainerSpec)
    gatekeeper: GatekeeperSpec = field(default_factory=GatekeeperSpec)
    storage: StorageSpec = field(default_factory=StorageSpec)
    metrics: MetricsSpec = field(default_factory=MetricsSpec)


def parse(raw: dict[str, Any] | None, run_name: str) -> RunSpec:
    """The typed spec of a TrainingRun named run_name; SpecError lists every problem."""
    problems: list[str] = []
    spec = _build(RunSpec, raw or {}, "spec", problems)
    if not problems:
        problems += naming.name_problems(run_name)
        problems += _semantic_problems(spec)
        problems += stageconfig.selfplay_key_problems(spec)
    if not problems:  # each key is good: the file they make must be too
        problems += stageconfig.selfplay_file_problems(spec)
    if problems:
        raise SpecError(problems)
    return spec


def _build(cls: type, data: Any, where: str, problems: list[str]) -> Any:
    """A dataclass from a camelCase dict, defaults for absent keys, type-checked."""
    if not isinstance(data, dict):
        problems.append(f"{where} must be an object")
        return cls()
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        key = _camel(f.name)
        if key not in data or data[key] is None:
            continue
        value, hint = data[key], hints[f.name]
        if dataclasses.is_dataclass(hint):
            values[f.name] = _build(hint, value, f"{where}.{key}", problems)
        elif _type_ok(value, hint):
            values[f.name] = float(value) if _base(hint) is float else value
        else:
            problems.append(f"{where}.{key} = {value!r} has the wrong type")
    return cls(**values)


def _base(hint: Any) -> Any:
    """X for X | None, else the hint itself."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _type_ok(value: Any, hint: Any) -> bool:
    base = _base(hint)
    base = typing.get_origin(base) or base
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base is str:
        # Quantities may arrive as integers (int-or-string).
        return isinstance(value, (str, int)) and not isinstance(value, bool)
    return isinstance(value, base)


def _semantic_problems(spec: RunSpec) -> list[str]:
    problems: list[str] = []
    if not spec.image:
        problems.append("spec.image is required")
    if (spec.storage.existing_claim is None) == (spec.storage.storage_class_name is None):
        problems.append("set exactly one of spec.storage.existingClaim or spec.storage.storageClassName")
    try:
        parse_quantity(spec.storage.size)
    except ValueError:
        problems.append(f"spec.storage.size = {spec.storage.size!r} is not a quantity")
    for name in naming.COMPONENTS:
        problems += _resource_problems(f"spec.{name}.resources", getattr(spec, name).resources)
    problems += extra_flag_problems(spec.trainer.flags, "spec.trainer.flags.", "a field of spec.trainer or spec")
    if spec.board_size_weights is not None and len(spec.board_size_weights) != len(spec.board_sizes):
        problems.append("spec.boardSizeWeights needs one weight per entry of spec.boardSizes")
    if spec.board_size_weights is not None and not sum(spec.board_size_weights) > 0:
        problems.append("spec.boardSizeWeights must not all be zero")
    return problems


def _resource_problems(where: str, resources: dict) -> list[str]:
    """Quantities that do not parse, requests above limits, GPUs set here."""
    problems: list[str] = []
    parsed: dict[str, dict[str, Decimal]] = {}
    for kind in ("requests", "limits"):
        entries = resources.get(kind) or {}
        if not isinstance(entries, dict):
            problems.append(f"{where}.{kind} must be a map of quantities")
            continue
        parsed[kind] = {}
        for resource, quantity in entries.items():
            if resource == GPU_RESOURCE:
                problems.append(f"{where}.{kind}: set GPUs with gpusPerPod/gpus, not {GPU_RESOURCE}")
                continue
            try:
                parsed[kind][resource] = parse_quantity(quantity)
            except (ValueError, TypeError):
                problems.append(f"{where}.{kind}.{resource} = {quantity!r} is not a quantity")
    for resource, request in parsed.get("requests", {}).items():
        limit = parsed.get("limits", {}).get(resource)
        if limit is not None and request > limit:
            problems.append(f"{where}: the {resource} request {resources['requests'][resource]} exceeds "
                            f"its limit {resources['limits'][resource]}")
    return problems


def quantity_text(value: str | int) -> str:
    """A quantity as a string (the int-or-string the schema allows, normalised)."""
    return str(value)
