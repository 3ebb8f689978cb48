"""Reading a run's pods' metrics endpoints (the I/O half of ``progress``).

The run's pods are listed by the ``zeroloop.io/run`` label and each running
pod with an IP is asked for ``http://IP:PORT/metrics`` with a short timeout,
a few at a time. A pod that does not answer is skipped this round (its
counters stay remembered) and named in the round's ``failures``; the caller
turns them into the run's MetricsReadable condition. This needs the network
to allow the operator's namespace to reach the run's metrics port: a
NetworkPolicy that blocks it would freeze the run's progress, so the first
failure of each pod is logged at WARNING (once, until it answers again), not
hidden at DEBUG.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from zeroloop_operator import naming, progress
from zeroloop_operator.kube import Kube

log = logging.getLogger(__name__)


def metrics_url(pod_ip: str, port: int) -> str:
    host = f"[{pod_ip}]" if ":" in pod_ip else pod_ip
    return f"http://{host}:{port}/metrics"


@dataclass
class Scrape:
    """One round: the metrics of the pods that answered, and why the others did not."""

    metrics: list[progress.PodMetrics] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # pod name -> reason
    targets: int = 0  # running pods with an IP that were asked


class FailureLog:
    """Remembers which pods' scrapes are failing, so each failure streak is logged once."""

    def __init__(self) -> None:
        self._failing: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def newly_failing(self, run_key: str, failures: dict[str, str]) -> list[str]:
        """Pods of run_key failing now that were not failing in its last round."""
        with self._lock:
            before = self._failing.pop(run_key, set())
            if failures:
                self._failing[run_key] = set(failures)
            return sorted(set(failures) - before)


FAILURES = FailureLog()


def fetch(url: str, timeout: float) -> tuple[str | None, str]:
    """(the metrics text, "") or (None, why not)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http to pod IPs)
            return response.read().decode("utf-8", "replace"), ""
    except (OSError, urllib.error.URLError, ValueError) as e:
        cause = e.reason if isinstance(e, urllib.error.URLError) and isinstance(e.reason, Exception) else e
        return None, f"{type(cause).__name__}: {cause}"


def run_pods(kube: Kube, namespace: str, run: str) -> list[dict]:
    return kube.list("Pod", namespace, {naming.LABEL_RUN: run})


def scrape_pods(pods: list[dict], port: int, timeout: float = 3.0, workers: int = 8,
                run_key: str = "", failure_log: FailureLog = FAILURES) -> Scrape:
    """Metrics of every running pod with an IP; pods that fail to answer are named in failures.

    The first failure of a pod (per run_key, until it answers again) is logged at WARNING.
    """
    targets = []
    for pod in pods:
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if status.get("phase") == "Running" and ip:
            meta = pod.get("metadata") or {}
            component = (meta.get("labels") or {}).get(naming.LABEL_COMPONENT, "")
            targets.append((meta.get("name", ""), component, metrics_url(ip, port)))
    out = Scrape(targets=len(targets))
    if targets:
        with ThreadPoolExecutor(max_workers=min(workers, len(targets))) as pool:
            answers = list(pool.map(lambda t: fetch(t[2], timeout), targets))
    else:
        answers = []
    urls = {}
    for (name, component, url), (text, why) in zip(targets, answers):
        urls[name] = url
        if text is None:
            out.failures[name] = why
            continue
        try:
            out.metrics.append(progress.PodMetrics(name, component, progress.parse(text)))
        except ValueError as e:
            out.failures[name] = f"unreadable metrics: {e}"
    for name in failure_log.newly_failing(run_key, out.failures):
        log.warning("cannot read the metrics of pod %s (%s): %s; the run's progress will not advance while "
                    "this lasts (does a NetworkPolicy block the operator from port %d?)",
                    name, urls[name], out.failures[name], port)
    return out
