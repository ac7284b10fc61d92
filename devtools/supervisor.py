"""Keep `make run`'s children running: a child that exits is restarted after a backoff (1 s,
doubling to 30 s, back to 1 s once it has stayed up a minute), and said so; nothing but
:meth:`Supervisor.stop_all` — on Ctrl-C or SIGTERM — stops the others.

The current pid of every child is kept in a small JSON state file (``{"supervisor": pid,
"children": {name: pid or null}}``), for whoever wants to look (the tests kill children by it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devtools import procs

FIRST_DELAY = 1.0
MAX_DELAY = 30.0
STABLE_AFTER = 60.0  # seconds up after which a crash counts as a first one again


@dataclass
class Child:
    """One supervised process: ``spawn`` starts it and returns at once, ``ready`` waits until it
    answers (raising :class:`procs.StackError` if it does not)."""

    name: str
    spawn: Callable[[], subprocess.Popen]
    ready: Callable[[subprocess.Popen], None] = lambda proc: None
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    delay: float | None = None  # the next backoff; None: the supervisor's first delay
    restart_at: float | None = None


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


class Supervisor:
    def __init__(self, *, say: Callable[[str], None], state_file: Path | None = None,
                 first_delay: float = FIRST_DELAY, max_delay: float = MAX_DELAY, stable_after: float = STABLE_AFTER) -> None:
        self.children: list[Child] = []
        self.first_delay, self.max_delay, self.stable_after = first_delay, max_delay, stable_after
        self._say = say
        self._state_file = state_file
        self._deferring = False  # a signal now would orphan a process being spawned
        self._deferred = False
        self._stopping = False

    # --- signals: Ctrl-C and SIGTERM stop everything, never half-way through a spawn -------------
    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        if self._stopping:
            return  # already stopping everything: a second Ctrl-C must not cut that short
        if self._deferring:
            self._deferred = True
            return
        raise KeyboardInterrupt

    @contextmanager
    def _no_interrupt(self) -> Iterator[None]:
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            if self._deferred:
                raise KeyboardInterrupt

    # --- children ----------------------------------------------------------------------------
    def start(self, child: Child) -> None:
        """First start of ``child``; a failure here is the caller's (the stack cannot come up)."""
        self.children.append(child)
        self._launch(child)

    def _launch(self, child: Child) -> None:
        with self._no_interrupt():
            child.proc = child.spawn()
            self._write_state()
        child.ready(child.proc)
        child.started_at = time.monotonic()

    def check(self) -> None:
        """One round: note children that exited, restart those whose backoff is over."""
        for child in self.children:
            now = time.monotonic()
            if child.proc is not None:
                code = child.proc.poll()
                if code is None:
                    continue
                procs.kill_group(child.proc)  # whatever it forked dies with it
                child.proc = None
                self._write_state()
                if child.delay is None or now - child.started_at >= self.stable_after:
                    child.delay = self.first_delay
                self._schedule(child, f"{child.name} exited ({describe_exit(code)}); restarting in")
            elif child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                try:
                    self._launch(child)
                except procs.StackError as exc:
                    if child.proc is not None:
                        procs.stop(child.proc)
                        child.proc = None
                        self._write_state()
                    self._schedule(child, f"{child.name} did not come back ({exc}); retrying in")
                else:
                    child.restart_at = None
                    self._say(f"{child.name} restarted (pid {child.proc.pid}, restart {child.restarts})")

    def _schedule(self, child: Child, message: str) -> None:
        child.restart_at = time.monotonic() + child.delay
        self._say(f"{message} {child.delay:g}s")
        child.delay = min(child.delay * 2, self.max_delay)

    def run_forever(self, *, tick: float = 0.5) -> None:
        while True:
            self.check()
            time.sleep(tick)

    def stop_all(self) -> None:
        self._stopping = True
        for child in reversed(self.children):
            if child.proc is not None:
                self._say(f"stopping {child.name}")
                procs.stop(child.proc)
                child.proc = None
        self.children.clear()
        if self._state_file is not None:
            self._state_file.unlink(missing_ok=True)

    def _write_state(self) -> None:
        if self._state_file is None:
            return
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        state = {"supervisor": os.getpid(),
                 "children": {c.name: (c.proc.pid if c.proc is not None else None) for c in self.children}}
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self._state_file)
