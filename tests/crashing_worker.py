"""A real worker process (`flask --app service worker`) that also knows one test job kind: `poison`, whose handler
kills the process running it (SIGKILL), as a job that crashes or hangs its worker would.

Run: python -m tests.crashing_worker [--threads N]. Each run of the handler appends a line to the file named by
the job's `marker` payload first, so a test can count how often it ran.
"""

from __future__ import annotations

import os
import signal
import sys

from service.jobs.registry import handler


@handler("poison")
def poison(ctx) -> None:
    """Record the run, then kill this worker process mid-job."""
    with open(ctx.payload["marker"], "a") as marker:
        marker.write(f"{os.getpid()}\n")
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    from flask.cli import main

    sys.argv = ["flask", "--app", "service", "worker", *sys.argv[1:]]
    main()
