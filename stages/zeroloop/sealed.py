"""Sealed JSON: a cache file that says when it cannot be trusted.

A sealed file is the SHA-256 of its JSON text on the first line, then the
text. ``unseal`` refuses (ValueError) a file cut short, altered, or not
sealed at all, so a cache written by a process killed halfway, or damaged
later, is detected and rebuilt instead of believed. Written atomically like
every file (``Storage.write_bytes``), a sealed file is whole or absent; the
seal covers what happens to it after.
"""

from __future__ import annotations

import hashlib
import json


def seal(body: object) -> bytes:
    text = json.dumps(body, separators=(",", ":")).encode()
    return hashlib.sha256(text).hexdigest().encode() + b"\n" + text


def unseal(data: bytes, where: str) -> object:
    """The JSON value of a sealed file; ValueError naming where if it is not one whole."""
    digest, _, text = data.partition(b"\n")
    if hashlib.sha256(text).hexdigest().encode() != digest:
        raise ValueError(f"{where}: checksum mismatch (cut short or altered)")
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"{where}: not JSON ({e})") from None
