"""Files and HTML report of a sensitivity analysis (:mod:`ketasim.analysis.sensitivity`).

``write_sensitivity(result, out)`` writes, into the directory ``out`` (atomically, as
:func:`ketasim.io.results.write_files` does):

- ``indices.csv``: output, parameter, index (mu_star/mu/sigma or S1/ST), value, conf (half
  width of the bootstrap interval at the analysis' level), rank;
- ``convergence.csv``: every index at N and 2N (same seed), the change, and whether the
  change lies within the 2N interval;
- ``parameters.csv``: each varied value with its nominal value, unit, range, distribution
  and the reason for the range;
- ``samples.parquet``: the sample rows (catalog units) and the outputs;
- ``manifest.json`` and ``report.html`` (ranked bar plot per output; Morris: mu*-sigma).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ketasim.io.figures import esc, figure_html, html_table, new_figure

__all__ = ["render_sensitivity", "write_sensitivity"]

TOP = 15  # parameters shown per output in the bar plot


def parameters_table(result: Any) -> pd.DataFrame:
    return pd.DataFrame([{"parameter": u.name, "value": u.value, "unit": u.unit, "tag": u.tag,
                          "dist": u.dist, "low": u.low, "high": u.high, "reason": u.reason}
                         for u in result.parameters])


def _bars(result: Any, output: str) -> str:
    df = result.indices[result.indices["output"] == output]
    main = "mu_star" if result.method == "morris" else "ST"
    ranked = df[df["index"] == main].sort_values("value", ascending=False).head(TOP)
    names = list(ranked["parameter"])[::-1]
    fig, (ax,) = new_figure(1, 1, w=7.5, h=0.32 * len(names) + 1.2)
    shown = [main] if result.method == "morris" else ["S1", "ST"]
    height = 0.8 / len(shown)
    for k, index in enumerate(shown):
        sub = df[df["index"] == index].set_index("parameter").reindex(names)
        pos = [i + (k - (len(shown) - 1) / 2) * height for i in range(len(names))]
        ax.barh(pos, sub["value"], height=height, xerr=sub["conf"].fillna(0), capsize=2,
                label=index.replace("mu_star", "mu*"))
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([n.split(".", 1)[1] if n.count(".") > 1 else n for n in names],
                       fontsize=8)
    ax.set_xlabel("mu* (output units per unit of the normalised range)"
                  if result.method == "morris" else "Sobol index")
    ax.legend(fontsize=8)
    ax.set_title(output, fontsize=9)
    return figure_html(fig, f"{output}: parameters ranked by {main.replace('mu_star', 'mu*')},"
                       f" bars with {int(100 * result.manifest['conf_level'])} % bootstrap "
                       "intervals")


def _mu_sigma(result: Any, output: str) -> str:
    df = result.indices[result.indices["output"] == output]
    wide = df.pivot(index="parameter", columns="index", values="value")
    fig, (ax,) = new_figure(1, 1, w=6.0, h=4.5)
    ax.scatter(wide["mu_star"], wide["sigma"], s=14)
    for name in wide.sort_values("mu_star", ascending=False).head(8).index:
        ax.annotate(name.rsplit(".", 1)[-1], (wide.loc[name, "mu_star"],
                                             wide.loc[name, "sigma"]), fontsize=7)
    top = float(max(wide["mu_star"].max(), wide["sigma"].max(), 1e-12))
    ax.plot([0, top], [0, top], lw=0.6, color="grey", ls="--")
    ax.set_xlabel("mu* (mean |elementary effect|)")
    ax.set_ylabel("sigma (spread: interactions or non-linearity)")
    ax.set_title(output, fontsize=9)
    return figure_html(fig, f"{output}: Morris mu* against sigma (dashed: sigma = mu*)")


def render_sensitivity(result: Any) -> str:
    """The HTML report of ``result`` (self-contained: figures inline)."""
    m = result.manifest
    parts = [f"<h1>Sensitivity: {esc(m.get('scenario', ''))}</h1>",
             f"<p>{esc(result.method)} with n = {result.n} (seed {result.seed}), "
             f"{m.get('rows_evaluated')} sample rows, mode {esc(m.get('mode', '-'))}, engine "
             f"{esc(m.get('engine', '-'))}, {m.get('wall_time_s')} s.</p>"]
    for output in result.outputs:
        parts.append(f"<h2>{esc(output)}</h2>")
        parts.append(_bars(result, output))
        if result.method == "morris":
            parts.append(_mu_sigma(result, output))
        top = result.ranking(output).head(TOP)
        parts.append(html_table(top[["parameter", "value", "conf", "rank"]]))
    if not result.convergence.empty:
        c = result.convergence
        worst = c.loc[c["change"].abs().idxmax()]
        parts.append("<h2>Convergence (N against 2N, same seed)</h2>")
        parts.append(f"<p>{int(c['within_ci'].sum())} of {len(c)} indices changed by less "
                     "than their 2N interval; largest change "
                     f"{worst['change']:.3g} ({esc(worst['index'])} of "
                     f"{esc(worst['parameter'])}, {esc(worst['output'])}).</p>")
    parts.append("<h2>Parameters and ranges</h2>")
    parts.append(html_table(parameters_table(result)))
    style = ("body{font-family:sans-serif;max-width:1100px;margin:auto}"
             ".tbl{border-collapse:collapse;font-size:12px}.tbl td,.tbl th{padding:2px 6px;"
             "border-bottom:1px solid #ddd}figure{margin:8px 0}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>ketasim sensitivity"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>")


def write_sensitivity(result: Any, out: Path | str, overwrite: bool = False) -> list[Path]:
    """Write the files listed in the module docstring into ``out``; ArgumentError if
    ``out`` is not empty and ``overwrite`` is false (nothing is written then)."""
    from ketasim.io.results import json_ready, write_atomically

    def fill(tmp: Path) -> list[str]:
        result.indices.to_csv(tmp / "indices.csv", index=False)
        result.convergence.to_csv(tmp / "convergence.csv", index=False)
        parameters_table(result).to_csv(tmp / "parameters.csv", index=False)
        samples = pd.DataFrame(result.X, columns=[u.name for u in result.parameters])
        for k, name in enumerate(result.outputs):
            samples[name] = result.Y[:, k]
        buf = io.BytesIO()
        samples.to_parquet(buf, engine="pyarrow", index=False)
        (tmp / "samples.parquet").write_bytes(buf.getvalue())
        (tmp / "report.html").write_text(render_sensitivity(result), encoding="utf-8")
        names = ["indices.csv", "convergence.csv", "parameters.csv", "samples.parquet",
                 "report.html", "manifest.json"]
        manifest = dict(result.manifest, files=sorted(names))
        (tmp / "manifest.json").write_text(json.dumps(json_ready(manifest), indent=2,
                                                      allow_nan=False) + "\n",
                                           encoding="utf-8")
        return names

    return write_atomically(out, overwrite, fill)
