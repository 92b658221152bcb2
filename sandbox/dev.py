"""Development only: `python -m sandbox.dev dev` runs everything on this machine (migrations, the sandbox
providers, web and a worker); `python -m sandbox.dev sandbox` serves the sandbox providers alone.

Both refuse to run with SERVICE_ENV=production. The service itself never imports this package.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from sandbox import PRODUCTION


@click.group()
def cli() -> None:
    """The service with its sandbox providers, for development."""


@cli.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5001, show_default=True)
def sandbox_command(host: str, port: int) -> None:
    """Serve the sandbox providers (development only; refuses to run in production)."""
    from werkzeug.serving import run_simple

    from sandbox import create_sandbox_app
    from service.logs import configure_logging

    # Its access log has claim codes in paths (they are Instagift's URLs): log through the masking handler.
    configure_logging("text")
    run_simple(host, port, create_sandbox_app(), threaded=True)


def _metrics_directory() -> str:
    """The metrics directory web and worker share (prometheus_client's multiprocess mode, docs/metrics.md). An
    earlier run's counts are cleared where the Procfile's are: by gunicorn's `on_starting` (gunicorn.conf.py)."""
    return str(Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or Path("instance") / "metrics").resolve())


@cli.command("dev")
@click.option("--port", default=5000, show_default=True, help="Port of the web process (demo at /demo).")
@click.option("--sandbox-port", default=5001, show_default=True)
def dev_command(port: int, sandbox_port: int) -> None:
    """Run everything on this machine: migrations, sandbox providers, web (gunicorn) and a worker."""
    if os.environ.get("SERVICE_ENV") == PRODUCTION:
        raise click.ClickException("`dev` is for development; use the Procfile in production.")
    env = dict(os.environ, SANDBOX_URL=f"http://127.0.0.1:{sandbox_port}", DEMO_SERVICE_URL=f"http://127.0.0.1:{port}",
               PROMETHEUS_MULTIPROC_DIR=_metrics_directory())
    python = sys.executable
    flask = [python, "-m", "flask", "--app", "service"]
    subprocess.run([*flask, "db", "upgrade"], check=True, env=env)
    commands = {
        "sandbox": [python, "-m", "sandbox.dev", "sandbox", "--port", str(sandbox_port)],
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


if __name__ == "__main__":
    cli()
