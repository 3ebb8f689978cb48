"""`zeroloop operator`: run the TrainingRun operator (in a cluster, or against a kubeconfig).

It logs in the way kubectl does (in-cluster service account, else the
kubeconfig), watches TrainingRuns in the given namespaces (default: all)
and serves kopf's liveness endpoint for the Deployment's probe. SIGTERM
stops it cleanly. ``kopf run -m zeroloop_operator`` runs the same handlers
with settings from ZEROLOOP_OPERATOR_* variables.
"""

from __future__ import annotations

import argparse
import logging

import kopf

from zeroloop import cliflags
from zeroloop.errors import UserError
from zeroloop_operator.config import ENV_PREFIX, OperatorConfig
from zeroloop_operator.handlers import register

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = OperatorConfig.from_env()
    scope = parser.add_argument_group("scope")
    cliflags.flag(scope, "--namespace", "-n", action="append", default=[], metavar="NS",
                  help="watch TrainingRuns in this namespace (repeatable; default: all namespaces)")
    cliflags.flag(scope, "--all-namespaces", "-A", action="store_true",
                  help="watch TrainingRuns in every namespace (needs cluster-wide RBAC)")
    timing = parser.add_argument_group(f"timing (defaults from {ENV_PREFIX}* variables)")
    cliflags.flag(timing, "--status-interval", type=float, default=env.status_interval,
                  help="seconds between status and progress refreshes of each run")
    cliflags.flag(timing, "--retry-delay", type=float, default=env.retry_delay,
                  help="seconds before retrying a reconcile after an API error")
    cliflags.flag(timing, "--api-timeout", type=float, default=env.api_timeout,
                  help="seconds per Kubernetes API request")
    cliflags.flag(timing, "--scrape-timeout", type=float, default=env.scrape_timeout,
                  help="seconds per metrics request to a pod")
    cliflags.flag(timing, "--workers", type=int, default=env.workers, help="handler threads")
    g = parser.add_argument_group("common")
    cliflags.flag(g, "--liveness-port", type=int, default=8080,
                  help="serve kopf's liveness probe on :PORT/healthz (0: off)")
    cliflags.flag(g, "--log-format", choices=("text", "json"), default="text", help="log line format")
    cliflags.flag(g, "--log-level", default="INFO", help="logging level")


def config_from(args: argparse.Namespace) -> OperatorConfig:
    values = {"status_interval": args.status_interval, "retry_delay": args.retry_delay,
              "api_timeout": args.api_timeout, "scrape_timeout": args.scrape_timeout, "workers": args.workers}
    for name, value in values.items():
        if value <= 0:
            raise UserError(f"--{name.replace('_', '-')} {value}: must be positive")
    return OperatorConfig(**values)


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
