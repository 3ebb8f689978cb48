"""The stage config files a run's ConfigMap carries, and their checksums.

Self-play and the gatekeeper read a config file (``--config FILE``; the
stages' loader takes TOML or YAML and rejects unknown keys). The operator
writes them as YAML, generated from the typed spec with pyyaml, so there is
no hand-written serializer. Each file is mapped from the spec by one table
below: the only place where CRD field names meet stage config keys.

The checksum of the files a component mounts goes into its pod template's
``zeroloop.io/config-checksum`` annotation, so a config change rolls exactly
the pods that read it (the trainer and shuffler take flags, not files).
"""

from __future__ import annotations

import hashlib
from typing import Any

import yaml

from zeroloop_operator.spec import RunSpec

SELFPLAY_FILE = "selfplay.yaml"
GATEKEEPER_FILE = "gatekeeper.yaml"
CONFIG_DIR = "/etc/zeroloop"


def _boards(spec: RunSpec) -> dict[str, Any]:
    """Board sizes with their weights (the stages want both lists, equally long)."""
    weights = spec.board_size_weights or [1.0] * len(spec.board_sizes)
    return {"board_sizes": list(spec.board_sizes), "board_size_weights": [float(w) for w in weights]}


def stop_search_seconds(grace_seconds: int) -> float:
    """How long a stopping self-play pod lets its searches finish, given its grace period."""
    return round(min(5.0, grace_seconds / 3), 1)


def selfplay_config(spec: RunSpec) -> dict[str, Any]:
    """Self-play config keys (zeroloop.selfplay.config) from the spec, then spec.selfplay.config."""
    sp = spec.selfplay
    out: dict[str, Any] = {
        "num_games": sp.games_in_parallel,
        **_boards(spec),
        # Rows are padded to the largest board: the trainer's net size.
        "data_board_len": max(spec.board_sizes),
        "komi_mean": spec.komi,
        "max_visits": sp.visits,
        "cheap_visits": sp.cheap_visits,
        "full_search_prob": sp.full_search_prob,
        # A stop must fit the pod's grace period: searches in progress get at most a third of it
        # to reach their moves (5 s at most); saving the games after them takes about a second.
        "inprogress_stop_search_seconds": stop_search_seconds(sp.termination_grace_period_seconds),
        # GPUs evaluate in fp16 (tensor cores), as KataGo does; spec.selfplay.config may say fp32.
        "nn_precision": "fp16" if sp.gpus_per_pod > 0 else "fp32",
    }
    out.update(sp.config)
    return out


def gatekeeper_config(spec: RunSpec) -> dict[str, Any]:
    """Gatekeeper config keys (match size, search, SPRT) from the spec."""
    gk = spec.gatekeeper
    return {
        **_boards(spec),
        "komi_mean": spec.komi,
        "max_visits": gk.visits,
        "num_games_per_gating": gk.games,
        "sprt": gk.sprt.enabled,
        "sprt_elo0": gk.sprt.elo0,
        "sprt_elo1": gk.sprt.elo1,
        "sprt_alpha": gk.sprt.alpha,
        "sprt_beta": gk.sprt.beta,
        "nn_precision": "fp16" if gk.gpus > 0 else "fp32",
    }


def render(config: dict[str, Any]) -> str:
    """A config as YAML text (key order kept, stable across calls)."""
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None)


def files(spec: RunSpec) -> dict[str, str]:
    """ConfigMap data: file name -> content."""
    return {
        SELFPLAY_FILE: render(selfplay_config(spec)),
        GATEKEEPER_FILE: render(gatekeeper_config(spec)),
    }


def checksum(data: dict[str, str], names: tuple[str, ...]) -> str:
    """sha256 over the named files (name and content), for the rollout annotation."""
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(name.encode() + b"\0" + data.get(name, "").encode() + b"\0")
    return h.hexdigest()
