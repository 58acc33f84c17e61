"""``ketasim dashboard``: the web app (NiceGUI) for people who write no code.

Choose an example or edit a scenario in a TOML editor (validated as you type, with the
command line's one-line errors), run it in the background with a progress bar and a
cancel button, read the report's figures and tables, download summary.csv,
subjects.parquet and report.html.

The app talks to the public API only (``import ketasim as ks``). It binds to 127.0.0.1
unless told otherwise and takes no file path from the browser: every job lives in a
workspace the server chooses, and its files are served by job id and a fixed name only
(:mod:`ketasim.dashboard.jobs`). NiceGUI is an optional dependency
(``pip install 'ketasim[dashboard]'``), imported only when the server starts.
"""

from __future__ import annotations

from typing import Any

__all__ = ["serve"]


def serve(**kwargs: Any) -> None:
    """Start the dashboard server (blocks); see :func:`ketasim.dashboard.app.serve`."""
    from ketasim.dashboard.app import serve as _serve

    _serve(**kwargs)
