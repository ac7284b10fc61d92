"""`make bench` — run the benchmark scenarios, write bench/results/latest.json, print a table.

    .venv/bin/python -m bench [--scenario NAME] [--quick] [--sessions-small N --sessions-large N ...]

Starts its own DynamoDB Local, redis-server, DAX node and gunicorn servers on free ports (see
bench/stack.py for reusing a stack), loads data when missing, runs the scenarios and stops
everything it started. Measurements interleave the variants they compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.stack import WEB_CONCURRENCY, Stack  # noqa: E402
from bench.stats import say  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SCENARIOS = ("context", "ceiling", "append", "staff", "ratelimit", "summaries", "stream", "sse", "search", "failover",
             "metrics")
ALIASES = {"1": "context", "2": "ceiling", "3": "append", "4": "staff", "5": "ratelimit", "6": "summaries", "7": "stream",
           "8": "sse", "9": "search", "10": "failover", "11": "metrics"}

# Sizes: QUICK is a smoke run (all scenarios in under 3 minutes on a 2-core machine).
SIZES = {
    "quick": dict(context_sessions=30, context_rounds=2, ceiling_concurrency=8, ceiling_rounds=3, ceiling_seconds=1.5,
                  append_sessions=40, append_rounds=1, append_seconds=1.5, append_tx=40,
                  staff_small=500, staff_large=5000, staff_turns=3, staff_big=2000, staff_rounds=8,
                  rate_rounds=3, rate_seconds=1.0, summaries_sessions=2, summaries_samples=5,
                  stream_sessions=40, stream_seconds=8.0,
                  sse_streams=200, sse_rounds=3, sse_seconds=3.0, sse_idle=5.0,
                  search_turns=20_000, search_rounds=5,
                  failover_readers=3, failover_writers=3, failover_warm=3.0, failover_max=45.0, failover_settle=3.0,
                  metrics_concurrency=8, metrics_rounds=2, metrics_seconds=2.0),
    "full": dict(context_sessions=200, context_rounds=3, ceiling_concurrency=8, ceiling_rounds=5, ceiling_seconds=3.0,
                 append_sessions=200, append_rounds=3, append_seconds=3.0, append_tx=200,
                 staff_small=10_000, staff_large=100_000, staff_turns=10, staff_big=10_000, staff_rounds=100,
                 rate_rounds=5, rate_seconds=2.0, summaries_sessions=10, summaries_samples=30,
                 stream_sessions=200, stream_seconds=30.0,
                 sse_streams=200, sse_rounds=5, sse_seconds=6.0, sse_idle=20.0,
                 search_turns=1_000_000, search_rounds=20,
                 failover_readers=6, failover_writers=6, failover_warm=10.0, failover_max=60.0, failover_settle=10.0,
                 metrics_concurrency=8, metrics_rounds=12, metrics_seconds=2.5),
}


class Context:
    """What the scenarios share: the stack, its servers, API keys, sizes."""

    def __init__(self, stack: Stack, sizes: dict, quick: bool):
        self.stack, self.sizes, self.quick = stack, sizes, quick
        self.context_sessions = sizes["context_sessions"]
        self.read_token = self.write_token = ""

    def server(self, name: str):
        return self.stack.servers[name]


def machine_info() -> dict:
    def run(*cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return None

    cpu = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024 // 1024} GiB"
                break
    except OSError:
        pass
    from importlib.metadata import version

    versions = {name: version(name) for name in ("Django", "pynamodb", "redis", "django-redis", "gunicorn",
                                                 "amazon-dax-client", "django-ninja", "botocore")}
    versions["python"] = platform.python_version()
    versions["redis-server"] = run("redis-server", "--version")
    versions["java"] = run("java", "-version")
    return {
        "cpu": cpu, "cpus": os.cpu_count(), "memory": mem, "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(), "versions": versions,
        "git_commit": run("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        "gunicorn_workers": WEB_CONCURRENCY,
    }


def table_markdown(rows: list[list[str]]) -> str:
    head = ["Scenario", "Metric", "Value", "Target / detail", "Verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", help=f"one of {', '.join(SCENARIOS)} (or 1-11); repeatable")
    parser.add_argument("--quick", action="store_true", help="reduced sizes: a smoke run")
    parser.add_argument("--sessions-small", type=int, help="staff pages: sessions in the small table (full: 10,000)")
    parser.add_argument("--sessions-large", type=int, help="staff pages: sessions in the large table (full: 100,000)")
    parser.add_argument("--turns-per-session", type=int, help="staff pages: mean turns per session (full: 10)")
    parser.add_argument("--big-turns", type=int, help="staff pages: turns of the one big session (full: 10,000)")
    parser.add_argument("--search-turns", type=int, help="search: turns indexed per engine (full: 1,000,000)")
    parser.add_argument("--search-engines", default="sqlite,postgres", help="search: engines to measure (comma-separated)")
    parser.add_argument("--ddb-dir", type=Path, help="keep our DynamoDB Local's data here (load large sets once)")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)

    chosen = []
    for name in args.scenario or SCENARIOS:
        name = ALIASES.get(name, name)
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
        chosen.append(name)
    sizes = dict(SIZES["quick" if args.quick else "full"])
    for flag, key in (("sessions_small", "staff_small"), ("sessions_large", "staff_large"),
                      ("turns_per_session", "staff_turns"), ("big_turns", "staff_big"), ("search_turns", "search_turns")):
        if getattr(args, flag) is not None:
            sizes[key] = getattr(args, flag)

    sizes["search_engines"] = args.search_engines
    started = time.monotonic()
    results: dict = {"started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "mode": "quick" if args.quick else "full", "sizes": sizes, "machine": machine_info(),
                     "scenarios": {}, "errors": {}}
    stack = Stack(ddb_dir=args.ddb_dir, keep_logs=args.keep_logs)
    # A kill (or a CI timeout) must still stop the servers the stack started, in the finally below.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        stack.start()
        stack.django_setup()
        results["stack"] = {"reused": stack.reused, "dax_node": "local (daxlocal)"}
        ctx = Context(stack, sizes, args.quick)
        from sessions_app.services.api_keys import api_key_create

        ctx.read_token = api_key_create(name=f"bench-read-{os.getpid()}", scope="read")[1]
        ctx.write_token = api_key_create(name=f"bench-write-{os.getpid()}", scope="write")[1]
        needs_http = {"context", "ceiling", "append", "stream", "sse"} & set(chosen)
        if needs_http:
            say(f"starting gunicorn servers ({WEB_CONCURRENCY} sync workers each)")
            stack.start_server("app", dax=True, table="bench-context")
            if "context" in chosen:
                stack.start_server("direct", dax=False, table="bench-context")
            if "append" in chosen:
                stack.start_server("append", dax=True, table="bench-append", counters=True)
            if "stream" in chosen:
                stack.start_server("stream", dax=True, table="bench-stream")
            stack.wait_servers()
        for name in chosen:
            say(f"--- scenario {SCENARIOS.index(name) + 1}: {name}")
            t0 = time.monotonic()
            try:
                out = run_scenario(name, stack, ctx, sizes)
            except Exception as exc:  # one failing scenario must not lose the others' results
                traceback.print_exc()
                results["errors"][name] = f"{type(exc).__name__}: {exc}"
                continue
            out["seconds"] = round(time.monotonic() - t0, 1)
            results["scenarios"][name] = out
            say(f"scenario {name} took {out['seconds']:.0f}s")
    finally:
        stack.stop()
    results["total_seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    rows = [row for name in chosen for row in results["scenarios"].get(name, {}).get("rows", [])]
    results["table"] = rows
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2, default=str))
    m = results["machine"]
    print()
    print(f"MangaAssist bench ({results['mode']}), {results['started_at']}, {results['total_seconds']:.0f}s — "
          f"{m['cpu']} × {m['cpus']} CPUs, {m['memory']}, Python {m['versions']['python']}, "
          f"gunicorn {WEB_CONCURRENCY} sync workers")
    print(table_markdown(rows))
    for name, error in results["errors"].items():
        print(f"scenario {name} FAILED: {error}")
    print(f"\nresults: {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 1 if results["errors"] else 0


def run_scenario(name: str, stack: Stack, ctx: Context, s: dict) -> dict:
    if name == "context":
        from bench import s1_context
        return s1_context.run(stack, ctx, sessions=s["context_sessions"], rounds=s["context_rounds"])
    if name == "ceiling":
        from bench import s2_ceiling
        return s2_ceiling.run(stack, ctx, concurrency=s["ceiling_concurrency"], rounds=s["ceiling_rounds"],
                              seconds=s["ceiling_seconds"])
    if name == "append":
        from bench import s3_append
        return s3_append.run(stack, ctx, sessions=s["append_sessions"], rounds=s["append_rounds"],
                             seconds=s["append_seconds"], tx_samples=s["append_tx"])
    if name == "staff":
        from bench import s4_staff
        return s4_staff.run(stack, ctx, small=s["staff_small"], large=s["staff_large"], turns_each=s["staff_turns"],
                            big_turns=s["staff_big"], rounds=s["staff_rounds"])
    if name == "ratelimit":
        from bench import s5_ratelimit
        return s5_ratelimit.run(stack, ctx, rounds=s["rate_rounds"], seconds=s["rate_seconds"])
    if name == "summaries":
        from bench import s6_summaries
        return s6_summaries.run(stack, ctx, sessions=s["summaries_sessions"], samples=s["summaries_samples"])
    if name == "stream":
        from bench import s7_stream
        return s7_stream.run(stack, ctx, sessions=s["stream_sessions"], seconds=s["stream_seconds"])
    if name == "sse":
        from bench import s8_sse
        return s8_sse.run(stack, ctx, sessions=s["context_sessions"], streams=s["sse_streams"], rounds=s["sse_rounds"],
                          seconds=s["sse_seconds"], idle=s["sse_idle"])
    if name == "search":
        from bench import s9_search
        return s9_search.run(stack, ctx, turns=s["search_turns"], rounds=s["search_rounds"],
                             engines=tuple(s["search_engines"].split(",")))
    if name == "failover":
        from bench import s10_failover
        return s10_failover.run(stack, ctx, readers=s["failover_readers"], writers=s["failover_writers"],
                                warm_seconds=s["failover_warm"], max_seconds=s["failover_max"],
                                settle_seconds=s["failover_settle"])
    if name == "metrics":
        from bench import s11_metrics
        return s11_metrics.run(stack, ctx, concurrency=s["metrics_concurrency"], rounds=s["metrics_rounds"],
                               seconds=s["metrics_seconds"])
    raise ValueError(name)


if __name__ == "__main__":
    sys.exit(main())
