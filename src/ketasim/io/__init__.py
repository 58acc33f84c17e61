"""Reading and writing: the result files of a run (results.py), its HTML report (report.py,
with the trial and laboratory sections and the shared figure helpers of figures.py)."""

from ketasim.io.results import summary_records, write_results

__all__ = ["summary_records", "write_results"]
