"""`make run`'s "ready in" counts from the command's start: the Makefile's run target takes the time
before its bootstrap prerequisite runs, and the runner counts from that time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from devtools import procs
from devtools.run import run_started

BOOTSTRAP_SECONDS = 1.0


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")
def test_the_run_target_takes_its_start_time_before_the_bootstrap(tmp_path):
    # The real Makefile, with a bootstrap that only takes its time, and a "runner" that reports what
    # it was given and when it started.
    began = tmp_path / "bootstrap-began"
    (tmp_path / "bootstrap.mk").write_text(f"bootstrap:\n\t@date +%s.%N > {began}; sleep {BOOTSTRAP_SECONDS}\n")
    runner = tmp_path / "runner.py"
    runner.write_text("import os, sys, time\n"
                      "print(os.environ['MANGAASSIST_RUN_STARTED'], time.time(), *sys.argv[1:])\n")
    before = time.time()
    result = subprocess.run(
        ["make", "-s", "-C", str(procs.ROOT), "-f", "Makefile", "-f", str(tmp_path / "bootstrap.mk"), "run",
         f"PY={sys.executable} {runner}"],
        capture_output=True, text=True, check=True, timeout=60)
    started, runner_began, *args = result.stdout.split()
    assert args == ["-m", "devtools.run"]
    # Taken at the command's start, before the bootstrap began, so its time is counted.
    assert before <= float(started) <= float(began.read_text())
    assert float(runner_began) - float(started) >= BOOTSTRAP_SECONDS


def test_the_runner_counts_from_the_makefiles_start_time():
    now = time.time()
    assert run_started(f"{now - 42.5:.9f}") == pytest.approx(now - 42.5)


@pytest.mark.parametrize("value", [None, "", "soon", "1e30", "0"])
def test_without_a_plausible_start_time_the_runner_counts_from_now(value):
    before = time.time()
    assert before <= run_started(value) <= time.time()
