"""Run the benchmarks for two checkouts of the repository side by side: before (an older commit) and after (this tree).

Each benchmark runs for both trees back to back, alternating which goes first (A B, B A, A B, …), for `--rounds`
rounds with the same parameters, so a drift in the machine's load falls on both. Every run is the tree's own
`bench/` script started with the tree's own virtualenv (`<tree>/.venv/bin/python`, working directory the tree,
through the small BOOTSTRAP below), so module paths that moved between the commits (the sandbox, the database
module) need no change to the old code. A run that fails to finish is run again (at most 3 attempts). The report gives, per figure, the median and min–max of each tree, the ratio after/before
of the medians, in how many rounds after beat before, and whether the difference is within noise.

Benchmarks: `intake` (bench.webhook_intake), `worker` (bench.worker_throughput), `checkout` (bench.checkout_overhead
against the service) and `floor` (the same shoppers against bench/floor_app.py). `--db sqlite` runs intake and
worker on a fresh SQLite file instead of PostgreSQL (`--db both`: both kinds): the driver swaps the scripts'
`fresh_postgres_database` for one that yields a SQLite URL before running the module (the scripts themselves only
know PostgreSQL). checkout and
floor are PostgreSQL only (the floor app writes with psycopg).

Run (from this tree, the base checked out and installed elsewhere):
    git worktree add ../bench13-base a721b06 && (cd ../bench13-base && python3 -m venv .venv \\
        && .venv/bin/pip install -q -e ".[dev]")
    .venv/bin/python -m bench.side_by_side --base ../bench13-base --rounds 5 --out side_by_side.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs a bench module in a tree, adapted by the driver only (the scripts and the code they measure are unchanged):
# with `sqlite`, the scripts' fresh_postgres_database yields a fresh SQLite file instead; and bench_app's table is
# created right after the migrations, because its two gunicorn workers both create it at start-up, and on
# PostgreSQL the loser of that race fails to boot and gunicorn shuts down mid-run (fixed in bench_app.py since,
# not in older trees). argv: postgresql|sqlite, the module, then the module's own arguments.
BOOTSTRAP = """
import contextlib, os, runpy, sqlite3, sys, tempfile
import psycopg
import bench.common as common

BENCH_ROWS = "CREATE TABLE IF NOT EXISTS bench_rows (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)"

@contextlib.contextmanager
def fresh_sqlite_database(prefix="bench"):
    with tempfile.TemporaryDirectory(prefix=prefix + "-") as folder:
        yield "sqlite:///" + os.path.join(folder, "bench.db")

migrate_only = common.migrate

def migrate_then_create_bench_rows(url):
    migrate_only(url)
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(BENCH_ROWS)
    else:
        with psycopg.connect(url) as conn:
            conn.execute(BENCH_ROWS)

if sys.argv[1] == "sqlite":
    common.fresh_postgres_database = fresh_sqlite_database
common.migrate = migrate_then_create_bench_rows
module = sys.argv[2]
sys.argv = [module, *sys.argv[3:]]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: the module run, its arguments, and the figures the report compares."""

    module: str
    args: tuple[str, ...]
    figures: tuple[str, ...]
    higher_is_better: tuple[str, ...]
    sqlite: bool


BENCHMARKS = {
    "intake": Benchmark("bench.webhook_intake", (), (
        "throughput_ratio", "webhook_intake_rps", "bare_insert_rps", "latency_at_100rps_p50_ms",
        "latency_at_100rps_p99_ms"), ("throughput_ratio", "webhook_intake_rps", "bare_insert_rps"), True),
    "worker": Benchmark("bench.worker_throughput", (), (
        "jobs_per_second", "rss_mib_after_1000", "rss_mib_after_10000", "rss_growth_percent"),
        ("jobs_per_second",), True),
    "checkout": Benchmark("bench.checkout_overhead", ("--app", "service"), (
        "balance_overhead_p50_ms", "balance_overhead_p99_ms", "apply_overhead_p50_ms", "apply_overhead_p99_ms",
        "direct_p50_ms"), (), False),
    "floor": Benchmark("bench.checkout_overhead", ("--app", "floor"), (
        "balance_overhead_p50_ms", "balance_overhead_p99_ms", "apply_overhead_p50_ms", "apply_overhead_p99_ms",
        "direct_p50_ms"), (), False),
}


def tree_python(tree: Path) -> str:
    """The interpreter of the tree's own virtualenv."""
    python = tree / ".venv" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} not found: create the tree's venv first (see this module's docstring)")
    return str(python)


