"""``ketasim dashboard``: serve the web app (NiceGUI; ``pip install 'ketasim[dashboard]'``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from ketasim.cli.app import app, user_errors
from ketasim.errors import ArgumentError, KetasimError

DASHBOARD_FLAGS = {"max_subjects": "--max-subjects", "examples": "--examples"}


@app.command()
@user_errors(DASHBOARD_FLAGS)
def dashboard(
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on. Anything but 127.0.0.1 lets other machines "
        "run simulations here (there is no login).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8080,
    max_subjects: Annotated[int, typer.Option(
        "--max-subjects", help="Largest run (subjects in all) a page may start.")] = 1000,
    examples: Annotated[Path | None, typer.Option(
        "--examples", help="Folder of example scenarios offered in the page (default: "
        "examples/ of a source checkout).", show_default=False)] = None,
    open_browser: Annotated[bool, typer.Option(
        "--open", help="Open the page in a web browser.")] = False,
) -> None:
    """Serve the web dashboard: edit a scenario, run it, read and download the results."""
    if max_subjects < 1:
        raise ArgumentError("max_subjects", f"{max_subjects} is not a whole number >= 1")
    if examples is not None and not examples.is_dir():
        raise ArgumentError("examples", f'"{examples}" is not a folder')
    if importlib.util.find_spec("nicegui") is None:
        raise KetasimError("the dashboard needs NiceGUI: pip install 'ketasim[dashboard]'")
    from ketasim.dashboard import app as web

    if host not in web.LOCAL_HOSTS:
        typer.echo(f"warning: --host {host}: the dashboard is open to other machines; anyone "
                   "who reaches it can run simulations on this one", err=True)
    web.serve(host=host, port=port, examples_dir=examples, max_subjects=max_subjects,
              show=open_browser)
