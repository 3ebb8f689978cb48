"""zeroloop's Kubernetes operator: TrainingRun resources become running training loops.

Run it as ``zeroloop operator`` (flags) or ``kopf run -m zeroloop_operator``
(settings from ZEROLOOP_OPERATOR_* variables). Importing this package
registers the handlers in kopf's default registry for the latter;
``zeroloop operator`` builds its own registry from its flags.

A run's progress (latest model, games, rows, samples, last gating result)
comes from its pods' Prometheus metrics, not from files on its volume: the
operator serves many runs and mounts none of their volumes (see
``progress``).

Layers, lowest first: ``naming`` and ``spec`` (what a run is), the pure
builders ``stageconfig``, ``podtemplates``, ``children``, ``runstatus`` and
``progress`` (spec in, manifests and status out), the I/O pieces ``kube``,
``scrape`` and ``reconcile``, and on top the kopf glue in ``handlers`` and
the command in ``run``.
"""

import kopf

from zeroloop.errors import ConfigError
from zeroloop_operator.config import OperatorConfig
from zeroloop_operator.handlers import register

try:
    _config = OperatorConfig.from_env()
except ConfigError as e:  # a bad variable: one line, not a traceback from deep in an import
    raise SystemExit(f"zeroloop operator: error: {e}") from None
register(kopf.get_default_registry(), _config)
