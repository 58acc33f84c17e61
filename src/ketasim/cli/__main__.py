"""``python -m ketasim.cli``."""

from ketasim.cli.app import main

main()
