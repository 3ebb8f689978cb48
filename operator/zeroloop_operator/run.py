"""`zeroloop operator`: run the TrainingRun operator (in a cluster, or against a kubeconfig).

``zeroloop operator render RUN.yaml`` instead prints every object the
operator would create for the runs in a file, without a cluster
(``zeroloop_operator.render``).

It logs in the way kubectl does (in-cluster service account, else the
kubeconfig), watches TrainingRuns in the given namespaces (default: all)
and serves kopf's liveness endpoint for the Deployment's probe. SIGTERM
stops it cleanly. ``kopf run -m zeroloop_operator`` runs the same handlers
with settings from ZEROLOOP_OPERATOR_* variables.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

import kopf

from zeroloop import cliflags
from zeroloop.errors import UserError
from zeroloop_operator.config import ENV_PREFIX, OperatorConfig
from zeroloop_operator.handlers import register

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = OperatorConfig()
    scope = parser.add_argument_group("scope")
    cliflags.flag(scope, "--namespace", "-n", action="append", default=[], metavar="NS",
                  help="watch TrainingRuns in this namespace (repeatable; default: all namespaces)")
    cliflags.flag(scope, "--all-namespaces", "-A", action="store_true",
                  help="watch TrainingRuns in every namespace (needs cluster-wide RBAC)")
    timing = parser.add_argument_group(
        f"timing (unset flags come from {ENV_PREFIX}<NAME> variables, e.g. {ENV_PREFIX}STATUS_INTERVAL, "
        "else the default shown)")
    for name, help_text in (("status_interval", "seconds between status and progress refreshes of each run"),
                            ("retry_delay", "seconds before the first retry of a reconcile after a temporary "
                                            "API error (doubles on each retry, up to 300)"),
                            ("api_timeout", "seconds per Kubernetes API request"),
                            ("scrape_timeout", "seconds per metrics request to a pod"),
                            ("workers", "handler threads")):
        default = getattr(defaults, name)
        cliflags.flag(timing, "--" + name.replace("_", "-"), type=type(default), default=None,
                      help=f"{help_text} (default {default})")
    g = parser.add_argument_group("common")
    cliflags.flag(g, "--liveness-port", type=int, default=8080,
                  help="serve kopf's liveness probe on :PORT/healthz (0: off)")
    cliflags.flag(g, "--log-format", choices=("text", "json"), default="text", help="log line format")
    cliflags.flag(g, "--log-level", default="INFO", help="logging level")


def config_from(args: argparse.Namespace) -> OperatorConfig:
    """Flags over ZEROLOOP_OPERATOR_* variables over defaults."""
    config = OperatorConfig.from_env()
    overrides = {}
    for f in dataclasses.fields(OperatorConfig):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        if value <= 0:
            raise UserError(f"--{f.name.replace('_', '-')} {value}: must be positive")
        overrides[f.name] = value
    return dataclasses.replace(config, **overrides)


def run(args: argparse.Namespace) -> int:
    if args.namespace and args.all_namespaces:
        raise UserError("use --namespace or --all-namespaces, not both")
    if not 0 <= args.liveness_port <= 65535:
        raise UserError(f"--liveness-port {args.liveness_port}: not a port")
    config = config_from(args)
    registry = kopf.OperatorRegistry()
    register(registry, config)
    clusterwide = not args.namespace
    log.info("zeroloop operator watching %s", "all namespaces" if clusterwide else ", ".join(args.namespace))
    liveness = f"http://0.0.0.0:{args.liveness_port}/healthz" if args.liveness_port else None
    kopf.run(registry=registry, clusterwide=clusterwide, namespaces=args.namespace,
             liveness_endpoint=liveness, standalone=True)
    return 0
