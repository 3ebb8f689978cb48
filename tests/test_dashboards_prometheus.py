"""Every dashboard panel's query, evaluated by a real Prometheus scraping a running asynchronous loop.

Debian's ``prometheus`` package (the test command installs it, as it
installs GNU Go) scrapes the four stages of a tiny asynchronous loop on
localhost every second, with the ``run``, ``component`` and ``pod`` labels
that the chart's ServiceMonitor, PodMonitor and ClusterPodMonitoring give
the series in a cluster. Each query of the three dashboards, with Grafana's
variables filled in, goes through Prometheus' HTTP API and must return data.
A panel that can have data only in a cluster would be listed in
``CLUSTER_ONLY`` with the reason; today there is none (``up`` carries the
same labels here as there). Without the prometheus binary the test skips.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import cli_env, free_port
from test_dashboards import dashboards, panels
from zeroloop.chaos.harness import tiny_settings
from zeroloop.loop import asyncmode, sync
from zeroloop.storage import BaseDir

PROMETHEUS = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
RUN = "demo"
# Loop stage -> the component label the operator's pods carry.
COMPONENTS = {"selfplay-0": "selfplay", "shuffle-export-loop": "shuffler", "train": "trainer",
              "gatekeeper": "gatekeeper"}
CLUSTER_ONLY: dict[str, str] = {}  # "board/panel title" -> why it has data only in a cluster
VARIABLES = {"$__rate_interval": "20s", "$__range": "10m", "$run": RUN}
DEADLINE_S = 180

pytestmark = pytest.mark.timeout(DEADLINE_S + 60)


def scrape_config(ports: dict[str, int]) -> str:
    targets = [{"targets": [f"127.0.0.1:{port}"], "labels": {"run": RUN, "component": COMPONENTS[name], "pod": name}}
               for name, port in ports.items()]
    return json.dumps({"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                       "scrape_configs": [{"job_name": "zeroloop", "static_configs": targets}]})


def query(url: str, expr: str) -> list:
    q = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def panel_queries() -> dict[str, str]:
    out = {}
    for board_name, board in dashboards().items():
        for panel in panels(board):
            for i, target in enumerate(panel["targets"]):
                expr = target["expr"]
                for variable, value in VARIABLES.items():
                    expr = expr.replace(variable, value)
                assert "$" not in expr, f"{board_name}/{panel['title']}: a variable this test does not fill"
                out[f"{board_name}/{panel['title']}#{i}"] = expr
    return out


@pytest.fixture
def loop_and_prometheus(tmp_path):
    if PROMETHEUS is None:
        pytest.skip("Prometheus is not installed (apt-get install -y prometheus)")
    base = BaseDir.open(str(tmp_path / "run"))
    settings = tiny_settings(seed=1, gating=True)
    sync.setup(base, settings)
    # Small tdata files, so the first shuffle (and everything after it) comes after a few games.
    config = Path(base.path("loop", "selfplay.toml"))
    config.write_text(re.sub(r"(?m)^max_rows_per_file = .*$", "max_rows_per_file = 60", config.read_text()))
    ports, procs = {}, []
    try:
        for name, argv in asyncmode.stage_commands(base, settings, 1).items():
            ports[name] = free_port()
            log = open(tmp_path / f"{name}.log", "w")
            procs.append(subprocess.Popen(argv + ["--metrics-port", str(ports[name])], env=cli_env(),
                                          stdout=log, stderr=subprocess.STDOUT))
        (tmp_path / "prometheus.yml").write_text(scrape_config(ports))
        web = f"127.0.0.1:{free_port()}"
        procs.append(subprocess.Popen(
            [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address={web}", "--log.level=warn"],
            stdout=open(tmp_path / "prometheus.log", "w"), stderr=subprocess.STDOUT))
        yield f"http://{web}", tmp_path
    finally:
        for p in procs:  # nothing here needs a clean stop (the stages' own tests check theirs)
            p.kill()
        for p in procs:
            p.wait(30)


def test_every_panel_returns_data_from_a_real_prometheus(loop_and_prometheus):
    url, logs = loop_and_prometheus
    queries = {k: v for k, v in panel_queries().items() if k.split("#")[0] not in CLUSTER_ONLY}
    assert len(queries) >= 40
    empty = dict(queries)
    deadline = time.monotonic() + DEADLINE_S
    while empty and time.monotonic() < deadline:
        time.sleep(2)
        for key, expr in list(empty.items()):
            try:
                if query(url, expr):
                    del empty[key]
            except OSError:  # Prometheus still starting
                break
    print(f"every panel had data after {DEADLINE_S - (deadline - time.monotonic()):.0f} s")
    tails = {p.name: p.read_text()[-600:] for p in logs.glob("*.log")}
    assert not empty, f"panels without data after {DEADLINE_S} s: {json.dumps(empty, indent=1)}\n{tails}"
    # The labels the dashboards group by are the ones the cluster's monitors add.
    (up,) = query(url, f'up{{run="{RUN}", component="gatekeeper"}}')
    assert up["metric"]["pod"] == "gatekeeper" and up["value"][1] == "1"


def test_cluster_only_panels_exist_and_say_why():
    titles = {f"{b}/{p['title']}" for b, board in dashboards().items() for p in panels(board)}
    for panel, reason in CLUSTER_ONLY.items():
        assert panel in titles and reason
