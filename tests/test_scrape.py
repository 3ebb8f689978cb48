"""Scraping a run's pods: a pod whose metrics cannot be read is named, and warned about once per failure streak."""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import time

import pytest

from zeroloop_operator import runstatus, scrape


def pod(name: str, ip: str, phase: str = "Running") -> dict:
    return {"metadata": {"name": name, "labels": {"app.kubernetes.io/component": "selfplay"}},
            "status": {"phase": phase, "podIP": ip}}


@pytest.fixture
def metrics_server():
    """A metrics endpoint on 127.0.0.2 and the same port closed on 127.0.0.3."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"zeroloop_selfplay_games_total 3\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket() as probe:  # nothing listens on 127.0.0.3 at this port
        probe.bind(("127.0.0.3", server.server_address[1]))
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def warnings_about(caplog, pod_name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and f"pod {pod_name} " in r.getMessage()]


def test_a_failing_pod_is_named_and_warned_about_once(metrics_server, caplog):
    port = metrics_server
    pods = [pod("ok", "127.0.0.2"), pod("blocked", "127.0.0.3"), pod("pending", "127.0.0.4", phase="Pending")]
    log = scrape.FailureLog()
    caplog.set_level(logging.DEBUG, logger="zeroloop_operator.scrape")
    for _ in range(3):
        result = scrape.scrape_pods(pods, port, timeout=2, run_key="ns/run", failure_log=log)
        assert [m.pod for m in result.metrics] == ["ok"] and result.targets == 2
        assert set(result.failures) == {"blocked"} and "ConnectionRefusedError" in result.failures["blocked"]
    (warning,) = warnings_about(caplog, "blocked")
    assert "NetworkPolicy" in warning and f"127.0.0.3:{port}" in warning
    assert not warnings_about(caplog, "ok")
    # It recovers (here: it is no longer asked), then fails again: a new streak, a new warning.
    scrape.scrape_pods(pods[:1], port, timeout=2, run_key="ns/run", failure_log=log)
    scrape.scrape_pods(pods, port, timeout=2, run_key="ns/run", failure_log=log)
    assert len(warnings_about(caplog, "blocked")) == 2
    # Another run's pod of the same name is another pod.
    scrape.scrape_pods(pods, port, timeout=2, run_key="ns/other", failure_log=log)
    assert len(warnings_about(caplog, "blocked")) == 3


def test_metrics_condition_names_the_pods():
    ok = runstatus.metrics_condition({}, 4)
    assert ok.status and ok.reason == "Scraped"
    failures = {f"p{i}": "ConnectionRefusedError: refused" for i in range(7)}
    bad = runstatus.metrics_condition(failures, 9)
    assert not bad.status and bad.reason == "ScrapeFailed"
    assert "7 of 9" in bad.message and "p0 (ConnectionRefusedError: refused)" in bad.message
    assert "and 2 more" in bad.message and "p6" not in bad.message


class ManyPods:
    """Simulated metrics endpoints of many pods: one server on every loopback address of a port, answering
    by the address asked (127.0.0.N is pod N): most at once, some never (hung), some without end (huge)."""

    def __init__(self, hung: set[int], huge: set[int]):
        self.release = threading.Event()
        self.hung_arrivals: list[float] = []  # when each hung pod was asked (monotonic)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(handler):
                n = int(handler.connection.getsockname()[0].rsplit(".", 1)[1])
                if n in hung:
                    self.hung_arrivals.append(time.monotonic())
                    self.release.wait(60)
                    return
                handler.send_response(200)
                handler.end_headers()
                if n in huge:
                    chunk = b"# " + b"x" * 65_000 + b"\n"
                    for _ in range(200):  # 13 MB, more than the cap
                        handler.wfile.write(chunk)
                    return
                handler.wfile.write(f"zeroloop_selfplay_games_total {n}\n".encode())

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("0.0.0.0", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


TIMEOUT = 5.0  # per pod, in the 200-pod test


def test_200_pods_are_read_within_the_round_deadline_and_bounded_memory(monkeypatch):
    """A run of 200 self-play pods, of which 10 hang and 5 answer without end: the round ends at its deadline
    (not after 200 timeouts in turn), every answering pod is read, the others are named with why, and the
    memory of the round stays bounded (answers are capped and parsed in their worker)."""
    import time
    import tracemalloc

    hung, huge = set(range(10, 20)), set(range(40, 45))
    pods = ManyPods(hung, huge)
    monkeypatch.setattr(scrape, "MAX_METRICS_BYTES", 1 << 20)
    try:
        targets = [pod(f"run-selfplay-{n}", f"127.0.0.{n}") for n in range(1, 201)]
        tracemalloc.start()
        t0 = time.monotonic()
        # The deadline leaves a loaded 2-core machine time to read all 185 answering pods; the 10 hung
        # ones, asked in turn, would alone take 10 x 5 s, and 32 workers take about 5 s for all of them.
        # 5 s per pod: the simulated pods share one interpreter, and while the huge ones stream their
        # 13 MB an answering pod of a loaded machine can wait over 2 s for the GIL (seen at 2 s).
        result = scrape.scrape_pods(targets, pods.port, timeout=TIMEOUT, workers=32, deadline=30.0,
                                    failure_log=scrape.FailureLog())
        elapsed = time.monotonic() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        pods.close()
    assert elapsed < 30.0 + TIMEOUT  # within the deadline (the hung pods answer nothing in time)
    # Asked concurrently: some hung pod was asked before another's timeout ran out (in turn, never).
    arrivals = sorted(pods.hung_arrivals)
    assert len(arrivals) == 10 and min(b - a for a, b in zip(arrivals, arrivals[1:])) < TIMEOUT, arrivals
    assert result.targets == 200
    read = {m.pod: m.total("zeroloop_selfplay_games_total") for m in result.metrics}
    assert read == {f"run-selfplay-{n}": float(n) for n in range(1, 201) if n not in hung | huge}
    assert set(result.failures) == {f"run-selfplay-{n}" for n in hung | huge}
    assert all("larger than" in result.failures[f"run-selfplay-{n}"] for n in huge)
    assert all(("timed out" in why or "within" in why) for p, why in result.failures.items()
               if int(p.rsplit("-", 1)[1]) in hung)
    assert peak < 40 << 20  # 5 answers of 13 MB each were cut at 1 MB
