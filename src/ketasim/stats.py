"""Generic statistics (numpy and scipy only): the intervals, survival estimate and
between-arm tests the summary, the trial endpoints, power and the reports use.

- :func:`wilson`: Wilson score interval of a proportion;
- :func:`newcombe`: Newcombe's hybrid score interval (method 10) of a difference of two
  independent proportions, from the two Wilson intervals;
- :func:`kaplan_meier`: Kaplan-Meier estimate with Greenwood's variance and a log(-log)
  95 % interval; :func:`km_median`;
- :func:`compare_parallel`, :func:`compare_crossover`: active vs control, independent
  groups or a two-period crossover (see each for the tests), as a :class:`Comparison`.

Tested against statsmodels and scipy as oracles (tests/test_stats.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
from scipy import stats

Z95 = float(stats.norm.ppf(0.975))


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (NaN, NaN) for n = 0."""
    if n <= 0:
        return np.nan, np.nan
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def newcombe(successes_a: float, n_a: int, successes_c: float, n_c: int,
             z: float = Z95) -> tuple[float, float]:
    """Newcombe's (1998, method 10) interval of p_a - p_c from the two Wilson intervals;
    (NaN, NaN) when either group is empty."""
    if n_a <= 0 or n_c <= 0:
        return np.nan, np.nan
    la, ua = wilson(successes_a, n_a, z)
    lc, uc = wilson(successes_c, n_c, z)
    pa, pc = successes_a / n_a, successes_c / n_c
    d = pa - pc
    return (d - float(np.sqrt((pa - la) ** 2 + (uc - pc) ** 2)),
            d + float(np.sqrt((ua - pa) ** 2 + (pc - lc) ** 2)))


@dataclass
class Comparison:
    """One active-vs-control comparison: the difference (active - control), Cohen's d, the
    p-value and the 95 % CI of the difference; ``extra`` holds what some tests add
    (``nnt``, ``difference_adjusted``, ``period_effect``, ``difference_ancova``,
    ``p_ancova``)."""

    difference: float = np.nan
    cohens_d: float = np.nan
    p_value: float = np.nan
    ci_low: float = np.nan
    ci_high: float = np.nan
    n: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def rows(self) -> list[tuple[str, float]]:
        out = [("difference", self.difference), ("cohens_d", self.cohens_d),
               ("p_value", self.p_value), ("ci_low", self.ci_low), ("ci_high", self.ci_high)]
        return out + list(self.extra.items())


def _degenerate(x: np.ndarray) -> bool:
    """Constant to rounding: no meaningful test statistic."""
    return x.size < 2 or float(np.std(x, ddof=1)) <= 1e-12 * max(1.0, float(np.abs(x).max()))


def nnt(difference: float) -> float:
    """Number needed to treat: 1 / (risk difference); NaN when the difference is 0."""
    if not np.isfinite(difference) or difference == 0:
        return np.nan
    return float(1.0 / difference)


def compare_parallel(a: np.ndarray, c: np.ndarray, fraction: bool = False,
                     base_a: np.ndarray | None = None,
                     base_c: np.ndarray | None = None) -> Comparison:
    """Active ``a`` vs control ``c``, independent groups (NaNs dropped): Welch's t-test
    and its CI for a continuous readout, Fisher's exact test and Newcombe's CI for a
    fraction (values 0/1), Cohen's d on the pooled SD; with both groups' baselines
    (``base_a``, ``base_c``), the ANCOVA effect and its p (``extra``)."""
    keep_a, keep_c = np.isfinite(a), np.isfinite(c)
    a, c = a[keep_a], c[keep_c]
    out = Comparison(n=int(a.size + c.size))
    if not a.size or not c.size:
        return out
    out.difference = float(np.mean(a) - np.mean(c))
    if fraction:
        out.extra["nnt"] = nnt(out.difference)
        sa, sc_ = int(np.rint(a.sum())), int(np.rint(c.sum()))
        table = [[sa, a.size - sa], [sc_, c.size - sc_]]
        out.p_value = float(stats.fisher_exact(table).pvalue)
        out.ci_low, out.ci_high = newcombe(sa, a.size, sc_, c.size)
    if a.size < 2 or c.size < 2:
        return out
    pooled = np.sqrt(((a.size - 1) * a.var(ddof=1) + (c.size - 1) * c.var(ddof=1))
                     / (a.size + c.size - 2))
    if pooled <= 1e-12 * max(1.0, float(np.abs(np.concatenate([a, c])).max())):
        return out
    out.cohens_d = float(out.difference / pooled)
    if not fraction:
        va, vc = a.var(ddof=1) / a.size, c.var(ddof=1) / c.size
        se = float(np.sqrt(va + vc))
        df = (va + vc) ** 2 / (va**2 / (a.size - 1) + vc**2 / (c.size - 1))
        q = float(stats.t.ppf(0.975, df))
        out.p_value = float(stats.ttest_ind(a, c, equal_var=False).pvalue)
        out.ci_low, out.ci_high = out.difference - q * se, out.difference + q * se
    if base_a is not None and base_c is not None:
        out.extra.update(_ancova(a, c, base_a[keep_a], base_c[keep_c]))
    return out


