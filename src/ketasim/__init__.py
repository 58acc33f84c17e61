"""ketasim: an in-silico laboratory for ketamine's rapid antidepressant action."""
__version__ = "0.1.0"
