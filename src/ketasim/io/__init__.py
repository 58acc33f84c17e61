"""Reading and writing: the result files of a run (results.py) and its HTML report (report.py)."""

from ketasim.io.results import summary_records, write_results

__all__ = ["summary_records", "write_results"]
