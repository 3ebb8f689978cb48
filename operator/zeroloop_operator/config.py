"""The operator's own settings: typed, from flags or ZEROLOOP_OPERATOR_* variables.

``kopf run -m zeroloop_operator`` has no place for our flags, so every
setting also reads an environment variable (the Helm chart sets them);
``zeroloop operator`` flags default to the same variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from zeroloop.errors import ConfigError

ENV_PREFIX = "ZEROLOOP_OPERATOR_"


@dataclass(frozen=True)
class OperatorConfig:
    status_interval: float = 15.0  # seconds between status/progress refreshes of a run
    retry_delay: float = 10.0  # seconds before the first retry after a temporary API error (doubles per retry, up to 300)
    conflict_delay: float = 30.0  # seconds before retrying when a child name is taken
    api_timeout: float = 30.0  # seconds per Kubernetes API request
    scrape_timeout: float = 3.0  # seconds per metrics request to a pod
    workers: int = 8  # threads for handlers (each run's handlers run one at a time)

    @property
    def scrape_deadline(self) -> float:
        """Seconds a round of metrics scrapes may take: most of the status interval, never less than one request."""
        return max(self.scrape_timeout, 0.6 * self.status_interval)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "OperatorConfig":
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _number(f.name, raw, int if f.type in (int, "int") else float)
        return cls(**values)


def _number(name: str, raw: str, kind: type) -> float | int:
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} must be positive")
    return value
