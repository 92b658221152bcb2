"""Profile: where the time of one gift-card apply goes inside the service (cProfile, one thread, PostgreSQL).

The sandbox runs under gunicorn (latency `--latency-ms`, default 0, so the service's own work is what shows); the
service runs in this process behind Flask's test client (no gunicorn, no HTTP on the service side). Each measured
apply is a fresh cart and a fresh certificate, as in bench.checkout_overhead. Prints the median wall time of an
apply next to a direct sandbox lookup of a code, the profile grouped by where the time is spent (the database
driver, the ORM, the provider's HTTP, Flask and the schemas, logging, the service's own code) and the top functions.

Run: .venv/bin/python -m bench.profile_apply [--applies 300]. It also runs unchanged from an older tree that has
bench/common.py (e.g. the pre-renovation commit): `cd <tree> && .venv/bin/python - < <this file>`.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import pstats
import statistics
import time

import requests

from bench.common import fresh_postgres_database, gunicorn, migrate

MERCHANT = {"X-Merchant-Key": "sandbox-merchant-key", "X-Merchant-Secret": "sandbox-merchant-secret"}

# Where a function's own time is counted: the first group whose marker is in its file name (or, for a built-in,
# its name). Built-ins that wait on a socket are the provider's HTTP unless psycopg's (the database's) wait.
GROUPS = (
    ("database driver (psycopg, incl. waiting for PostgreSQL)", ("psycopg",)),
    ("ORM (sqlalchemy, flask_sqlalchemy)", ("sqlalchemy",)),
    ("provider HTTP (requests, urllib3, http.client, sockets: incl. waiting for the sandbox)",
     ("requests", "urllib3", "http/client", "socket", "ssl", "select", "selectors", "email/")),
    ("Flask, Werkzeug (routing, request, response, test client)", ("flask/", "werkzeug", "flask_cors", "click")),
    ("schemas (marshmallow, webargs, flask_smorest, apispec)", ("marshmallow", "webargs", "flask_smorest",
                                                                  "apispec")),
    ("rate limits (limits, flask_limiter)", ("limits", "flask_limiter")),
    ("logging, json", ("logging", "json")),
    ("service code", ("/service/",)),
)


# Calls counted per apply: (file name ending, function).
COUNTED = {
    "SQL statements (cursor.execute, incl. pool pings)": ("psycopg/cursor.py", "execute"),
    "pool pre-pings": ("_psycopg_common.py", "do_ping"),
    "commits": ("psycopg/connection.py", "commit"),
    "waits on PostgreSQL (psycopg's connection.wait)": ("psycopg/connection.py", "wait"),
    "provider HTTP requests": ("requests/sessions.py", "request"),
    "threads started": ("threading.py", "start"),
}


def group_of(filename: str, function: str) -> str:
    """The group a profiled function's own time belongs to."""
    where = function if filename == "~" else filename
    for name, markers in GROUPS:
        if any(marker in where for marker in markers):
            return name
    return "other (stdlib, hashing, typing, …)"


def sandbox_app_spec() -> str:
    """The sandbox's gunicorn app: outside the package since issue 13, inside it (service.sandbox) before."""
    if importlib.util.find_spec("sandbox") is not None:
        return "sandbox:create_sandbox_app()"
    return "service.sandbox:create_sandbox_app()"


def main() -> None:
    """Set up the sandbox and a database, profile the applies, print the breakdown."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--applies", type=int, default=300)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--dump", help="also save the raw profile here (pstats format, for print_callers etc.)")
    args = parser.parse_args()
    from service import create_app

    sandbox_env = {"SANDBOX_LATENCY_MS": str(args.latency_ms), "SERVICE_ENV": "development"}
    with gunicorn(sandbox_app_spec(), sandbox_env, workers=1, threads=8, health_path="/_health") as sandbox_url, \
            fresh_postgres_database("bench_profile") as db_url:
        migrate(db_url)
        warmup = 30
        codes = [requests.post(f"{sandbox_url}/instagift/v2/_control/certificates",
                               json={"face_value_cents": 10000}, timeout=10).json()["claim_code"]
                 for _ in range(args.applies + warmup)]
        app = create_app({"DATABASE_URL": db_url, "SANDBOX_URL": sandbox_url, "SERVICE_ENV": "development",
                          "LOOKUP_RATE_LIMIT": "100000/minute", "CART_CREATE_RATE_LIMIT": "100000/minute",
                          "LOG_FORMAT": "json"})
        client = app.test_client()
        direct_session = requests.Session()
        profile = cProfile.Profile()
        # Warm-up, then every other apply profiled: the unprofiled ones give the real time of an apply.
        timings: dict[str, list[float]] = {"direct": [], "apply": [], "apply_profiled": []}
        for i, code in enumerate(codes):
            profiled = i >= warmup and i % 2 == 1
            token = client.post("/v1/carts", json={"total_cents": 20000}).get_json()["cart_token"]
            t0 = time.perf_counter()
            direct = direct_session.get(f"{sandbox_url}/instagift/v2/claim_codes/{code}", headers=MERCHANT,
                                        timeout=30)
            t1 = time.perf_counter()
            if profiled:
                profile.enable()
            applied = client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code})
            if profiled:
                profile.disable()
            t2 = time.perf_counter()
            assert direct.ok and applied.status_code == 200, applied.get_data(as_text=True)
            if i >= warmup:
                timings["direct"].append((t1 - t0) * 1000)
                timings["apply_profiled" if profiled else "apply"].append((t2 - t1) * 1000)
    profiled_count = len(timings["apply_profiled"])
    if args.dump:
        profile.dump_stats(args.dump)
    stats = pstats.Stats(profile)
    total = sum(entry[2] for entry in stats.stats.values())  # own time of every function: the profiled total
    grouped: dict[str, float] = {}
    for (filename, _line, function), entry in stats.stats.items():
        key = group_of(filename, function)
        grouped[key] = grouped.get(key, 0.0) + entry[2]
    calls = sum(entry[1] for entry in stats.stats.values())
    per_apply = {name: sum(entry[0] for (filename, _line, function), entry in stats.stats.items()
                           if filename.endswith(suffix) and function == wanted) / profiled_count
                 for name, (suffix, wanted) in COUNTED.items()}
    print(f"{args.applies} applies (sandbox latency {args.latency_ms} ms), in-process through the test client, "
          f"PostgreSQL; half of them profiled")
    print(f"median: apply {statistics.median(timings['apply']):.2f} ms unprofiled, "
          f"{statistics.median(timings['apply_profiled']):.2f} ms profiled (cProfile slows Python code); direct "
          f"sandbox lookup {statistics.median(timings['direct']):.2f} ms")
    print(f"per apply: {calls / profiled_count:.0f} Python function calls, "
          + ", ".join(f"{n:g} {name}" for name, n in per_apply.items()))
    print(f"profiled time per apply: {total / profiled_count * 1000:.2f} ms\n")
    print("| where | ms per apply (profiled) | share |\n| --- | --- | --- |")
    for key, seconds in sorted(grouped.items(), key=lambda kv: -kv[1]):
        print(f"| {key} | {seconds / profiled_count * 1000:.2f} | {seconds / total:.0%} |")
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.top)
    print("\nTop functions by cumulative time:\n" + out.getvalue())
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
    print("Top functions by own time:\n" + out.getvalue())


if __name__ == "__main__":
    main()