def run_with_retries(tree: Path, bench: Benchmark, extra: list[str], db: str, attempts: int = 3) -> dict:
    """Run one benchmark, again (up to `attempts` in all) when a run fails to finish.

    The scripts of older trees have a start-up race (bench_app's two gunicorn workers both create its table; the
    loser fails to boot and gunicorn stops mid-run). A failed run measured nothing, so it is run again; each
    failure is shown on stderr and counted in the report (`_failed_attempts`)."""
    for attempt in range(1, attempts + 1):
        try:
            report = run_once(tree, bench, extra, db)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
            print(f"  attempt {attempt} failed: {str(error)[-600:]}", file=sys.stderr, flush=True)
            if attempt == attempts:
                raise
            continue
        report["_failed_attempts"] = attempt - 1
        return report
    raise AssertionError("unreachable")


def run_once(tree: Path, bench: Benchmark, extra: list[str], db: str) -> dict:
    """Run one benchmark in one tree; returns the JSON report it printed plus the load average at the start."""
    cmd = [tree_python(tree), "-c", BOOTSTRAP, db, bench.module, *bench.args, *extra]
    # The scripts choose their own databases and settings; nothing from the caller's shell may leak in.
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "VIRTUAL_ENV", "PYTHONPATH")}
    load = os.getloadavg()[0]
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:1] + cmd[3:])} ({db}) in {tree} failed:\n"
                           f"{done.stderr[-3000:]}")
    report = json.loads(done.stdout[done.stdout.index("{"):])
    report["_load_at_start"] = round(load, 2)
    report["_seconds"] = round(time.monotonic() - started, 1)
    return report


