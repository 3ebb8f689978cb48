"""A TrainingRun as a run plan: its description, where its stages run, and their config files.

``describe`` is the only place where CRD field names meet the run plan
(``zeroloop.plan``): it turns the typed spec into the ``RunDescription``
that the local loop's settings also become, and ``placement`` says where a
component's stage runs (the volume's BASEDIR, the ConfigMap's mount, its
device, precision and metrics port). The stage arguments and config keys
come from the plan, so a cluster run and a local run of the same settings
start their stages alike (a test compares them). Self-play and the
gatekeeper read a config file (``--config FILE``; the stages' loader takes
TOML or YAML and rejects unknown keys); the operator writes them as YAML
with pyyaml, so there is no hand-written serializer.

The checksum of the files a component mounts goes into its pod template's
``zeroloop.io/config-checksum`` annotation, so a config change rolls exactly
the pods that read it (the trainer and shuffler take flags, not files).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

import yaml

from zeroloop import config as cfg
from zeroloop import plan
from zeroloop.selfplay.config import SelfplayConfig

if TYPE_CHECKING:  # spec.parse checks with this module: only the type is needed here
    from zeroloop_operator.spec import RunSpec

# Self-play config keys that typed spec fields set (plan.selfplay_config), with the field that sets each.
SELFPLAY_KEYS_FROM_FIELDS = {
    "num_games": "spec.selfplay.gamesInParallel", "board_sizes": "spec.boardSizes",
    "board_size_weights": "spec.boardSizeWeights", "data_board_len": "spec.boardSizes (the largest)",
    "komi_mean": "spec.komi", "max_visits": "spec.selfplay.visits", "cheap_visits": "spec.selfplay.cheapVisits",
    "full_search_prob": "spec.selfplay.fullSearchProb", "features": "spec.features",
}
SELFPLAY_KEYS = "spec.selfplay.config"
SELFPLAY_HELP = "`zeroloop selfplay --help-config`"
SELFPLAY_FILE = "selfplay.yaml"
GATEKEEPER_FILE = "gatekeeper.yaml"
CONFIG_DIR = "/etc/zeroloop"


def describe(spec: RunSpec, run: str = "") -> plan.RunDescription:
    """The run a TrainingRun named run describes (``run`` names its models unless runNamePrefix does)."""
    sp, sh, tr, gk = spec.selfplay, spec.shuffler, spec.trainer, spec.gatekeeper
    return plan.RunDescription(
        name_prefix=spec.run_name_prefix or run, model_kind=spec.model_kind, features=spec.features,
        board_sizes=tuple(spec.board_sizes),
        board_size_weights=tuple(spec.board_size_weights) if spec.board_size_weights else None, komi=spec.komi,
        visits=sp.visits, cheap_visits=sp.cheap_visits, full_search_prob=sp.full_search_prob,
        games_at_once=sp.games_in_parallel, selfplay_extra=dict(sp.config),
        gating=gk.enabled, gating_games=gk.games, gating_visits=gk.visits,
        gating_win_prop=gk.required_candidate_win_prop, sprt=gk.sprt.enabled, sprt_elo0=gk.sprt.elo0,
        sprt_elo1=gk.sprt.elo1, sprt_alpha=gk.sprt.alpha, sprt_beta=gk.sprt.beta,
        shuffle_min_rows=sh.min_rows, shuffle_max_rows=sh.max_rows, keep_target_rows=sh.keep_target_rows,
        expand_window_per_row=sh.expand_window_per_row, taper_window_exponent=sh.taper_window_exponent,
        taper_window_scale=sh.taper_window_scale, shuffle_processes=sh.num_processes,
        batch_size=tr.batch_size, samples_per_epoch=tr.samples_per_epoch,
        max_train_per_data=tr.max_train_bucket_per_new_data, max_train_bucket_size=tr.max_train_bucket_size,
        lr_scale=tr.lr_scale, lr_warmup_samples=tr.lr_warmup_samples, train_extra=dict(tr.flags),
        katago_export=sh.katago_export)


def stop_search_seconds(grace_seconds: int) -> float:
    """How long a stopping self-play pod lets its searches finish, given its grace period."""
    return round(min(5.0, grace_seconds / 3), 1)


def _device(gpus: int) -> str:
    return "cuda" if gpus > 0 else "cpu"


def placement(spec: RunSpec, basedir: str = "") -> plan.Placement:
    """Where a run's stages run on the cluster: BASEDIR on the volume, configs from the ConfigMap."""
    sp, tr, gk = spec.selfplay, spec.trainer, spec.gatekeeper
    return plan.Placement(
        basedir=basedir, config_dir=CONFIG_DIR, config_suffix=".yaml",
        devices={"selfplay": _device(sp.gpus_per_pod), "train": _device(tr.gpus), "gatekeeper": _device(gk.gpus)},
        metrics_port=spec.metrics.port if spec.metrics.enabled else None, log_format="json",
        # GPUs evaluate in fp16 (tensor cores), as KataGo does; spec.selfplay.config may say fp32.
        precision={"selfplay": "fp16" if sp.gpus_per_pod > 0 else "fp32",
                   "gatekeeper": "fp16" if gk.gpus > 0 else "fp32"},
        # A stop must fit the pod's grace period: searches in progress get at most a third of it
        # to reach their moves (5 s at most); saving the games after them takes about a second.
        stop_search_seconds=stop_search_seconds(sp.termination_grace_period_seconds))


def selfplay_config(spec: RunSpec) -> dict[str, Any]:
    """Self-play config keys (zeroloop.selfplay.config) from the spec, then spec.selfplay.config."""
    return plan.selfplay_config(describe(spec), placement(spec))


def gatekeeper_config(spec: RunSpec) -> dict[str, Any]:
    """Gatekeeper config keys (match size, search, SPRT) from the spec."""
    return plan.gatekeeper_config(describe(spec), placement(spec))


def selfplay_key_problems(spec: RunSpec) -> list[str]:
    """Why self-play would refuse a key of spec.selfplay.config, each key named: one a typed field sets,
    one self-play does not know, or a value of the wrong type or out of its range."""
    keys = dict(spec.selfplay.config)
    managed = [f"{SELFPLAY_KEYS}.{k} is set by {SELFPLAY_KEYS_FROM_FIELDS[k]}; set it there"
               for k in sorted(keys) if k in SELFPLAY_KEYS_FROM_FIELDS]
    others = {k: v for k, v in keys.items() if k not in SELFPLAY_KEYS_FROM_FIELDS}
    return managed + cfg.problems(SelfplayConfig, others, SELFPLAY_KEYS, SELFPLAY_HELP, across=False)


def selfplay_file_problems(spec: RunSpec) -> list[str]:
    """Why self-play would refuse the whole config file the run renders (checks across keys, such as
    reduced_visits_min against max_visits), naming the spec field behind each key that one sets."""
    found = cfg.problems(SelfplayConfig, selfplay_config(spec), SELFPLAY_KEYS, SELFPLAY_HELP)
    return [_with_fields(problem) for problem in found]


def _with_fields(problem: str) -> str:
    named = [f"{key} is {field}" for key, field in SELFPLAY_KEYS_FROM_FIELDS.items()
             if re.search(rf"\b{key}\b", problem)]
    return f"{problem} ({'; '.join(named)})" if named else problem


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
