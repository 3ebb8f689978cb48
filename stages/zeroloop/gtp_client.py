"""Driving a GTP engine in a child process, with timeouts.

``GtpClient`` starts the engine from a shell-quoted command line, sends one
command at a time and reads the response (``=`` or ``?`` up to the blank
line). Engines are outside input: a response that does not come within the
timeout, an engine that exits, or output that is not GTP raises
``EngineError`` (the caller decides what the engine loses); a ``?`` response
raises ``GtpFailure`` with the engine's message. The engine's stderr goes to
a temporary file whose last line is quoted when the engine dies.
"""

from __future__ import annotations

import logging
import os
import select
import shlex
import subprocess
import tempfile
import time

from zeroloop.errors import UserError

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1 << 20


class EngineError(Exception):
    """The engine crashed, timed out or broke the protocol."""


class GtpFailure(Exception):
    """The engine answered ``?``: the message is its error text."""


class GtpClient:
    """One GTP engine process."""

    def __init__(self, command: str, timeout: float = 60.0, label: str | None = None):
        self.command = command
        self.argv = shlex.split(command)
        if not self.argv:
            raise UserError("empty engine command")
        self.timeout = timeout
        self.label = label or os.path.basename(self.argv[0])
        self.proc: subprocess.Popen | None = None
        self._buffer = b""
        self._stderr = None

    # --- life cycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the engine; a command that cannot run at all is the user's error."""
        self._stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr, bufsize=0)
        except OSError as e:
            raise UserError(f"cannot start engine {self.command!r}: {e.strerror or e}") from None
        self._buffer = b""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def restart(self) -> None:
        self.close()
        self.start()

    def close(self) -> None:
        """Ask the engine to quit; kill it if it does not."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.send("quit", timeout=5.0)
            except (EngineError, GtpFailure):
                pass
            try:
                self.proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> "GtpClient":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- protocol ----------------------------------------------------------------

    def send(self, command: str, timeout: float | None = None) -> str:
        """Send one command; return the response text (without ``=``)."""
        if not self.alive:
            raise EngineError(f"{self.label} is not running{self._stderr_tail()}")
        try:
            self.proc.stdin.write(command.encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            raise EngineError(f"{self.label} exited before {command!r}{self._stderr_tail()}") from None
        raw = self._read_response(command, self.timeout if timeout is None else timeout)
        text = raw.decode("utf-8", errors="replace").replace("\r", "")
        status, rest = text[0], text[1:]
        body = rest.lstrip("0123456789")  # an id, if the engine echoed one
        body = body[1:] if body.startswith(" ") else body
        if status == "?":
            raise GtpFailure(body.strip())
        return body.strip()

    def _read_response(self, command: str, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            # Skip blank lines before a response (engines may emit extras).
            self._buffer = self._buffer.lstrip(b"\r\n")
            end = self._buffer.replace(b"\r", b"").find(b"\n\n")
            if end >= 0:
                clean = self._buffer.replace(b"\r", b"")
                response, self._buffer = clean[:end], clean[end + 2:]
                if not response[:1] in (b"=", b"?"):
                    self.kill()
                    raise EngineError(f"{self.label} answered {command!r} with non-GTP output "
                                      f"{response[:80]!r}")
                return response
            if len(self._buffer) > MAX_RESPONSE_BYTES:
                self.kill()
                raise EngineError(f"{self.label}: response to {command!r} longer than {MAX_RESPONSE_BYTES} bytes")
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise EngineError(f"{self.label} timed out after {timeout:g} s on {command!r}")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                code = self.proc.wait()
                raise EngineError(f"{self.label} exited (status {code}) during {command!r}{self._stderr_tail()}")
            self._buffer += chunk

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(max(0, self._stderr.seek(0, os.SEEK_END) - 2000))
            lines = [ln for ln in self._stderr.read().decode(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return f": {lines[-1].strip()}" if lines else ""
