"""Command-line entry points: `flask --app service worker | sandbox | dev | providers check` (and Flask-Migrate's
`db`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import click
from flask import Flask, current_app
from flask.cli import AppGroup


def register(app: Flask) -> None:
    """Attach the service's commands to the Flask CLI."""
    app.cli.add_command(worker_command)
    app.cli.add_command(sandbox_command)
    app.cli.add_command(dev_command)
    app.cli.add_command(providers_group)
    from service.cli_reconcile import reconcile_command
    app.cli.add_command(reconcile_command)


@click.command("worker")
@click.option("--threads", type=int, default=lambda: int(os.environ.get("WORKER_THREADS", "2")),
              show_default="WORKER_THREADS or 2", help="Threads claiming and running jobs in this process.")
@click.option("--batch", type=int, default=10, show_default=True, help="Jobs claimed per claim.")
def worker_command(threads: int, batch: int) -> None:
    """Run jobs until SIGTERM/SIGINT; in-flight jobs finish, unstarted ones are given back."""
    from service.jobs.handlers import load_handlers
    from service.jobs.worker import Worker

    load_handlers()
    worker = Worker(current_app._get_current_object(), threads=threads, batch=batch)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.run_forever()


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5001, show_default=True)
def sandbox_command(host: str, port: int) -> None:
    """Serve the sandbox providers (development only; refuses to run in production)."""
    from werkzeug.serving import run_simple

    from service.logs import configure_logging
    from service.sandbox import create_sandbox_app

    # Its access log has claim codes in paths (they are Instagift's URLs): log through the masking handler.
    configure_logging("text")
    run_simple(host, port, create_sandbox_app(), threaded=True)


@click.command("dev")
@click.option("--port", default=5000, show_default=True, help="Port of the web process (demo at /demo).")
@click.option("--sandbox-port", default=5001, show_default=True)
def dev_command(port: int, sandbox_port: int) -> None:
    """Run everything on this machine: migrations, sandbox providers, web (gunicorn) and a worker."""
    settings = current_app.extensions["settings"]
    if settings.is_production:
        raise click.ClickException("`dev` is for development; use the Procfile in production.")
    env = dict(os.environ, SANDBOX_URL=f"http://127.0.0.1:{sandbox_port}")
    python = sys.executable
    flask = [python, "-m", "flask", "--app", "service"]
    subprocess.run([*flask, "db", "upgrade"], check=True, env=env)
    commands = {
        "sandbox": [*flask, "sandbox", "--port", str(sandbox_port)],
        "web": [python, "-m", "gunicorn", "--no-control-socket", "--workers", "2", "--threads", "4",
                "--bind", f"127.0.0.1:{port}", "service:create_app()"],
        "worker": [*flask, "worker", "--threads", "2"],
    }
    processes = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
    click.echo(f"\n  Demo storefront:  http://127.0.0.1:{port}/demo\n"
               f"  API:              http://127.0.0.1:{port}/openapi.json\n"
               f"  Sandbox providers http://127.0.0.1:{sandbox_port}\n  Ctrl-C stops everything.\n")
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(p.poll() is None for p in processes.values()):
        time.sleep(0.5)
    for name, process in processes.items():
        if process.poll() is not None and not stopping:
            click.echo(f"{name} exited with {process.returncode}; stopping the others.", err=True)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes.values():
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


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
