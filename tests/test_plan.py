"""The run plan: pure, and the one source of every stage's arguments for the loop and the operator alike."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib

import pytest
import yaml

import crd_rules
import docs
from conftest import cli_env, run_cli
from zeroloop import plan
from zeroloop.loop import asyncmode
from zeroloop.loop import settings as S
from zeroloop.storage import BaseDir
from zeroloop_operator import naming, podtemplates, stageconfig
from zeroloop_operator import spec as runspec

# Flags and config keys that say where a stage runs, not what the run is: they may differ.
PLACEMENT_FLAGS = {"--device", "--threads", "--seed", "--metrics-port", "--log-format", "--data-poll-seconds",
                   "--shuffle-interval-seconds", "--export-poll-seconds", "--initial-checkpoint"}
PLACEMENT_KEYS = {"model_poll_seconds", "poll_seconds", "nn_precision", "inprogress_stop_search_seconds"}
COMPONENT_STAGE = {"selfplay": "selfplay-0", "shuffler": "shuffle-export-loop", "trainer": "train",
                   "gatekeeper": "gatekeeper"}


def _without_heavy_imports(body: str) -> str:
    """Run BODY in a fresh interpreter where importing torch, numpy, numba or fsspec fails; its stdout."""
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'numpy', 'numba', 'fsspec'):\n"
            "            raise ImportError('blocked: ' + name)\n"
            "sys.meta_path.insert(0, Block())\n" + body)
    out = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_the_plan_imports_without_torch_numba_or_numpy():
    assert _without_heavy_imports(
        "from zeroloop import plan\n"
        "run = plan.RunDescription('r')\n"
        "print(plan.async_stages(run, plan.Placement('/b', '/etc/zeroloop'))['train'][:2])\n") == "['train', '/b']"


def test_the_trainers_settings_import_without_torch_numba_or_numpy():
    """The operator checks spec.trainer.flags with the trainer's own settings, in an image without them."""
    assert _without_heavy_imports(
        "from zeroloop.train import options\n"
        "print(options.extra_flag_problems({'pos-len': 40, 'lookahead-alpha': 0.5}, '', 'x'))\n"
    ) == "['pos-len=40: pos_len = 40 is above the maximum 32']"


def test_the_operator_checks_selfplay_config_keys_without_torch_numba_or_numpy():
    """spec.selfplay.config is checked with self-play's own settings, in the operator's image without them."""
    assert _without_heavy_imports(
        "from zeroloop_operator import spec\n"
        "try:\n"
        "    spec.parse({'image': 'i', 'storage': {'storageClassName': 's'},\n"
        "                'selfplay': {'config': {'cpuct': -1, 'ko_rules': ['simple']}}}, 'r')\n"
        "except spec.SpecError as e:\n"
        "    print(e.problems)\n"
    ) == "['spec.selfplay.config: cpuct = -1.0 is below the minimum 0.0']"


def test_the_flags_the_plan_sets_are_refused_as_further_train_flags(tmp_path):
    """plan.TRAIN_FLAGS_SET names every flag train_args renders itself, so a run's own flags cannot clash."""
    s = S.LoopSettings("eq", device="cpu", threads=1, seed=7)
    place = dataclasses.replace(S.placement(BaseDir.open(str(tmp_path)), s), poll_seconds=5.0, metrics_port=9,
                                log_format="json")
    rendered = set()
    for synchronous in (True, False):
        run = S.describe(s).replace(features="katago-v7")
        rendered |= {w[2:] for w in plan.train_args(run, place, synchronous) if w.startswith("--")}
    assert rendered - set(plan.METHODS_TRAIN) == plan.TRAIN_FLAGS_SET  # the methods are defaults a run may change


def test_katago_methods_are_on_by_default_and_a_run_may_turn_each_off(tmp_path):
    s = S.LoopSettings("m", device="cpu", threads=1, seed=7)
    place = S.placement(BaseDir.open(str(tmp_path)), s)
    run = S.describe(s)
    config = plan.selfplay_config(run, place)
    assert {k: config[k] for k in plan.METHODS_SELFPLAY} == plan.METHODS_SELFPLAY
    args = plan.train_args(run, place, synchronous=True)
    for flag, value in plan.METHODS_TRAIN.items():
        assert args[args.index(f"--{flag}") + 1] == str(value)
    off = run.replace(selfplay_extra={**run.selfplay_extra, "fresh_tree_full_search": False},
                      train_extra={"soft-policy-weight": 0.0, "optimizer": "adamw"})
    assert plan.selfplay_config(off, place)["fresh_tree_full_search"] is False
    args = plan.train_args(off, place, synchronous=True)
    assert args.count("--soft-policy-weight") == 1 and args[args.index("--soft-policy-weight") + 1] == "0.0"
    assert "--weight-decay-mode" not in args  # KataGo's decay scaling is for SGD only


