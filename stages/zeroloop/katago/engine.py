"""KataGo's engine over GTP: its raw net outputs for a position (``kata-raw-nn``).

``RawNN`` starts ``KATAGO gtp -model M -config C`` with a small config of
its own (one search thread, no passing hacks so the pass probability is not
capped, nothing logged), sets positions up (``positions.gtp_setup``) and
parses ``kata-raw-nn 0 0`` (symmetry 0, no policy optimism) into numbers:
whiteWin, whiteLoss, noResult, whiteLead, whiteScoreSelfplay, varTimeLeft,
shorttermWinlossError, shorttermScoreError, policy (n x n, NaN where
illegal), policyPass, whiteOwnership (n x n). Used by
``tools/katago_fixture.py`` and the ``katago``-marked test; nothing in a
training run needs KataGo.
"""

from __future__ import annotations

import os
import shlex
import tempfile

import numpy as np

from zeroloop.gtp_client import GtpClient
from zeroloop.katago import positions

GTP_CONFIG = """\
logToStderr = false
logAllGTPCommunication = false
logSearchInfo = false
numSearchThreads = 1
nnMaxBatchSize = 1
numNNServerThreadsPerModel = 1
maxVisits = 1
allowResignation = false
resignThreshold = -0.90
resignConsecTurns = 3
enablePassingHacks = false
rules = tromp-taylor
"""
SCALARS = ("whiteWin", "whiteLoss", "noResult", "whiteLead", "whiteScoreSelfplay", "varTimeLeft",
           "shorttermWinlossError", "shorttermScoreError")


def parse_raw_nn(text: str, size: int) -> dict:
    """The numbers of one symmetry's ``kata-raw-nn`` response."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    out: dict = {}
    i = 0
    while i < len(lines):
        head = lines[i]
        key = head[0]
        if key in ("policy", "whiteOwnership"):
            rows = [[float("nan") if t == "NAN" else float(t) for t in lines[i + 1 + y]] for y in range(size)]
            out[key] = np.array(rows, dtype=np.float64)
            i += 1 + size
            continue
        if key == "policyPass":
            out[key] = float(head[1])
        elif key in SCALARS:
            out[key] = float(head[1])
        i += 1
    missing = [k for k in (*SCALARS, "policy", "policyPass", "whiteOwnership") if k not in out]
    if missing:
        raise ValueError(f"kata-raw-nn response lacks {', '.join(missing)}: {text[:200]!r}")
    return out


class RawNN:
    """A KataGo GTP process evaluating one model file."""

    def __init__(self, katago: str, model_path: str, timeout: float = 120.0):
        self._dir = tempfile.TemporaryDirectory(prefix="zeroloop-katago-")
        config = os.path.join(self._dir.name, "gtp.cfg")
        with open(config, "w") as f:
            f.write(GTP_CONFIG)
        command = " ".join(shlex.quote(a) for a in (katago, "gtp", "-model", model_path, "-config", config))
        self.client = GtpClient(command, timeout=timeout, label="katago")
        self.client.start()

    def evaluate(self, pos: dict) -> dict:
        for cmd in positions.gtp_setup(pos):
            self.client.send(cmd)
        return parse_raw_nn(self.client.send("kata-raw-nn 0 0"), int(pos["size"]))

    def version(self) -> str:
        return self.client.send("version")

    def close(self) -> None:
        self.client.close()
        self._dir.cleanup()

    def __enter__(self) -> "RawNN":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