def summarise(values: list[float]) -> dict:
    """Median and min–max of a list of figures."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def verdict(before: list[float], after: list[float], higher_is_better: bool) -> str:
    """Plain words on a difference: within noise unless every round agrees and the spreads do not overlap."""
    wins = sum((a > b) if higher_is_better else (a < b) for b, a in zip(before, after, strict=True))
    n = len(before)
    overlap = min(after) <= max(before) and min(before) <= max(after)
    if overlap or 0 < wins < n:
        return f"within noise (after better in {wins}/{n} rounds)"
    return f"{'better' if wins == n else 'worse'} in {n}/{n} rounds, spreads apart"


def report_table(results: dict, runs: list[tuple[str, str]]) -> str:
    """The markdown table: figure, before median (min–max), after median (min–max), ratio after/before, verdict."""
    lines = ["| benchmark | db | figure | before: median (min–max) | after: median (min–max) | after/before | "
             "difference |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, db in runs:
        bench = BENCHMARKS[name]
        key = f"{name}/{db}"
        if key not in results or not results[key]["before"]:
            continue
        for figure in bench.figures:
            before = [r[figure] for r in results[key]["before"]]
            after = [r[figure] for r in results[key]["after"]]
            # A run cut short may have one more run of one tree: compare complete pairs only.
            pairs = min(len(before), len(after))
            if not pairs:
                continue
            before, after = before[:pairs], after[:pairs]
            b, a = summarise(before), summarise(after)
            ratio = a["median"] / b["median"] if b["median"] else float("nan")
            lines.append(f"| {name} | {db} | {figure} | {b['median']:g} ({b['min']:g}–{b['max']:g}) | "
                         f"{a['median']:g} ({a['min']:g}–{a['max']:g}) | {ratio:.2f} | "
                         f"{verdict(before, after, figure in bench.higher_is_better)} |")
    return "\n".join(lines)


def floor_table(results: dict) -> str:
    """Checkout overhead next to the floor app's, for each tree (medians over the rounds; target apply ≤ 2× floor)."""
    floor_runs = results.get("floor/postgresql", {})
    if not results.get("checkout/postgresql", {}).get("before") or not floor_runs.get("after"):
        return ""
    lines = ["| tree | figure | service: median (min–max) | floor app: median (min–max) | service/floor | "
             "service − floor | service/floor, round by round |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for tree in ("before", "after"):
        for figure in ("balance_overhead_p50_ms", "apply_overhead_p50_ms", "balance_overhead_p99_ms",
                       "apply_overhead_p99_ms"):
            s = summarise([r[figure] for r in results["checkout/postgresql"][tree]])
            # Run with --after-only floor, the floor app ran once a round (in the after tree): both compare to it.
            f = summarise([r[figure] for r in floor_runs[tree] or floor_runs["after"]])
            ratio = s["median"] / f["median"] if f["median"] > 0 else float("nan")
            # Each round's service run next to the floor run of the same round.
            by_round = [a[figure] / b[figure] for a, b in zip(results["checkout/postgresql"][tree],
                                                               floor_runs[tree] or floor_runs["after"], strict=False)
                        if b[figure] > 0]
            rounds = " / ".join(f"{r:.1f}×" for r in by_round)
            lines.append(f"| {tree} | {figure} | {s['median']:g} ({s['min']:g}–{s['max']:g}) | "
                         f"{f['median']:g} ({f['min']:g}–{f['max']:g}) | {ratio:.1f}× | "
                         f"{s['median'] - f['median']:+.1f} ms | {rounds} |")
    return "\n".join(lines)


def main() -> None:
    """Parse the options, run every benchmark for both trees interleaved, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, help="the older tree (with its own .venv)")
    parser.add_argument("--after", type=Path, default=ROOT, help="the newer tree (default: this one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--benchmarks", default="intake,worker,checkout,floor")
    parser.add_argument("--db", default="postgresql", help="postgresql, sqlite or both (sqlite: intake and worker)")
    parser.add_argument("--intake-seconds", default="15")
    parser.add_argument("--worker-jobs", default="11000")
    parser.add_argument("--checkout-rounds", default="15", help="lookups + applies per shopper")
    parser.add_argument("--after-only", default="", help="benchmarks run in the after tree only (e.g. floor: the "
                        "floor app is the same file in both trees), once a round")
    parser.add_argument("--out", type=Path, help="write every run's report here as JSON (rewritten after each run)")
    parser.add_argument("--report", type=Path, help="print the tables of an earlier --out file; runs nothing")
    args = parser.parse_args()
    if args.report:
        results = json.loads(args.report.read_text())
        runs = [tuple(key.split("/")) for key in results if "/" in key]
        print_report(results, runs)
        return
    if args.base is None:
        parser.error("--base is required unless --report is given")
    trees = {"before": args.base.resolve(), "after": args.after.resolve()}
    extra = {"intake": ["--seconds", args.intake_seconds], "worker": ["--jobs", args.worker_jobs],
             "checkout": ["--rounds", args.checkout_rounds], "floor": ["--rounds", args.checkout_rounds]}
    dbs = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    runs = [(name, db) for db in dbs for name in args.benchmarks.split(",")
            if db == "postgresql" or BENCHMARKS[name].sqlite]
    results: dict = {"trees": {k: str(v) for k, v in trees.items()}, "commits": {}}
    for label, tree in trees.items():
        results["commits"][label] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree,
                                                   capture_output=True, text=True).stdout.strip()
    for round_ in range(args.rounds):
        order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
        for name, db in runs:
            for label in order:
                if label == "before" and name in args.after_only.split(","):
                    continue
                report = run_with_retries(trees[label], BENCHMARKS[name], extra[name], db)
                results.setdefault(f"{name}/{db}", {"before": [], "after": []})[label].append(report)
                shown = {k: report.get(k) for k in BENCHMARKS[name].figures[:3]}
                print(f"round {round_ + 1}/{args.rounds} {name}/{db} {label}: {shown} "
                      f"(load {report['_load_at_start']}, {report['_seconds']} s)", file=sys.stderr, flush=True)
                if args.out:
                    args.out.write_text(json.dumps(results, indent=1))
    print_report(results, runs)


def print_report(results: dict, runs: list[tuple[str, str]]) -> None:
    """Print both tables for a set of results."""
    rounds = max(len(v["before"]) for k, v in results.items() if "/" in k)
    print(f"before = {results['commits']['before']} ({results['trees']['before']}), after = "
          f"{results['commits']['after']} ({results['trees']['after']}), {rounds} rounds, alternating order\n")
    print(report_table(results, runs))
    floor = floor_table(results)
    if floor:
        print("\nCheckout overhead next to the floor app (PostgreSQL):\n")
        print(floor)


if __name__ == "__main__":
    main()
