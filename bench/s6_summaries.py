"""Scenario 6: summaries — runs bench/summaries.py (another engineer's benchmark, unchanged) as a
subprocess with its own DynamoDB Local and Redis, and turns its output into rows and JSON."""

from __future__ import annotations

import re
import subprocess
import sys

from .stack import ROOT
from .stats import say


def run(stack, ctx, *, sessions: int, samples: int) -> dict:
    say(f"scenario 6: bench/summaries.py --sessions {sessions} --samples {samples} (its own stack)")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "summaries.py"), "--sessions", str(sessions),
                           "--samples", str(samples)], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"bench/summaries.py exited {proc.returncode}: {proc.stderr[-2000:]}")
    throughput, latency = [], None
    for line in proc.stdout.splitlines():
        m = re.match(r"\s*(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s*$", line)
        if m:
            throughput.append({"turns_per_session": int(m[1]), "sessions": int(m[2]), "seconds": float(m[3]),
                               "summaries_per_min": float(m[4])})
        m = re.search(r"over (\d+) triggers .*p50 ([\d.]+) ms, p95 ([\d.]+) ms", line)
        if m:
            latency = {"triggers": int(m[1]), "p50_ms": float(m[2]), "p95_ms": float(m[3])}
    rows = [["6 summaries (1 solo worker)", f"{t['turns_per_session']}-turn sessions",
             f"{t['summaries_per_min']:,.0f} summaries/min", f"{t['sessions']} sessions in {t['seconds']:.1f} s", ""]
            for t in throughput]
    if latency:
        rows.append(["6 summaries (1 solo worker)", "trigger → summary visible",
                     f"p50 {latency['p50_ms']:.0f} ms / p95 {latency['p95_ms']:.0f} ms", f"{latency['triggers']} triggers", ""])
    return {"sessions": sessions, "samples": samples, "throughput": throughput, "latency": latency,
            "stdout": proc.stdout, "rows": rows}
