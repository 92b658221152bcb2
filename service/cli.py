"""Command-line entry points: `flask --app service worker | providers check`; the features add theirs
(`reconcile`, see service.features) and Flask-Migrate adds `db`. The development commands (`dev`, `sandbox`) are
in the top-level `sandbox.dev`, outside the package."""

from __future__ import annotations

import json
import os
import signal

import click
from flask import Flask, current_app
from flask.cli import AppGroup


def register(app: Flask) -> None:
    """Attach the service's commands to the Flask CLI."""
    app.cli.add_command(worker_command)
    app.cli.add_command(providers_group)


@click.command("worker")
@click.option("--threads", type=int, default=lambda: int(os.environ.get("WORKER_THREADS", "2")),
              show_default="WORKER_THREADS or 2", help="Threads claiming and running jobs in this process.")
@click.option("--batch", type=int, default=10, show_default=True, help="Jobs claimed per claim.")
def worker_command(threads: int, batch: int) -> None:
    """Run jobs until SIGTERM/SIGINT; in-flight jobs finish, unstarted ones are given back."""
    from service.jobs.worker import Worker

    # Every job kind has its handler: create_app imported service.features, which imports each feature's jobs.
    worker = Worker(current_app._get_current_object(), threads=threads, batch=batch)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.run_forever()


providers_group = AppGroup("providers", help="The providers as configured (Instagift, Cardly, InstantCard).")


@providers_group.command("check")
@click.option("--json", "as_json", is_flag=True, help='One JSON object: {"ok": …, "checks": […]}.')
def providers_check_command(as_json: bool) -> None:
    """Check the configured credentials, artwork, templates and shipping provider with read-only calls.

    One line per check (provider, check, ok/FAILED, detail); exits 0 only when every check passes."""
    from service.providers.preflight import check_providers, render_lines

    report = check_providers(current_app.extensions["settings"])
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for line in render_lines(report):
            click.echo(line)
        failed = sum(1 for c in report.checks if not c.ok)
        click.echo(f"{len(report.checks) - failed} of {len(report.checks)} checks passed", err=True)
    click.get_current_context().exit(0 if report.ok else 1)
