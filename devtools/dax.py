"""Start the local DAX node, or a cluster of them, as a subprocess (for the test session, the
bench and `make run`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from devtools.procs import ROOT, spawn, stop, wait_for_port

__all__ = ["DaxCluster", "DaxClusterNode", "spawn_dax_cluster", "spawn_dax_node", "start_dax_cluster", "start_dax_node", "wait_for_dax_node",
           "stop"]


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


# --- a cluster (docs/dax-protocol.md §Cluster) ---------------------------------------------------

@dataclass(frozen=True)
class DaxClusterNode:
    node_id: int
    port: int
    stats_port: int | None

    @property
    def name(self) -> str:
        return f"node {self.node_id} (127.0.0.1:{self.port})"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def stats_url(self) -> str | None:
        return f"http://127.0.0.1:{self.stats_port}/stats" if self.stats_port else None

    def cluster_view(self, timeout: float = 1.0) -> dict | None:
        """The node's ``GET /cluster`` (None while it is down)."""
        if not self.stats_port:
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/cluster", timeout=timeout) as response:
                return json.loads(response.read())
        except (OSError, ValueError):
            return None


@dataclass
class DaxCluster:
    """A running ``python -m daxlocal --cluster-size N`` and its nodes."""

    proc: subprocess.Popen
    name: str
    nodes: list[DaxClusterNode]

    @property
    def endpoints(self) -> list[str]:
        return [n.endpoint for n in self.nodes]

    def leader(self, *, exclude: DaxClusterNode | None = None) -> DaxClusterNode | None:
        """The node that says it is the leader (and is not ``exclude``), or None."""
        for node in self.nodes:
            if node is exclude:
                continue
            view = node.cluster_view()
            if view and view.get("Role") == "leader":
                return node
        return None

    def wait_for_leader(self, *, timeout: float = 30, exclude: DaxClusterNode | None = None) -> DaxClusterNode:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            node = self.leader(exclude=exclude)
            if node is not None:
                return node
            time.sleep(0.05)
        raise TimeoutError(f"no DAX leader in cluster {self.name} after {timeout}s")

    def converged(self) -> bool:
        """Every node answers, sees all members alive and names the same leader."""
        views = [n.cluster_view() for n in self.nodes]
        if not all(views):
            return False
        leaders = {v.get("LeaderNodeId") for v in views}
        return None not in leaders and len(leaders) == 1 and all(
            sum(1 for m in v.get("Members", []) if m.get("Alive")) == len(self.nodes) for v in views)

    def kill(self, node: DaxClusterNode) -> int:
        """SIGKILL ``node``'s process (the supervisor starts it again); returns the pid killed."""
        view = node.cluster_view()
        if not view:
            raise RuntimeError(f"{node.name} is not answering")
        os.kill(view["Pid"], signal.SIGKILL)
        return view["Pid"]

    def wait_for_rejoin(self, node: DaxClusterNode, *, timeout: float = 30, killed_pid: int | None = None) -> bool:
        """Whether ``node`` came back (a new process) and serves as a replica within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            view = node.cluster_view()
            if view and view.get("Role") == "replica" and view.get("Pid") != killed_pid and \
                    any(m["NodeId"] == node.node_id and m["Alive"] for m in view.get("Members", [])):
                return True
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        stop(self.proc)


def spawn_dax_cluster(port: int, *, size: int, dynamodb_endpoint: str, stats_port: int | None = None,
                      extra_args: Iterable[str] = (), log: Path | None = None) -> subprocess.Popen:
    """Spawn ``python -m daxlocal --cluster-size size`` in its own process group and return at
    once (node 1 on ``port``, its stats on ``stats_port``; the others on free ports)."""
    args = [sys.executable, "-m", "daxlocal", "--cluster-size", str(size), "--port", str(port),
            "--dynamodb-endpoint", dynamodb_endpoint]
    if stats_port is not None:
        args += ["--stats-port", str(stats_port)]
    args += list(extra_args)
    return spawn(args, log, cwd=ROOT)


def start_dax_cluster(port: int, *, size: int, dynamodb_endpoint: str, stats_port: int | None = 0,
                      extra_args: Iterable[str] = (), log: Path, timeout: float = 90) -> DaxCluster:
    """Spawn a cluster (:func:`spawn_dax_cluster`) and return once every node listens and one is
    the leader. ``port`` 0 / ``stats_port`` 0 = free ports; the supervisor's ``DAXLOCAL_CLUSTER``
    line in ``log`` says which."""
    log.parent.mkdir(parents=True, exist_ok=True)
    offset = log.stat().st_size if log.exists() else 0
    proc = spawn_dax_cluster(port, size=size, dynamodb_endpoint=dynamodb_endpoint, stats_port=stats_port,
                             extra_args=extra_args, log=log)
    deadline = time.monotonic() + timeout
    info = None
    while info is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            why = f"its supervisor exited ({proc.returncode})" if proc.poll() is not None else f"not within {timeout:.0f} s"
            stop(proc)
            tail = log.read_text(errors="replace")[offset:][-2000:] if log.exists() else ""
            raise RuntimeError(f"the DAX cluster did not start: {why}; the end of {log}:\n{tail}")
        with open(log, "rb") as fh:
            fh.seek(offset)
            for line in fh.read().decode("utf-8", "replace").splitlines():
                if line.startswith("DAXLOCAL_CLUSTER "):
                    info = json.loads(line.split(" ", 1)[1])
        time.sleep(0.05)
    cluster = DaxCluster(proc=proc, name=info["name"], nodes=[
        DaxClusterNode(node_id=n["node_id"], port=n["port"], stats_port=n["stats_port"]) for n in info["nodes"]])
    if stats_port is not None:
        # Ready = every node sees every member and the same leader: a client bootstrapping from
        # any seed then learns the whole cluster at once (a node's view fills in over its first
        # heartbeats while its peers are still starting).
        while not cluster.converged():
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                raise TimeoutError(f"the DAX cluster {cluster.name} did not converge (see {log})")
            time.sleep(0.05)
    return cluster
