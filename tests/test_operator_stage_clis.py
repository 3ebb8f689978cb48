"""The operator's stage command lines and config files are accepted by the stages themselves."""

from __future__ import annotations

import importlib

import pytest

from zeroloop import cli, cliflags
from zeroloop.gatekeeper import config as gkconfig
from zeroloop.selfplay import config as spconfig
from zeroloop_operator import naming, podtemplates, spec, stageconfig

VARIANTS = {
    "default": {},
    "tuned": {"runNamePrefix": "kg", "boardSizes": [9, 13], "komi": 6.5,
              "shuffler": {"minRows": 1000, "maxRows": 90000, "keepTargetRows": 5000, "taperWindowScale": 2000},
              "gatekeeper": {"games": 30, "visits": 20, "sprt": {"enabled": True}}},
    "no-gating": {"gatekeeper": {"enabled": False}},
}


def parser_for(command: str):
    module = importlib.import_module(cli.COMMANDS[command][0])
    parser = cliflags.ArgumentParser(prog=f"zeroloop {command}")
    module.add_arguments(parser)
    return parser


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_component_command_parses(variant, tmp_path):
    s = spec.parse({"image": "zeroloop:test", "storage": {"existingClaim": "c"}, **VARIANTS[variant]}, "demo")
    for component in naming.COMPONENTS:
        argv = podtemplates.stage_args(component, "demo", s)
        args = parser_for(argv[0]).parse_args(argv[1:])  # SystemExit (a failure) on any unknown flag
        assert args.log_format == "json" and args.metrics_port == s.metrics.port
    files = stageconfig.files(s)
    for name, load in ((stageconfig.SELFPLAY_FILE, spconfig.load), (stageconfig.GATEKEEPER_FILE, gkconfig.load)):
        (tmp_path / name).write_text(files[name])
        load(str(tmp_path / name))  # ConfigError on an unknown key or a bad value
