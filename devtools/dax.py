"""Start the local DAX node as a subprocess (for the test session and `make run`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Iterable

from devtools.procs import ROOT, spawn, stop, wait_for_port

__all__ = ["spawn_dax_node", "start_dax_node", "wait_for_dax_node", "stop"]


def spawn_dax_node(port: int, *, dynamodb_endpoint: str, stats_port: int | None = None,
                   extra_args: Iterable[str] = (), log: Path | None = None) -> subprocess.Popen:
    """Spawn ``python -m daxlocal`` in its own process group and return at once."""
    args = [sys.executable, "-m", "daxlocal", "--port", str(port),
            "--dynamodb-endpoint", dynamodb_endpoint]
    if stats_port is not None:
        args += ["--stats-port", str(stats_port)]
    args += list(extra_args)
    return spawn(args, log, cwd=ROOT)


def wait_for_dax_node(proc: subprocess.Popen, port: int, *, stats_port: int | None = None) -> None:
    wait_for_port("127.0.0.1", port, timeout=30, proc=proc, name="DAX node")
    if stats_port is not None:
        wait_for_port("127.0.0.1", stats_port, timeout=10, proc=proc, name="DAX node stats")


def start_dax_node(port: int, *, dynamodb_endpoint: str, stats_port: int | None = None,
                   extra_args: Iterable[str] = (), log: Path | None = None) -> subprocess.Popen:
    """Spawn ``python -m daxlocal`` in its own process group; return once it listens.

    Stop it with :func:`devtools.procs.stop` (re-exported here as ``stop``).
    """
    proc = spawn_dax_node(port, dynamodb_endpoint=dynamodb_endpoint, stats_port=stats_port,
                          extra_args=extra_args, log=log)
    wait_for_dax_node(proc, port, stats_port=stats_port)
    return proc
