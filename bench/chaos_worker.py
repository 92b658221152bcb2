"""A real worker process (`flask --app service worker`) that also knows the chaos benchmarks' job kinds.

`chaos_crash` kills the process running it (SIGKILL), a poison job; `chaos_hang` never finishes (a worker stuck
in a call), so the benchmark can SIGKILL the process mid-job. Both append a line to the file named by the job's
`marker` payload when they start, so the benchmark can count runs and see when a job started.
Run: python -m bench.chaos_worker [--threads N]
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from service.jobs.registry import handler


def _mark(ctx) -> None:
    with open(ctx.payload["marker"], "a") as marker:
        marker.write(f"{os.getpid()}\n")


@handler("chaos_crash")
def crash(ctx) -> None:
    """Record the run, then kill this worker process mid-job."""
    _mark(ctx)
    os.kill(os.getpid(), signal.SIGKILL)


@handler("chaos_hang")
def hang(ctx) -> None:
    """Record the run, then block until the process is killed."""
    _mark(ctx)
    threading.Event().wait()


if __name__ == "__main__":
    from flask.cli import main

    sys.argv = ["flask", "--app", "service", "worker", *sys.argv[1:]]
    main()