def test_the_operator_refuses_train_flags_the_trainer_would_refuse():
    spec = the_same_training_run()
    raw = {**dataclasses.asdict(spec)}
    with pytest.raises(runspec.SpecError) as e:
        runspec.parse({"image": "i", "storage": {"storageClassName": "s"},
                       "trainer": {"flags": {"batch-size": 3, "lookahead-k": 0, "no-such": 1, "use-fp16": False}}},
                      "eq")
    assert e.value.problems == ["spec.trainer.flags.batch-size: set by a field of spec.trainer or spec itself",
                                "spec.trainer.flags.lookahead-k=0: lookahead_k = 0 is below the minimum 1",
                                "spec.trainer.flags.no-such: no such train flag",
                                "spec.trainer.flags.use-fp16=False: a switch takes true"]
    assert raw["trainer"]["flags"] == {"lookahead-alpha": 0.5, "use-bf16": True}


def loop_settings() -> S.LoopSettings:
    return S.LoopSettings("eq", model_kind="b2c32", features="katago-v7", board_size=7, komi=9.0, visits=64,
                          cheap_visits=16, games_at_once=64, gating_games=40, gating_visits=48, gating_win_prop=0.55,
                          shuffle_min_rows=10_000, keep_target_rows=60_000, taper_window_scale=20_000,
                          batch_size=128, samples_per_epoch=5_000, max_train_per_data=3.0,
                          max_train_samples_per_cycle=100_000, lr_scale=0.5, lr_warmup_samples=3_000,
                          train_flags={"lookahead-alpha": 0.5, "use-bf16": True}, device="cpu", threads=1, seed=7)


def the_same_training_run() -> runspec.RunSpec:
    """A TrainingRun that asks for what loop_settings() asks for, in the CRD's words."""
    obj = {"apiVersion": "zeroloop.io/v1alpha1", "kind": "TrainingRun", "metadata": {"name": "eq"},
           "spec": {"image": "zeroloop:test", "storage": {"storageClassName": "standard"},
                    "modelKind": "b2c32", "features": "katago-v7", "boardSizes": [7], "komi": 9.0,
                    "selfplay": {"gpusPerPod": 0, "visits": 64, "cheapVisits": 16, "gamesInParallel": 64,
                                 "config": dict(S.LOCAL_SELFPLAY)},
                    "shuffler": {"minRows": 10_000, "keepTargetRows": 60_000, "taperWindowScale": 20_000,
                                 "numProcesses": 1},
                    "trainer": {"gpus": 0, "batchSize": 128, "samplesPerEpoch": 5_000,
                                "maxTrainBucketPerNewData": 3.0, "maxTrainBucketSize": 100_000, "lrScale": 0.5,
                                "lrWarmupSamples": 3_000, "flags": {"lookahead-alpha": 0.5, "use-bf16": True}},
                    "gatekeeper": {"gpus": 0, "games": 40, "visits": 48, "requiredCandidateWinProp": 0.55}}}
    defaulted, errors = crd_rules.admit(obj)
    assert errors == []
    return runspec.parse(defaulted["spec"], "eq")


def normalized(argv: list[str], basedir: str, config_dir: str) -> list[str]:
    """The arguments with BASEDIR and the config directory named alike and placement flags dropped."""
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
            continue
        if word in PLACEMENT_FLAGS:
            skip = True
            continue
        word = word.replace(config_dir, "CONFIG").replace(basedir, "BASEDIR")
        out.append(word.rsplit(".", 1)[0] if word.startswith("CONFIG/") else word)
    return out


def test_the_loop_and_the_operator_start_every_stage_alike(tmp_path):
    s, spec = loop_settings(), the_same_training_run()
    base = BaseDir.open(str(tmp_path / "eq"))
    local = asyncmode.stage_commands(base, s, selfplay_processes=1)
    assert all(argv[:3] == [sys.executable, "-m", "zeroloop"] for argv in local.values())
    config_dir = f"{base.root}/loop"
    for component in naming.COMPONENTS:
        cluster = podtemplates.stage_args(component, "eq", spec)
        ours = normalized(local[COMPONENT_STAGE[component]][3:], base.root, config_dir)
        theirs = normalized(cluster, podtemplates.basedir("eq"), stageconfig.CONFIG_DIR)
        assert ours == theirs, component
    # the trainer's warm-up, weight averaging and checkpoint interval reach the cluster too
    train = podtemplates.stage_args("trainer", "eq", spec)
    for flag, value in (("--lr-warmup-samples", "3000"), ("--swa-period-samples", "1250"),
                        ("--checkpoint-interval-seconds", "120"), ("--print-every-batches", "9")):
        assert train[train.index(flag) + 1] == value, flag
    assert train[train.index("--lookahead-alpha") + 1] == "0.5" and "--use-bf16" in train  # trainer.flags
    assert train[train.index("--features") + 1] == "katago-v7"  # spec.features


