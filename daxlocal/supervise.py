"""``python -m daxlocal --cluster-size N``: run N nodes as one cluster and keep them running.

Each node is a child process of its own (``python -m daxlocal`` with ``--cluster-name``,
``--node-index`` and its ports), so killing one is what losing a node is: the survivors elect a
leader through the lease (docs/dax-protocol.md §Cluster) and this supervisor starts the dead one
again on the same ports, where it rejoins as a replica. Node 0 gets ``--port`` (and
``--stats-port``), the others free ports, chosen once and kept across restarts. One line per node
and one machine-readable line are printed when all listen::

    daxlocal cluster local-8111: node 1 127.0.0.1:8111 (stats 8112, az local-1a)
    DAXLOCAL_CLUSTER {"name": "local-8111", "nodes": [{"node_id": 1, "port": 8111, ...}, ...]}

SIGTERM/SIGINT stop every node (SIGTERM to each, SIGKILL after 10 s).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time

# Options the supervisor sets per node; everything else is passed to every node as given.
_PER_NODE = {"--cluster-size", "--port", "--stats-port", "--peer-port", "--node-index", "--cluster-name",
             "--availability-zone"}
RESTART_DELAY = 0.5


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies, even by SIGKILL, so no node
    outlives it holding its ports (Linux prctl PR_SET_PDEATHSIG; elsewhere a no-op)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


START_ATTEMPTS = 3


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _shared_args(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _PER_NODE:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def _wait_port(host: str, port: int, proc: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.3):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def supervise(options, argv: list[str]) -> int:
    host = options.host if options.host not in ("0.0.0.0", "") else "127.0.0.1"
    port = options.port or _free_port(host)
    name = options.cluster_name or f"local-{port}"
    with_stats = options.stats_port is not None
    nodes = []
    for index in range(options.cluster_size):
        node_port = port if index == 0 else _free_port(host)
        stats_port = None
        if with_stats:
            stats_port = options.stats_port if index == 0 and options.stats_port else _free_port(options.stats_host)
        nodes.append({"node_id": index + 1, "index": index, "address": options.advertise_host or host,
                      "port": node_port, "stats_port": stats_port, "peer_port": _free_port(host),
                      "az": f"local-1{'abcdefghijklmnopqrstuvwxyz'[index % 26]}"})
    shared = _shared_args(argv)

    def command(node: dict) -> list[str]:
        args = [sys.executable, "-m", "daxlocal", *shared, "--cluster-name", name,
                "--node-index", str(node["index"]), "--port", str(node["port"]), "--peer-port", str(node["peer_port"])]
        if node["stats_port"] is not None:
            args += ["--stats-port", str(node["stats_port"])]
        return args

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    procs = {node["index"]: subprocess.Popen(command(node), preexec_fn=_die_with_parent) for node in nodes}
    for node in nodes:
        for attempt in range(START_ATTEMPTS):
            proc = procs[node["index"]]
            if _wait_port(host, node["port"], proc, timeout=60):
                break
            # A free port picked above can be taken by another process before the node binds it
            # (seen on a busy CI box running several test sessions): a node that exited at once
            # gets new ports of its own choosing and another try. A fixed port is not ours to change.
            if proc.poll() is None or attempt == START_ATTEMPTS - 1 or (node["index"] == 0 and options.port):
                print(f"daxlocal cluster {name}: node {node['node_id']} did not start "
                      f"({'exited ' + str(proc.returncode) if proc.poll() is not None else 'not listening after 60 s'})",
                      file=sys.stderr, flush=True)
                _stop_all(procs)
                return 1
            print(f"daxlocal cluster {name}: node {node['node_id']} exited at start ({proc.returncode}); "
                  f"retrying on new ports", file=sys.stderr, flush=True)
            node["port"], node["peer_port"] = _free_port(host), _free_port(host)
            if node["stats_port"] is not None and not (node["index"] == 0 and options.stats_port):
                node["stats_port"] = _free_port(options.stats_host)
            procs[node["index"]] = subprocess.Popen(command(node), preexec_fn=_die_with_parent)
    for node in nodes:
        stats = f"stats {node['stats_port']}, " if node["stats_port"] else ""
        print(f"daxlocal cluster {name}: node {node['node_id']} {node['address']}:{node['port']} "
              f"({stats}az {node['az']})", flush=True)
    print("DAXLOCAL_CLUSTER " + json.dumps({"name": name, "table": options.cluster_table, "nodes": nodes}), flush=True)

    while not stopping.wait(0.2):
        for node in nodes:
            proc = procs[node["index"]]
            if proc.poll() is None:
                continue
            # A lost node comes back on its own ports with a new incarnation: a replica.
            print(f"daxlocal cluster {name}: node {node['node_id']} exited ({proc.returncode}); restarting",
                  flush=True)
            time.sleep(RESTART_DELAY)
            procs[node["index"]] = subprocess.Popen(command(node), preexec_fn=_die_with_parent)
    _stop_all(procs)
    return 0


def _stop_all(procs: dict) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in procs.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
