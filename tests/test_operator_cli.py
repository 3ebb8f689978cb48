"""Both ways to start the operator, as processes: `zeroloop operator` and `kopf run -m zeroloop_operator`.

Each runs against kmock, must make a run's children, serve the liveness
endpoint (zeroloop operator), and stop cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import urllib.request

import pytest

from conftest import cli, cli_env, free_port
from kube_emulator import PATIENCE, StampingEmulator, declare_resources, kubeconfig_text, wait_for
from test_operator import DEPLOYMENTS, NS, create, obj, run_object

pytestmark = [pytest.mark.kmock(cls=StampingEmulator), pytest.mark.timeout(5 * PATIENCE)]


def healthz(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return r.status
    except OSError:
        return None


@pytest.mark.parametrize("how", ["zeroloop operator", "kopf run -m"])
async def test_operator_process_reconciles_and_stops_on_sigterm(kmock, tmp_path, how):
    declare_resources(kmock)
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig_text(str(kmock.url)))
    port = free_port()
    env = cli_env({"KUBECONFIG": str(config), "ZEROLOOP_OPERATOR_STATUS_INTERVAL": "0.5",
                   "ZEROLOOP_OPERATOR_RETRY_DELAY": "0.5"})
    env.pop("KUBERNETES_SERVICE_HOST", None)
    if how == "zeroloop operator":
        argv = cli("operator", "--all-namespaces", "--liveness-port", str(port), "--log-format", "json")
    else:
        argv = [sys.executable, "-m", "kopf", "run", "-m", "zeroloop_operator", "--all-namespaces", "--standalone",
                f"--liveness=http://127.0.0.1:{port}/healthz"]
    await create(kmock, run_object())
    log = open(tmp_path / "operator.log", "w")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        await wait_for(lambda: obj(kmock, DEPLOYMENTS, "demo-trainer"), what="children")
        # Stopping kopf in the middle of a handler costs it a 5 s wait for hung tasks.
        await wait_for(lambda: "Creation is processed" in (tmp_path / "operator.log").read_text(),
                       what="creation processed")
        loop = asyncio.get_running_loop()
        assert await wait_for(lambda: healthz(port) == 200, what="liveness")
        proc.send_signal(signal.SIGTERM)
        code = await loop.run_in_executor(None, proc.wait, PATIENCE)
        assert code == 0, (tmp_path / "operator.log").read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    text = (tmp_path / "operator.log").read_text()
    assert "reconciled" in text
    if how == "zeroloop operator":
        assert '"level": "info"' in text  # --log-format json

    # A child deleted while the operator was down comes back when it resumes.
    kmock.objects[DEPLOYMENTS, NS, "demo-trainer"].delete()
    with open(tmp_path / "operator2.log", "w") as log2:
        proc = subprocess.Popen(argv, env=env, stdout=log2, stderr=subprocess.STDOUT)
        try:
            await wait_for(lambda: obj(kmock, DEPLOYMENTS, "demo-trainer"), what="resumed")
            await wait_for(lambda: "Resuming is processed" in (tmp_path / "operator2.log").read_text(),
                           what="resuming processed")
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.get_running_loop().run_in_executor(None, proc.wait, 15)


def test_bad_flags_get_one_line_errors():
    result = subprocess.run(cli("operator", "--namespace", "a", "--all-namespaces"), env=cli_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == \
        "zeroloop operator: error: use --namespace or --all-namespaces, not both"
    env = cli_env({"ZEROLOOP_OPERATOR_STATUS_INTERVAL": "soon"})
    result = subprocess.run(cli("operator", "--help"), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "ZEROLOOP_OPERATOR_STATUS_INTERVAL='soon' is not a number" in result.stderr
    assert "Traceback" not in result.stderr
