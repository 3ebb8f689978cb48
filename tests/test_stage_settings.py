"""The trainer's and the shuffler's settings: one typed dataclass each, read from flags and a config file alike.

Each field of ``TrainOptions`` / ``ShuffleOptions`` is a flag and a config
key with its doc and range (``zeroloop.config``): an unknown key or a value
out of range is refused naming it (and the file), ``--help-config`` lists
every field with its doc, and the same values given as flags or in a file
make the same settings, flags winning over the file.
"""

from __future__ import annotations

import dataclasses

import pytest

from zeroloop import cli, cliflags
from zeroloop.errors import ConfigError, UserError
from zeroloop.shuffle import main as shuffle_main
from zeroloop.shuffle.options import ShuffleOptions
from zeroloop.train import main as train_main
from zeroloop.train.options import TrainOptions

STAGES = {"train": (train_main, TrainOptions), "shuffle": (shuffle_main, ShuffleOptions)}
REQUIRED = {"train": ["--name", "t", "--batch-size", "16", "--export-mode", "main"], "shuffle": []}


def parse(stage: str, *argv: str):
    module, _ = STAGES[stage]
    parser = cliflags.ArgumentParser(prog=f"zeroloop {stage}")
    module.add_arguments(parser)
    return module.options_from_args(parser.parse_args(["/nowhere", *argv]))


@pytest.mark.parametrize("stage", STAGES)
def test_an_unknown_key_is_refused_by_name(tmp_path, stage):
    path = tmp_path / "s.toml"
    path.write_text("seed = 1\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError) as e:
        parse(stage, "--config", str(path), *REQUIRED[stage])
    assert str(path) in str(e.value) and "unknown key learning_rate" in str(e.value)


@pytest.mark.parametrize("stage,key,value,flag_words,file_words", [
    ("train", "lr_scale", "0.0", "--lr-scale 0.0: must be positive", "lr_scale = 0.0 must be positive"),
    ("train", "lookahead_alpha", "1.5", "--lookahead-alpha 1.5: must be at most 1.0",
     "lookahead_alpha = 1.5 is above the maximum 1.0"),
    ("train", "pos_len", "40", "--pos-len 40: must be in 2..32", "pos_len = 40 is above the maximum 32"),
    ("shuffle", "approx_rows_per_out_file", "0", "--approx-rows-per-out-file 0: must be at least 1",
     "approx_rows_per_out_file = 0 is below the minimum 1"),
    ("shuffle", "taper_window_exponent", "-0.5", "--taper-window-exponent -0.5: must be positive",
     "taper_window_exponent = -0.5 must be positive"),
])
def test_a_value_out_of_range_is_refused_by_name(tmp_path, stage, key, value, flag_words, file_words):
    with pytest.raises(UserError) as e:
        parse(stage, f"--{key.replace('_', '-')}", value, *REQUIRED[stage])
    assert flag_words in str(e.value)
    path = tmp_path / "s.toml"
    path.write_text(f"{key} = {value}\n")
    with pytest.raises(UserError) as e:
        parse(stage, "--config", str(path), *REQUIRED[stage])
    assert str(path) in str(e.value) and file_words in str(e.value), str(e.value)


def test_a_wrong_type_and_a_check_across_keys_name_the_file(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("name: t\nbatch_size: 16\nexport_mode: main\nsamples_per_epoch: 8\n")
    with pytest.raises(ConfigError) as e:
        parse("train", "--config", str(path))
    assert str(e.value).startswith(str(path)) and "--samples-per-epoch 8 is less than one batch" in str(e.value)
    path.write_text("min_rows: many\n")
    with pytest.raises(ConfigError, match="min_rows = 'many' is not an integer"):
        parse("shuffle", "--config", str(path))
    with pytest.raises(ConfigError, match="missing --export-mode"):
        parse("train", "--name", "t", "--batch-size", "16")


@pytest.mark.parametrize("stage", STAGES)
def test_help_config_lists_every_field_with_its_doc(stage, capsys):
    _, cls = STAGES[stage]
    assert cli.main([stage, "--help-config"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    for f in dataclasses.fields(cls):
        doc = f.metadata["doc"]
        assert doc, f.name
        entry = next(i for i, line in enumerate(lines) if line in (f"# {f.name} = (required)", f"# {f.name} = "
                                                                   "(not set)") or line.startswith(f"{f.name} = "))
        assert lines[entry - 1] == f"# {doc}", f.name


# values of every kind (count, float, bool, choice, schedule, None-able), as flags and as a TOML file
TRAIN_FLAGS = ["--name", "k", "--batch-size", "32", "--export-mode", "extra", "--samples-per-epoch", "2e4",
               "--lr-scale", "0.5", "--no-repeat-files", "--optimizer", "adamw", "--lr-schedule",
               "(0,1.0),(10K,0.5)", "--weight-decay", "0.02", "--use-bf16", "--checkpoint-interval-seconds", "60"]
TRAIN_TOML = ('name = "k"\nbatch_size = 32\nexport_mode = "extra"\nsamples_per_epoch = 20000\nlr_scale = 0.5\n'
              'no_repeat_files = true\noptimizer = "adamw"\nlr_schedule = [[0, 1.0], [10000, 0.5]]\n'
              'weight_decay = 0.02\nuse_bf16 = true\ncheckpoint_interval_seconds = 60\n')
SHUFFLE_FLAGS = ["--min-rows", "5e3", "--keep-target-rows", "700", "--taper-window-exponent", "0.65",
                 "--num-processes", "2", "--batch-size", "64", "--scratch-dir", "/s", "--keep-shuffled-dirs", "1"]
SHUFFLE_TOML = ('min_rows = 5000\nkeep_target_rows = 700\ntaper_window_exponent = 0.65\nnum_processes = 2\n'
                'batch_size = 64\nscratch_dir = "/s"\nkeep_shuffled_dirs = 1\n')


@pytest.mark.parametrize("stage,flags,toml", [("train", TRAIN_FLAGS, TRAIN_TOML),
                                              ("shuffle", SHUFFLE_FLAGS, SHUFFLE_TOML)])
def test_flags_and_file_agree_and_flags_win(tmp_path, stage, flags, toml):
    path = tmp_path / "s.toml"
    path.write_text(toml)
    from_flags, from_file = parse(stage, *flags), parse(stage, "--config", str(path))
    assert from_flags == from_file
    _, cls = STAGES[stage]
    assert from_flags != cls(**{f.name: getattr(from_flags, f.name) for f in dataclasses.fields(cls)
                                if f.name in ("name", "batch_size", "export_mode")})  # not the defaults
    over = parse(stage, "--config", str(path), "--batch-size", "128", "--seed", "9")
    assert (over.batch_size, over.seed) == (128, 9)
    assert dataclasses.replace(over, batch_size=from_file.batch_size, seed=None) == from_file
