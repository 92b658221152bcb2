"""gunicorn's settings file, read from the working directory (the Procfile's): the bookkeeping of the metrics
directory when the web process runs in prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR; see
docs/metrics.md; without that variable those hooks do nothing), and settings errors shown as one clean message.

Deliberately free of the service's own modules: gunicorn's master runs this file and must not load the app.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from gunicorn.errors import AppImportError

# prometheus_client names each process's files <kind>_<pid>.db (counter_812.db, histogram_812.db, gauge_all_812.db).
_PROCESS_FILE = re.compile(r"^[a-z_]+_(\d+)\.db$")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def remove_files_of_finished_processes(directory: str) -> list[str]:
    """Delete the files of processes that no longer run (a previous web run, a job worker that exited); returns
    their names. The files of processes still running beside this one (a job worker on the same host) stay."""
    removed = []
    for path in Path(directory).glob("*.db"):
        match = _PROCESS_FILE.match(path.name)
        if match and not _running(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def on_starting(server) -> None:
    """Before the first web worker starts: the directory exists, and the counts of finished processes are gone
    (the web process starting is when Prometheus sees this host's counters begin again)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        removed = remove_files_of_finished_processes(directory)
        server.log.info("metrics directory %s: removed %d file(s) of finished processes", directory, len(removed))


def child_exit(server, worker) -> None:
    """A web worker exited: its live gauges are dropped (its counts stay in the sums until the next start)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_fork(server, worker) -> None:
    """A web worker whose app cannot start for its settings prints the service's list of settings to fix once,
    without a traceback, and stops the server (gunicorn's "App failed to load"), instead of a traceback per
    worker. The error is known by its class name: this file does not import the service."""
    load_wsgi = worker.load_wsgi

    def load_wsgi_or_say_which_settings() -> None:
        try:
            load_wsgi()
        except Exception as exc:
            if type(exc).__name__ != "ConfigurationError":
                raise
            raise AppImportError(str(exc)) from None

    worker.load_wsgi = load_wsgi_or_say_which_settings
