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

At scale (a run of hundreds of self-play pods) a round stays within its
budget: pods are asked ``workers`` at a time (``SCRAPE_WORKERS``), each
request gets ``timeout`` seconds in all (connect, headers and body; a pod
that answers a byte at a time is cut off too), a body larger than
``MAX_METRICS_BYTES`` is refused, and the round ends at its ``deadline``
whatever is still pending (those pods count as failures this round; their
threads end within their own timeout). Pods are asked in a new random order
each round: were the order fixed, an operator too slow to ask every pod
before the deadline would never read the same last pods in any round. Each answer is parsed in its worker
down to the few series ``progress`` reads, so memory holds ``workers``
bodies at most, not one per pod.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from dataclasses import dataclass, field

from zeroloop_operator import naming, progress
from zeroloop_operator.kube import Kube

log = logging.getLogger(__name__)

SCRAPE_WORKERS = 32  # concurrent requests per round: 200 pods that all time out at 3 s take 19 s, not 75
MAX_METRICS_BYTES = 4 << 20  # a stage's exposition is a few kB; a larger answer is not a zeroloop stage's
_CHUNK = 64 << 10


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


def fetch(url: str, timeout: float, max_bytes: int | None = None) -> tuple[str | None, str]:
    """(the metrics text, "") or (None, why not), within timeout seconds in all and max_bytes
    (default ``MAX_METRICS_BYTES``)."""
    max_bytes = MAX_METRICS_BYTES if max_bytes is None else max_bytes
    end = time.monotonic() + timeout
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http to pod IPs)
            body = bytearray()
            while chunk := response.read1(_CHUNK) if hasattr(response, "read1") else response.read(_CHUNK):
                body += chunk
                if len(body) > max_bytes:
                    return None, f"answer larger than {max_bytes} bytes"
                if time.monotonic() > end:
                    return None, f"answer not complete within {timeout:g} s"
            return body.decode("utf-8", "replace"), ""
    except (OSError, urllib.error.URLError, ValueError) as e:
        cause = e.reason if isinstance(e, urllib.error.URLError) and isinstance(e.reason, Exception) else e
        return None, f"{type(cause).__name__}: {cause}"


def _read_pod(target: tuple[str, str, str], timeout: float) -> tuple[progress.PodMetrics | None, str]:
    """One pod's metrics parsed down to the series read (the body is dropped here), or (None, why not)."""
    name, component, url = target
    text, why = fetch(url, timeout)
    if text is None:
        return None, why
    try:
        return progress.PodMetrics(name, component, progress.parse(text)), ""
    except ValueError as e:
        return None, f"unreadable metrics: {e}"


def run_pods(kube: Kube, namespace: str, run: str) -> list[dict]:
    return kube.list("Pod", namespace, {naming.LABEL_RUN: run})


def scrape_pods(pods: list[dict], port: int, timeout: float = 3.0, workers: int = SCRAPE_WORKERS,
                run_key: str = "", failure_log: FailureLog = FAILURES, deadline: float | None = None) -> Scrape:
    """Metrics of every running pod with an IP; pods that fail to answer are named in failures.

    The round ends after deadline seconds (None: when every request has ended); the first
    failure of a pod (per run_key, until it answers again) is logged at WARNING.
    """
    targets = []
    for pod in pods:
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if status.get("phase") == "Running" and ip:
            meta = pod.get("metadata") or {}
            component = (meta.get("labels") or {}).get(naming.LABEL_COMPONENT, "")
            targets.append((meta.get("name", ""), component, metrics_url(ip, port)))
    random.shuffle(targets)  # under a deadline, no pod is always last
    out = Scrape(targets=len(targets))
    answers: list[tuple[progress.PodMetrics | None, str]] = []
    if targets:
        pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets))), thread_name_prefix="scrape")
        try:
            futures = [pool.submit(_read_pod, t, timeout) for t in targets]
            wait_all(futures, timeout=deadline)
            late = f"no answer within the round's {deadline:g} s" if deadline is not None else ""
            answers = [f.result() if f.done() else (None, late) for f in futures]
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # requests in flight end within their timeout
    urls = {}
    for (name, _, url), (metrics, why) in zip(targets, answers):
        urls[name] = url
        if metrics is None:
            out.failures[name] = why
        else:
            out.metrics.append(metrics)
    for name in failure_log.newly_failing(run_key, out.failures):
        log.warning("cannot read the metrics of pod %s (%s): %s; the run's progress will not advance while "
                    "this lasts (does a NetworkPolicy block the operator from port %d?)",
                    name, urls[name], out.failures[name], port)
    return out
