"""devtools.supervisor with real (tiny) processes: backoff that doubles up to its cap, a child that
fails its readiness check is retried, and stop_all leaves nothing running."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from functools import partial

from devtools import procs
from devtools.supervisor import Child, Supervisor


def _run_until(supervisor: Supervisor, condition, *, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        supervisor.check()
        time.sleep(0.01)


def _python(code: str) -> partial:
    return partial(procs.spawn, [sys.executable, "-c", code], None)


def test_a_crash_looping_child_is_restarted_with_doubling_backoff_up_to_the_cap(tmp_path):
    said: list[str] = []
    state = tmp_path / "children.json"
    supervisor = Supervisor(say=said.append, state_file=state, first_delay=0.05, max_delay=0.2, stable_after=60)
    supervisor.start(Child("crasher", _python("import sys; sys.exit(3)")))
    try:
        _run_until(supervisor, lambda: sum("exited" in m for m in said) >= 5)
    finally:
        supervisor.stop_all()
    exits = [m for m in said if "exited" in m]
    assert exits[0] == "crasher exited (code 3); restarting in 0.05s"
    assert [re.search(r"in ([\d.]+)s", m).group(1) for m in exits] == ["0.05", "0.1", "0.2", "0.2", "0.2"]
    assert "crasher restarted (pid" in " ".join(said)
    assert not state.exists()  # stop_all removes the state file


def test_backoff_starts_over_once_a_child_stayed_up(tmp_path):
    said: list[str] = []
    marker = tmp_path / "runs"
    # Crashes at once, except on its third run, which stays up longer than stable_after.
    code = (f"import pathlib, sys, time; p = pathlib.Path({str(marker)!r}); n = len(p.read_text()) if p.exists() else 0; "
            "p.write_text('x' * (n + 1)); time.sleep(1.5 if n == 2 else 0); sys.exit(1)")
    supervisor = Supervisor(say=said.append, first_delay=0.05, max_delay=5, stable_after=1.0)
    supervisor.start(Child("flaky", _python(code)))
    try:
        _run_until(supervisor, lambda: sum("exited" in m for m in said) >= 4)
    finally:
        supervisor.stop_all()
    delays = [re.search(r"in ([\d.]+)s", m).group(1) for m in said if "exited" in m]
    assert delays == ["0.05", "0.1", "0.05", "0.1"]  # the third run stayed up: its exit counts as a first


def test_a_child_that_does_not_become_ready_is_stopped_and_retried(tmp_path):
    said: list[str] = []
    attempts = []

    def ready(proc: subprocess.Popen) -> None:
        attempts.append(proc)
        if len(attempts) in (2, 3):  # the first two restarts "never answer"
            raise procs.StackError("not listening")

    supervisor = Supervisor(say=said.append, state_file=tmp_path / "c.json", first_delay=0.05, max_delay=1)
    supervisor.start(Child("sleeper", _python("import time; time.sleep(60)"), ready))
    first = attempts[0]
    try:
        first.kill()
        _run_until(supervisor, lambda: any("restarted" in m for m in said))
        assert [m for m in said if "did not come back" in m] == [
            "sleeper did not come back (not listening); retrying in 0.1s",
            "sleeper did not come back (not listening); retrying in 0.2s"]
        assert all(p.poll() is not None for p in attempts[1:3])  # the unready ones were stopped
        current = json.loads((tmp_path / "c.json").read_text())["children"]["sleeper"]
        assert current == attempts[3].pid and attempts[3].poll() is None
    finally:
        supervisor.stop_all()
    assert attempts[3].poll() is not None
