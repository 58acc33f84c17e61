"""The package version: one place, read by ``ketasim.__version__``, the run manifest, the
command line and pyproject.toml (setuptools ``dynamic``). Imports nothing."""

__version__ = "0.1.0"
