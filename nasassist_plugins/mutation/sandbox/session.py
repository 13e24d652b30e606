"""The caller's end of one sandbox child: a configuration line, a ``ready`` line, then JSON requests and answers.

Reads are non-blocking with a deadline and a cap on any one line (the child cannot make
the caller wait or buffer without bound); the child's stderr is kept only as a short,
sanitised tail for start-up errors. :meth:`Session.kill` ends the child's whole process
group (bubblewrap's namespace dies with it).
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import signal
import subprocess
import time
from typing import Any

from nasassist_plugins.mutation.errors import SandboxError
from nasassist_plugins.mutation.redact import redact

__all__ = ["Session", "close_sessions"]

_STDERR_TAIL = 16 * 1024


class Session:
    """One sandbox child: a config line, a ``ready`` line, then requests and answers as JSON lines."""

    def __init__(self, cmd: list[str], kind: str, config: dict[str, Any], *, cwd: str, startup_s: float,
                 max_line: int, popen_kwargs: dict[str, Any]) -> None:
        self.kind = kind
        self.max_line = max_line
        self.failure = ""
        self._next_id = 0
        self._buffer = bytearray()
        self._stderr = bytearray()
        try:
            self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                            env={}, cwd=cwd, close_fds=True, start_new_session=True, **popen_kwargs)
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxError(f"cannot start the sandbox ({cmd[0]}): {redact(exc, 200)}") from None
        for stream in (self.process.stdout, self.process.stderr):
            assert stream is not None
            flags = fcntl.fcntl(stream.fileno(), fcntl.F_GETFL)
            fcntl.fcntl(stream.fileno(), fcntl.F_SETFL, flags | os.O_NONBLOCK)
        deadline = time.monotonic() + startup_s
        facts = self._send(config, deadline) and self._read(deadline)
        if not isinstance(facts, dict) or not facts.get("ready"):
            tail = self.stderr_tail()
            self.kill()
            if self.failure == "timeout":
                raise SandboxError(f"the sandbox did not start within {startup_s:g} s")
            raise SandboxError(f"the sandbox failed to start: {tail or self.failure or 'no output'}")
        self.facts: dict[str, Any] = facts

    @property
    def alive(self) -> bool:
        return self.process.poll() is None and not self.failure

    def request(self, items: list[dict[str, Any]], *, trainer: str | None, allow_files: bool,
                deadline: float) -> list[dict[str, Any] | None]:
        self._next_id += 1
        ident = self._next_id
        answers: list[dict[str, Any] | None] = [None] * len(items)
        if not self._send({"id": ident, "items": items, "trainer": trainer, "allow_files": allow_files}, deadline):
            return answers
        while True:
            message = self._read(deadline)
            if message is None:
                return answers
            if message.get("id") != ident:
                continue
            if message.get("done"):
                return answers
            index = message.get("index")
            if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(items):
                answers[index] = message

    def _send(self, message: dict[str, Any], deadline: float) -> bool:
        data = memoryview((json.dumps(message) + "\n").encode())
        stdin = self.process.stdin
        assert stdin is not None
        fd = stdin.fileno()
        os.set_blocking(fd, False)
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_WRITE)
            while data:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    self.failure = "timeout"
                    return False
                try:
                    data = data[os.write(fd, data):]
                except BlockingIOError:
                    continue
                except OSError:
                    self.failure = "the sandbox closed its input"
                    return False
        return True

    def _read(self, deadline: float) -> dict[str, Any] | None:
        """The next JSON object line from the child; ``None`` on EOF, timeout or an oversized line."""
        stdout, stderr = self.process.stdout, self.process.stderr
        assert stdout is not None and stderr is not None
        with selectors.DefaultSelector() as selector:
            selector.register(stdout.fileno(), selectors.EVENT_READ, "out")
            if not stderr.closed:
                selector.register(stderr.fileno(), selectors.EVENT_READ, "err")
            while True:
                newline = self._buffer.find(b"\n")
                if newline >= 0:
                    line = bytes(self._buffer[:newline])
                    del self._buffer[: newline + 1]
                    try:
                        message = json.loads(line)
                    except (ValueError, RecursionError):
                        continue
                    if isinstance(message, dict):
                        return message
                    continue
                if len(self._buffer) > self.max_line:
                    self.failure = "an answer exceeded the size limit"
                    self.kill()
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.failure = "timeout"
                    self.kill()
                    return None
                events = selector.select(remaining)
                if not events:
                    continue
                for key, _ in events:
                    try:
                        chunk = os.read(key.fd, 1 << 20)
                    except BlockingIOError:
                        continue
                    if key.data == "err":
                        if chunk:
                            self._stderr += chunk
                            del self._stderr[:-_STDERR_TAIL]
                        else:
                            selector.unregister(key.fd)
                        continue
                    if not chunk:
                        self.failure = self.failure or f"the sandbox exited ({self.process.poll()})"
                        return None
                    self._buffer += chunk

    def stderr_tail(self) -> str:
        lines = bytes(self._stderr).decode("utf-8", errors="replace").strip().splitlines()[-3:]
        return redact(" | ".join(lines), 400)

    def kill(self) -> None:
        process = self.process
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                process.kill()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
            pass
        for stream in (process.stdin, process.stdout, process.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self.failure = self.failure or "stopped"


def close_sessions(sessions: dict[str, Session]) -> None:
    for session in list(sessions.values()):
        session.kill()
    sessions.clear()