def _ancova(a: np.ndarray, c: np.ndarray, ba: np.ndarray, bc: np.ndarray) -> dict[str, float]:
    """Treatment effect and its p from OLS y ~ 1 + treated + baseline."""
    y = np.concatenate([a, c])
    b = np.concatenate([ba, bc])
    keep = np.isfinite(b)
    treated = np.concatenate([np.ones(a.size), np.zeros(c.size)])
    y, b, treated = y[keep], b[keep], treated[keep]
    df = y.size - 3
    if df < 1 or _degenerate(b) or _degenerate(y):
        return {"difference_ancova": np.nan, "p_ancova": np.nan}
    X = np.column_stack([np.ones(y.size), treated, b])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ beta
    s2 = float(resid @ resid) / df
    cov = s2 * np.linalg.inv(X.T @ X)
    se = float(np.sqrt(cov[1, 1]))
    if se <= 0:
        return {"difference_ancova": float(beta[1]), "p_ancova": np.nan}
    p = float(2 * stats.t.sf(abs(beta[1] / se), df))
    return {"difference_ancova": float(beta[1]), "p_ancova": p}


def compare_crossover(y_a: np.ndarray, y_c: np.ndarray, a_first: np.ndarray,
                      fraction: bool = False) -> Comparison:
    """Two-period crossover: ``y_a``/``y_c`` each subject's value on the active/control arm,
    ``a_first`` True where the subject had the active arm in period 1.

    Continuous: the period-adjusted (Hills-Armitage) t-test of the period differences
    between sequences, the same estimate and p as OLS with subject fixed effects + period +
    treatment; with fewer than two subjects in a sequence, the paired t-test. Fractions:
    the exact McNemar test on the discordant pairs and a Wald CI of the paired difference.
    Cohen's d is within-subject (mean difference / SD of the differences)."""
    keep = np.isfinite(y_a) & np.isfinite(y_c)
    y_a, y_c, a_first = y_a[keep], y_c[keep], np.asarray(a_first, bool)[keep]
    diff = y_a - y_c
    out = Comparison(n=int(diff.size))
    if not diff.size:
        return out
    out.difference = float(np.mean(diff))
    if fraction:
        out.extra["nnt"] = nnt(out.difference)
        b = int(np.sum(diff > 0.5))  # responded on the active arm only
        c = int(np.sum(diff < -0.5))
        out.p_value = float(stats.binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
        n = diff.size
        se = float(np.sqrt(max((b + c) - (b - c) ** 2 / n, 0.0))) / n
        out.ci_low, out.ci_high = out.difference - Z95 * se, out.difference + Z95 * se
        if not _degenerate(diff):
            out.cohens_d = float(np.mean(diff) / np.std(diff, ddof=1))
        return out
    if _degenerate(diff):
        return out
    out.cohens_d = float(np.mean(diff) / np.std(diff, ddof=1))
    # period differences: AB subjects (a first) P1 - P2 = a - c; BA subjects = c - a
    pd_ab, pd_ba = diff[a_first], -diff[~a_first]
    n1, n2 = pd_ab.size, pd_ba.size
    if n1 >= 2 and n2 >= 2:
        est = 0.5 * (pd_ab.mean() - pd_ba.mean())
        dof = n1 + n2 - 2
        s2 = ((n1 - 1) * pd_ab.var(ddof=1) + (n2 - 1) * pd_ba.var(ddof=1)) / dof
        se = 0.5 * float(np.sqrt(s2 * (1 / n1 + 1 / n2)))
        out.extra["difference_adjusted"] = float(est)
        # period 2 - period 1 (both sequences' P1 - P2 contain minus the period effect)
        out.extra["period_effect"] = float(-0.5 * (pd_ab.mean() + pd_ba.mean()))
        if se > 0:
            q = float(stats.t.ppf(0.975, dof))
            out.p_value = float(2 * stats.t.sf(abs(est / se), dof))
            out.ci_low, out.ci_high = float(est - q * se), float(est + q * se)
        return out
    # one sequence (almost) empty: the period effect is confounded; paired t-test
    n = diff.size
    se = float(np.std(diff, ddof=1) / np.sqrt(n))
    q = float(stats.t.ppf(0.975, n - 1))
    out.p_value = float(stats.ttest_1samp(diff, 0.0).pvalue)
    out.ci_low, out.ci_high = out.difference - q * se, out.difference + q * se
    return out


@dataclass
class KaplanMeier:
    """A Kaplan-Meier estimate, one entry per distinct event or censoring time (arrays of
    equal length): ``survival`` is S just after ``time``, ``se`` Greenwood's standard
    error, ``lower``/``upper`` the 95 % interval on the log(-log) scale."""

    time: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray
    censored: np.ndarray
    survival: np.ndarray
    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    def columns(self) -> dict[str, np.ndarray]:
        """Name -> array, in the order above (for a table)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def median(self) -> float:
        """The smallest time at which survival is at or below 0.5; NaN if never."""
        return km_median(self.time, self.survival)


def kaplan_meier(durations: np.ndarray, events: np.ndarray) -> KaplanMeier:
    """Kaplan-Meier estimate of ``durations`` (NaN dropped) with ``events`` True where the
    event was seen (False: censored). Censored subjects at a time of events are at risk at
    that time (the usual convention)."""
    d = np.asarray(durations, float)
    e = np.asarray(events, bool)
    keep = np.isfinite(d)
    d, e = d[keep], e[keep]
    time = np.unique(d)
    at_risk = np.array([np.sum(d >= t) for t in time], dtype=int)
    n_events = np.array([np.sum((d == t) & e) for t in time], dtype=int)
    censored = np.array([np.sum((d == t) & ~e) for t in time], dtype=int)
    survival, se, lower, upper = (np.empty(time.size) for _ in range(4))
    s, green = 1.0, 0.0
    for k in range(time.size):
        r, ev = at_risk[k], n_events[k]
        if ev:
            s *= 1.0 - ev / r
            green += ev / (r * (r - ev)) if r > ev else np.inf
        survival[k] = s
        se[k] = s * np.sqrt(green) if np.isfinite(green) else np.nan
        lower[k], upper[k] = _loglog_ci(s, green)
    return KaplanMeier(time, at_risk, n_events, censored, survival, se, lower, upper)


def _loglog_ci(s: float, green: float) -> tuple[float, float]:
    if s <= 0 or s >= 1 or not np.isfinite(green) or green <= 0:
        return (s, s) if s in (0.0, 1.0) else (np.nan, np.nan)
    half = Z95 * np.sqrt(green) / abs(np.log(s))
    return float(s ** np.exp(half)), float(s ** np.exp(-half))


def km_median(time: np.ndarray, survival: np.ndarray) -> float:
    """The smallest ``time`` at which ``survival`` is at or below 0.5; NaN if never."""
    hit = np.asarray(time, float)[np.asarray(survival, float) <= 0.5 + 1e-12]
    return float(hit[0]) if hit.size else np.nan
