#!/usr/bin/env python3
"""Writes BENCHMARKS.md (to stdout) from criterion's output of the last
`cargo bench -p kompoz-benches` run: one table per group with the median
nanoseconds per call of every contender and the kompoz/peer ratio, and a
summary of each ratio against its target.

Usage (from the workspace root):

    cargo bench -p kompoz-benches && python3 benches/report.py > BENCHMARKS.md

Criterion keeps its results in $CARGO_TARGET_DIR/criterion (default
target/criterion); pass another directory as the first argument.
"""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

COMMAND = "cargo bench -p kompoz-benches && python3 benches/report.py > BENCHMARKS.md"

# (group, title, what it measures, reference peer or None for the fastest
# peer, target ratio or None)
GROUPS = [
    ("breaker_closed_success", "Circuit breaker, CLOSED, success calls (1 thread)",
     "A call through a CLOSED breaker whose inner step succeeds at once.", None, 0.25),
    ("breaker_closed_failure", "Circuit breaker, CLOSED, failure calls (1 thread)",
     "A call through a CLOSED breaker whose inner step fails at once; thresholds "
     "are never reached (one success per 20,000 calls ends the streak).", None, 0.25),
    ("breaker_closed_success_2threads", "Circuit breaker, CLOSED, success calls (2 threads, one breaker)",
     "Two threads calling one shared breaker; wall time per call.", None, 0.25),
    ("breaker_closed_failure_2threads", "Circuit breaker, CLOSED, failure calls (2 threads, one breaker)",
     "Two threads calling one shared breaker; wall time per call.", None, 0.25),
    ("breaker_open", "Circuit breaker, OPEN (rejection)",
     "A call rejected by an OPEN breaker; the inner step does not run.", None, None),
    ("limiter_uncontended", "Concurrency limit, uncontended",
     "Acquire a permit, run the ready inner step, release (pool of 10).", "tokio", 0.5),
    ("limiter_contended_2threads", "Concurrency limit, contended (2 threads, 1 permit)",
     "Two threads contending for a single permit; wall time per call "
     "(a ratio at most 1 means throughput at least the peer's).", "tokio", 1.0),
    ("timeout_ready", "Timeout on tokio, inner ready at once",
     "kompoz's `with_timeout` on `TokioClock` vs `tokio::time::timeout` "
     "(and tower's `Timeout`), inside a current-thread runtime.", "tokio", 0.5),
    ("rate_limit_check", "Rate limit check",
     "One admitted check (kompoz: a `rate_limited(...).reject_when_full()` call "
     "around a ready rule; governor: `check()` on a direct limiter).", "governor", 1.0),
    ("composition", "Composition: timeout ∘ limiter ∘ breaker",
     "The three wrappers around a ready inner step, vs the same stack in "
     "tower + tower-resilience.", "tower", None),
]

BASELINE = "direct"


def is_kompoz(name: str) -> bool:
    """kompoz's rows: "kompoz" (the default configuration, the one the
    targets are judged on) and variants such as
    "kompoz (count_successes(false))", which are never peers."""
    return name == "kompoz" or name.startswith("kompoz ")


def criterion_dir() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    return Path(os.environ.get("CARGO_TARGET_DIR", "target")) / "criterion"


def load(root: Path) -> dict:
    """{group: {function: median ns}} from every */*/new/ directory."""
    results: dict = {}
    for bench in root.glob("*/*/new/benchmark.json"):
        new = bench.parent
        meta = json.loads(bench.read_text())
        estimates = json.loads((new / "estimates.json").read_text())
        group = meta["group_id"]
        function = meta.get("function_id") or meta.get("value_str") or new.parent.name
        results.setdefault(group, {})[function] = estimates["median"]["point_estimate"]
    return results


def run(cmd: list) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> list:
    model = "unknown"
    for line in run(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    hypervisor = ""
    for line in run(["lscpu"]).splitlines():
        if line.startswith("Hypervisor vendor:"):
            hypervisor = f" (virtual machine, {line.split(':', 1)[1].strip()})"
    return [
        f"- CPU: {model}, {os.cpu_count()} cores{hypervisor}",
        f"- OS: {platform.system()} {platform.release()}",
        f"- Rust: {run(['rustc', '--version'])}",
        f"- Load average when this report was written: {run(['cat', '/proc/loadavg'])}",
    ]


def fmt_ns(ns: float) -> str:
    if ns >= 1000:
        return f"{ns:,.0f}"
    if ns >= 100:
        return f"{ns:.0f}"
    return f"{ns:.1f}"


def reference(rows: dict, peer) -> tuple:
    peers = {k: v for k, v in rows.items() if not is_kompoz(k) and k != BASELINE}
    if not peers:
        return None, None
    if peer is None or peer not in peers:
        name = min(peers, key=peers.get)
        return f"fastest peer ({name})", peers[name]
    return peer, peers[peer]


def main() -> None:
    root = criterion_dir()
    results = load(root)
    if not results:
        sys.exit(f"no criterion results under {root}: run `cargo bench -p kompoz-benches` first")

    out = [
        "# Benchmarks",
        "",
        "kompoz against the crates users would pick instead, in the same run on the",
        "same machine. Every contender wraps an inner step that is ready at once and",
        "each call is polled once with a no-op waker (tower services: `ready()` then",
        "`call()`, each polled once), so a figure is the wrapper's own cost. Two-thread",
        "groups spin on the future until it completes. Figures are criterion's median",
        "time per call; ratios are kompoz / peer medians (lower is better).",
        "",
        "Reproduce (from the workspace root; the report is regenerated, not edited):",
        "",
        "```sh",
        COMMAND,
        "```",
        "",
        "Machine:",
        "",
        *machine(),
        "",
        "## Targets",
        "",
        "| group | kompoz ns | against | peer ns | ratio | target | met |",
        "|---|---:|---|---:|---:|---:|:---:|",
    ]
    for group, title, _, peer, target in GROUPS:
        rows = results.get(group)
        if not rows or "kompoz" not in rows:
            continue
        name, peer_ns = reference(rows, peer)
        if peer_ns is None:
            continue
        ratio = rows["kompoz"] / peer_ns
        met = "—" if target is None else ("yes" if ratio <= target else "**no**")
        target_s = "—" if target is None else f"≤ {target:.2f}"
        out.append(
            f"| {title} | {fmt_ns(rows['kompoz'])} | {name} | {fmt_ns(peer_ns)} "
            f"| {ratio:.2f} | {target_s} | {met} |"
        )

    for group, title, what, peer, target in GROUPS:
        rows = results.get(group)
        if not rows:
            continue
        out += ["", f"## {title}", "", what, ""]
        kompoz = rows.get("kompoz")
        out += ["| contender | ns per call | kompoz / contender |", "|---|---:|---:|"]
        variants = sorted(k for k in rows if is_kompoz(k) and k != "kompoz")
        order = ["kompoz"] + variants + sorted(
            (k for k in rows if not is_kompoz(k) and k != BASELINE), key=rows.get
        )
        if BASELINE in rows:
            order.append(BASELINE)
        for name in order:
            if name not in rows:
                continue
            ns = rows[name]
            if is_kompoz(name) or kompoz is None:
                ratio = "—"
            else:
                ratio = f"{kompoz / ns:.2f}"
            label = f"{name} (the inner step alone)" if name == BASELINE else name
            out.append(f"| {label} | {fmt_ns(ns)} | {ratio} |")

    print("\n".join(out))


if __name__ == "__main__":
    main()
