"""Reading a run's pods' metrics endpoints (the I/O half of ``progress``).

The run's pods are listed by the ``zeroloop.io/run`` label and each running
pod with an IP is asked for ``http://IP:PORT/metrics`` with a short timeout,
a few at a time. A pod that does not answer is skipped this round (its
counters stay remembered). This needs the network to allow the operator's
namespace to reach the run's metrics port (mind NetworkPolicies).
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from zeroloop_operator import naming, progress
from zeroloop_operator.kube import Kube

log = logging.getLogger(__name__)


def metrics_url(pod_ip: str, port: int) -> str:
    host = f"[{pod_ip}]" if ":" in pod_ip else pod_ip
    return f"http://{host}:{port}/metrics"


def fetch(url: str, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http to pod IPs)
            return response.read().decode("utf-8", "replace")
    except (OSError, urllib.error.URLError, ValueError) as e:
        log.debug("no metrics from %s: %s", url, e)
        return None


def run_pods(kube: Kube, namespace: str, run: str) -> list[dict]:
    return kube.list("Pod", namespace, {naming.LABEL_RUN: run})


def scrape_pods(pods: list[dict], port: int, timeout: float = 3.0, workers: int = 8) -> list[progress.PodMetrics]:
    """Metrics of every running pod with an IP (pods that fail to answer are left out)."""
    targets = []
    for pod in pods:
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if status.get("phase") == "Running" and ip:
            meta = pod.get("metadata") or {}
            component = (meta.get("labels") or {}).get(naming.LABEL_COMPONENT, "")
            targets.append((meta.get("name", ""), component, metrics_url(ip, port)))
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(targets))) as pool:
        texts = list(pool.map(lambda t: fetch(t[2], timeout), targets))
    out = []
    for (name, component, url), text in zip(targets, texts):
        if text is None:
            continue
        try:
            out.append(progress.PodMetrics(name, component, progress.parse(text)))
        except ValueError as e:
            log.warning("unreadable metrics from pod %s (%s): %s", name, url, e)
    return out
