"""What a model may be called: its name becomes a directory under ``selfplay/`` and a field of every row.

Pure (no torch), so the loop's settings and the run plan check a name
prefix before anything is trained.
"""

from __future__ import annotations

import re

MAX_NAME_LEN = 64  # rows.MODEL_NAME_LEN: training rows record the model name
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")


def check_model_name(name: object) -> str | None:
    """Why name cannot name a model (it becomes a directory under selfplay/), or None."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        return f"model name {name!r} must be letters, digits and . _ + = - (not starting with a symbol)"
    if len(name.encode()) > MAX_NAME_LEN:
        return f"model name {name!r} is longer than {MAX_NAME_LEN} bytes"
    return None
