"""Prometheus metrics: the one list of names every stage and dashboard uses.

Stages create their metrics through ``metric(name)`` so that a name can only
be one declared here; the Grafana dashboards in the Helm chart query these
names, and a test holds the two together. Names follow Prometheus practice:
``zeroloop_<stage>_<what>``, ``_total`` for counters, base units. Labels are
few; run, model and pod identity come from the scrape (pod labels), not from
code.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import prometheus_client as prom

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # counter | gauge | histogram | info
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None


_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_LENGTH_BUCKETS = (10, 20, 40, 60, 80, 100, 150, 200, 300, 400, 600, 1000)

CATALOGUE: tuple[MetricSpec, ...] = (
    # selfplay
    MetricSpec("zeroloop_selfplay_games_total", "counter", "Self-play games finished and written"),
    MetricSpec("zeroloop_selfplay_rows_total", "counter", "Training rows written"),
    MetricSpec("zeroloop_selfplay_files_total", "counter", "tdata files written"),
    MetricSpec("zeroloop_selfplay_nn_evals_total", "counter", "Neural-net evaluations (positions)"),
    MetricSpec("zeroloop_selfplay_visits_total", "counter", "MCTS visits (playouts)"),
    MetricSpec("zeroloop_selfplay_batch_size", "histogram", "Positions per batched forward pass",
               buckets=_BATCH_BUCKETS),
    MetricSpec("zeroloop_selfplay_batch_fill_ratio", "gauge",
               "Mean batch size over the configured maximum, recent batches"),
    MetricSpec("zeroloop_selfplay_game_length_moves", "histogram", "Moves per finished game",
               buckets=_LENGTH_BUCKETS),
    MetricSpec("zeroloop_selfplay_games_in_progress", "gauge", "Games being played now"),
    MetricSpec("zeroloop_selfplay_model", "info", "Model self-play is using now"),
    MetricSpec("zeroloop_selfplay_games_saved_total", "counter", "Games in progress saved for later"),
    MetricSpec("zeroloop_selfplay_games_adopted_total", "counter", "Saved games adopted and resumed"),
    MetricSpec("zeroloop_selfplay_games_discarded_total", "counter",
               "Saved games discarded (too old, unreadable or incompatible)"),
    # shuffle
    MetricSpec("zeroloop_shuffle_runs_total", "counter", "Shuffles completed"),
    MetricSpec("zeroloop_shuffle_rows_total", "counter", "Rows written by completed shuffles"),
    MetricSpec("zeroloop_shuffle_window_rows", "gauge", "Rows in the last shuffle window"),
    MetricSpec("zeroloop_shuffle_data_rows", "gauge", "Total data rows seen by the last shuffle"),
    MetricSpec("zeroloop_shuffle_files_skipped_total", "counter", "Corrupt or unreadable input files skipped"),
    MetricSpec("zeroloop_shuffle_files_quarantined_total", "counter",
               "Corrupt input files moved to BASEDIR/quarantine"),
    MetricSpec("zeroloop_shuffle_duration_seconds", "gauge", "Wall time of the last shuffle"),
    # train
    MetricSpec("zeroloop_train_loss", "gauge", "Training loss per term, recent mean", labels=("term",)),
    MetricSpec("zeroloop_train_learning_rate", "gauge", "Current learning rate (per sample)"),
    MetricSpec("zeroloop_train_samples_total", "counter", "Samples trained"),
    MetricSpec("zeroloop_train_global_step_samples", "gauge", "Samples trained by the run so far (across restarts)"),
    MetricSpec("zeroloop_train_samples_per_second", "gauge", "Training throughput, recent"),
    MetricSpec("zeroloop_train_bucket_samples", "gauge", "Train bucket level (samples allowed)"),
    MetricSpec("zeroloop_train_data_rows", "gauge", "Total data rows the trainer has seen"),
    MetricSpec("zeroloop_train_exports_total", "counter", "Models exported by training"),
    # export
    MetricSpec("zeroloop_export_models_total", "counter", "Models exported to modelstobetested or models"),
    # gatekeeper
    MetricSpec("zeroloop_gatekeeper_games_total", "counter", "Gating games by candidate result",
               labels=("result",)),
    MetricSpec("zeroloop_gatekeeper_models_accepted_total", "counter", "Candidates accepted"),
    MetricSpec("zeroloop_gatekeeper_models_rejected_total", "counter", "Candidates rejected"),
    MetricSpec("zeroloop_gatekeeper_candidate_win_rate", "gauge", "Candidate score rate in the current match"),
    MetricSpec("zeroloop_ladder_elo", "gauge", "Elo of accepted models on the run's ladder", labels=("model",)),
)

NAMES = frozenset(spec.name for spec in CATALOGUE)
_BY_NAME = {spec.name: spec for spec in CATALOGUE}
_created: dict[str, object] = {}
_lock = threading.Lock()


def exported_series(spec: MetricSpec) -> list[str]:
    """The series names Prometheus will scrape for a metric."""
    if spec.kind == "histogram":
        return [spec.name + s for s in ("_bucket", "_sum", "_count")]
    if spec.kind == "info":
        return [spec.name + "_info"]
    return [spec.name]


def metric(name: str):
    """The process-wide metric object for a catalogued name (created once)."""
    spec = _BY_NAME.get(name)
    if spec is None:
        raise KeyError(f"metric {name!r} is not in zeroloop.metrics.CATALOGUE")
    with _lock:
        obj = _created.get(name)
        if obj is None:
            obj = _create(spec)
            _created[name] = obj
        return obj


def _create(spec: MetricSpec):
    # Counters are declared without the _total suffix: the client adds it.
    if spec.kind == "counter":
        return prom.Counter(spec.name.removesuffix("_total"), spec.help, spec.labels)
    if spec.kind == "gauge":
        return prom.Gauge(spec.name, spec.help, spec.labels)
    if spec.kind == "histogram":
        return prom.Histogram(spec.name, spec.help, spec.labels, buckets=spec.buckets)
    if spec.kind == "info":
        return prom.Info(spec.name, spec.help, spec.labels)
    raise ValueError(f"unknown metric kind {spec.kind}")


def serve(port: int | None) -> None:
    """Serve /metrics on port (None or 0: do nothing)."""
    if not port:
        return
    prom.start_http_server(port)
    log.info("serving Prometheus metrics on :%d/metrics", port)
