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
     "A call rejected by an OPEN breaker; the inner step does not run. "
     "\"kompoz (FastClock)\" is the same breaker on `FastClock::new(TokioClock)` "
     "(`now()` from the CPU's counter; not for paused time).", None, 0.5),
    ("limiter_uncontended", "Concurrency limit, uncontended",
     "Acquire a permit, run the ready inner step, release (pool of 10).", "tokio", 0.5),
    ("limiter_contended_2threads", "Concurrency limit, contended (2 threads, 1 permit)",
     "Two threads contending for a single permit; wall time per call "
     "(a ratio at most 1 means throughput at least the peer's).", "tokio", 1.0),
    ("limiter_contended_runtime", "Concurrency limit, contended on a runtime (64 tasks, 2 workers, 4 permits)",
     "64 tasks on a two-worker tokio runtime, each call awaited, through a pool "
     "of 4 permits; each caller holds its permit across one yield (`direct`: the "
     "yield alone). Wall time per acquisition. \"kompoz (Semaphore)\" is "
     "kompoz's semaphore used directly, as the peers are.", "tokio", 0.8),
    ("timeout_ready", "Timeout on tokio, inner ready at once",
     "kompoz's `with_timeout` on `TokioClock` vs `tokio::time::timeout` "
     "(and tower's `Timeout`), inside a current-thread runtime.", "tokio", 0.5),
    ("timeout_armed", "Timeout on tokio, inner pending once (timer armed and disarmed)",
     "Each call awaited in a current-thread runtime; the inner step yields once, "
     "so the timer is armed and then disarmed. The ratio is of the overheads "
     "over the bare call (`direct`): (kompoz − direct) / (peer − direct).", "tokio", 0.8),
    ("rate_limit_check", "Rate limit check",
     "One admitted check (kompoz: a `rate_limited(...).reject_when_full()` call "
     "around a ready rule; governor: `check()` on a direct limiter, which reads "
     "the CPU's counter through quanta). \"kompoz (FastClock)\" is the same "
     "limiter on `FastClock::new(TokioClock)`.", "governor", 1.0),
    ("composition", "Composition: timeout ∘ limiter ∘ breaker",
     "The three wrappers around a ready inner step, vs the same stack in "
     "tower + tower-resilience.", "tower", None),
    ("call_api", "Call API: limit ∘ retry ∘ breaker ∘ timeout",
     "A `Policy` call (`policy.call(|| op(x))`) around an operation ready at "
     "once, against the same stack in the algebra (\"kompoz (algebra)\", the "
     "reference: the call API may cost at most 10% more), failsafe's `call` with "
     "a tokio semaphore, backon's retry and `tokio::time::timeout` (what the "
     "failsafe program of issue 13's trial writes), and tower + "
     "tower-resilience (tower's limit, retry and timeout, tower-resilience's "
     "breaker).", "kompoz (algebra)", 1.10),
    ("tower_stack", "kompoz-tower: timeout ∘ limit ∘ breaker as tower layers",
     "One request (`ready()` then `call()`) through kompoz-tower's `with_timeout` ∘ "
     "`limited` ∘ `CircuitBreakerLayer` on `TokioClock`, vs tower's `timeout` ∘ "
     "`concurrency_limit` ∘ tower-resilience's circuit breaker, around the same "
     "`service_fn` leaf (`direct`: the leaf alone).", "tower", None),
]

# Groups whose ratio is of overheads over the bare call (`direct`).
OVERHEAD = {"timeout_armed"}

# kompoz variants judged against the target as well as the default row:
# they are opt-in configurations, listed under the default one.
JUDGED_VARIANTS = {
    "breaker_open": ["kompoz (FastClock)"],
    "rate_limit_check": ["kompoz (FastClock)"],
    "limiter_contended_runtime": ["kompoz (Semaphore)"],
}

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
    # A kompoz variant named as the reference (the algebra, for the call
    # API) is judged against like a peer.
    if peer is not None and is_kompoz(peer) and peer in rows:
        return peer, rows[peer]
    peers = {k: v for k, v in rows.items() if not is_kompoz(k) and k != BASELINE}
    if not peers:
        return None, None
    if peer is None or peer not in peers:
        name = min(peers, key=peers.get)
        return f"fastest peer ({name})", peers[name]
    return peer, peers[peer]


def ratio_of(group: str, rows: dict, kompoz_ns: float, peer_ns: float) -> float:
    """kompoz / peer, or for an overhead group (kompoz − direct) / (peer − direct)."""
    if group in OVERHEAD and BASELINE in rows:
        base = rows[BASELINE]
        return (kompoz_ns - base) / (peer_ns - base)
    return kompoz_ns / peer_ns


def main() -> None:
    root = criterion_dir()
    results = load(root)
    if not results:
        sys.exit(f"no criterion results under {root}: run `cargo bench -p kompoz-benches` first")

    out = [
        "# Benchmarks",
        "",
        "kompoz against the crates users would pick instead, in the same run on the",
        "same machine. Unless a group says otherwise, every contender wraps an inner",
        "step that is ready at once and each call is polled once with a no-op waker",
        "(tower services: `ready()` then `call()`, each polled once), so a figure is",
        "the wrapper's own cost. Two-thread groups spin on the future until it",
        "completes; runtime groups await each call through a real tokio runtime.",
        "Figures are criterion's median time per call; ratios are kompoz / peer",
        "medians (lower is better). Targets are judged on the default configuration",
        "(\"kompoz\"); an opt-in variant judged too is listed under it.",
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
        for row in ["kompoz"] + JUDGED_VARIANTS.get(group, []):
            if row not in rows:
                continue
            ratio = ratio_of(group, rows, rows[row], peer_ns)
            met = "—" if target is None else ("yes" if ratio <= target else "**no**")
            target_s = "—" if target is None else f"≤ {target:.2f}"
            label = title if row == "kompoz" else f"{title}: {row}"
            out.append(
                f"| {label} | {fmt_ns(rows[row])} | {name} | {fmt_ns(peer_ns)} "
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
            if name == peer and name != "kompoz" and kompoz is not None:
                ratio = f"{ratio_of(group, rows, kompoz, ns):.2f}"
            elif is_kompoz(name) or kompoz is None or name == BASELINE and group in OVERHEAD:
                ratio = "—"
            else:
                ratio = f"{ratio_of(group, rows, kompoz, ns):.2f}"
            label = f"{name} (the inner step alone)" if name == BASELINE else name
            out.append(f"| {label} | {fmt_ns(ns)} | {ratio} |")

    print("\n".join(out))


if __name__ == "__main__":
    main()