def test_the_loop_and_the_operator_write_the_same_stage_configs(tmp_path):
    s, spec = loop_settings(), the_same_training_run()
    base = BaseDir.open(str(tmp_path / "eq"))
    base.storage.makedirs(f"{base.root}/loop")
    local = {path.rsplit("/", 1)[1].split(".")[0]: tomllib.loads(open(path).read())
             for path in S.write_stage_configs(base, s)}
    cluster = {name.split(".")[0]: yaml.safe_load(text) for name, text in stageconfig.files(spec).items()}
    assert set(local) == set(cluster) == {"selfplay", "gatekeeper"}
    for stage in local:
        assert ({k: v for k, v in local[stage].items() if k not in PLACEMENT_KEYS}
                == {k: v for k, v in cluster[stage].items() if k not in PLACEMENT_KEYS}), stage
    assert local["selfplay"]["model_poll_seconds"] == s.poll_seconds
    assert cluster["selfplay"]["nn_precision"] == "fp32" and "inprogress_stop_search_seconds" in cluster["selfplay"]


def test_a_changed_setting_reaches_both(tmp_path):
    """The comparison has teeth: one setting changed on one side shows in that stage's arguments."""
    s = loop_settings()
    spec = the_same_training_run()
    base = BaseDir.open(str(tmp_path / "eq"))
    changed = S.train_argv(base, S.LoopSettings(**{**s.__dict__, "lr_warmup_samples": 5}), synchronous=False)
    cluster = podtemplates.stage_args("trainer", "eq", spec)
    assert (normalized(changed[3:], base.root, f"{base.root}/loop")
            != normalized(cluster, podtemplates.basedir("eq"), stageconfig.CONFIG_DIR))


def test_sync_stages_come_from_the_same_plan(tmp_path):
    s = loop_settings()
    base = BaseDir.open(str(tmp_path / "eq"))
    run, place = S.describe(s), S.placement(base, s)
    assert S.shuffle_argv(base, s)[3:] == plan.shuffle_args(run, place)
    train = S.train_argv(base, s, synchronous=True)
    assert "--quit-if-no-data" in train and "--stop-when-train-bucket-limited" in train
    assert train[train.index("--initial-checkpoint") + 1] == f"{base.root}/loop/init-model"
    assert S.export_argv(base, s)[3:] == ["export", base.root, "--name-prefix", "eq", "--gating"]


@pytest.fixture
def tiny_yaml(tmp_path) -> str:
    (run,) = [r for r in docs.training_runs() if r["metadata"]["name"] == "tiny"]
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(run))
    return str(path)


def test_operator_render_prints_what_the_operator_creates(tiny_yaml):
    r = run_cli("operator", "render", tiny_yaml, "-n", "go", timeout=120)
    assert r.returncode == 0, r.stderr
    objects = list(yaml.safe_load_all(r.stdout))
    kinds = [o["kind"] for o in objects]
    assert kinds.count("Deployment") == 4 and "ConfigMap" in kinds and "PersistentVolumeClaim" in kinds
    assert {o["metadata"]["namespace"] for o in objects} == {"go"}
    trainer = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "tiny-trainer")
    (container,) = trainer["spec"]["template"]["spec"]["containers"]
    admitted, _ = crd_rules.admit(yaml.safe_load(open(tiny_yaml)))
    assert container["args"] == podtemplates.stage_args("trainer", "tiny", runspec.parse(admitted["spec"], "tiny"))
    assert container["args"][container["args"].index("--lr-warmup-samples") + 1] == "10000"  # the CRD's default


@pytest.mark.parametrize("text, message", [
    ("kind: Deployment\nmetadata: {name: x}\n", "document 1 is a Deployment, not a TrainingRun"),
    ("kind: TrainingRun\nmetadata: {}\n", "no metadata.name"),
    ("a: [", "not valid YAML"),
    ("kind: TrainingRun\nmetadata: {name: x}\nspec: {storage: {storageClassName: s}}\n", "spec.image is required"),
])
def test_operator_render_refuses_what_it_cannot_render(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    r = run_cli("operator", "render", str(path), timeout=120)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
