"""Generic statistics (ketasim.stats) against hand computations and reference
implementations: statsmodels and scipy as oracles (no ODEs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ketasim.experiments.endpoints import first_event
from ketasim.stats import (
    compare_crossover,
    compare_parallel,
    kaplan_meier,
    km_median,
    newcombe,
    nnt,
    wilson,
)


def test_kaplan_meier_matches_a_hand_computation() -> None:
    # times 1..5; censored at 2 and 4
    km = kaplan_meier(np.array([1, 2, 2, 3, 4, 5]), np.array([1, 1, 0, 1, 0, 1]))
    assert km.time.tolist() == [1, 2, 3, 4, 5]
    assert km.at_risk.tolist() == [6, 5, 3, 2, 1]
    assert km.events.tolist() == [1, 1, 1, 0, 1]
    assert km.censored.tolist() == [0, 1, 0, 1, 0]
    s = [5 / 6, 5 / 6 * 4 / 5, 5 / 6 * 4 / 5 * 2 / 3, 4 / 9, 0.0]
    assert km.survival == pytest.approx(s)
    # Greenwood at t = 2: S^2 (1/(6*5) + 1/(5*4))
    assert km.se[1] == pytest.approx(2 / 3 * np.sqrt(1 / 30 + 1 / 20))
    assert km.median() == km_median(km.time, km.survival) == 3.0
    assert (km.lower <= km.survival + 1e-12).all()
    assert (km.upper >= km.survival - 1e-12).all()
    # log(-log) interval at t = 2 by hand: S^exp(+-z sqrt(G) / |log S|), G = sum d/(n(n-d))
    g, s2 = 1 / 30 + 1 / 20, 2 / 3
    half = 1.959963984540054 * np.sqrt(g) / abs(np.log(s2))
    assert (km.lower[1], km.upper[1]) == pytest.approx((s2 ** np.exp(half),
                                                         s2 ** np.exp(-half)))


def test_kaplan_meier_agrees_with_statsmodels() -> None:
    from statsmodels.duration.survfunc import SurvfuncRight

    rng = np.random.default_rng(1)
    t = rng.integers(1, 15, 60).astype(float)
    e = rng.random(60) < 0.7
    km = kaplan_meier(t, e)
    ref = SurvfuncRight(t, e.astype(int))
    at_events = km.events > 0
    assert km.time[at_events] == pytest.approx(ref.surv_times)
    assert km.survival[at_events] == pytest.approx(ref.surv_prob)
    assert km.se[at_events] == pytest.approx(ref.surv_prob_se)
    assert km.median() == pytest.approx(ref.quantile(0.5))


def test_median_not_reached_is_nan() -> None:
    assert np.isnan(kaplan_meier(np.array([1.0, 2.0, 3.0]), np.array([1, 0, 0])).median())


def test_first_event_times_and_censoring() -> None:
    times = np.array([1.0, 2.0, 4.0, 8.0])
    flags = np.array([[0, 1, 1, 0], [0, 0, 0, 0], [np.nan, np.nan, 0, 1],
                      [np.nan] * 4])
    dur, hit = first_event(flags, times)
    assert dur[:3].tolist() == [2.0, 8.0, 8.0] and np.isnan(dur[3])
    assert hit.tolist() == [True, False, True, False]


def test_nnt_is_one_over_the_risk_difference() -> None:
    a = np.array([1.0] * 6 + [0.0] * 4)
    c = np.array([1.0] * 2 + [0.0] * 8)
    comp = compare_parallel(a, c, fraction=True)
    assert comp.difference == pytest.approx(0.4)
    assert comp.extra["nnt"] == pytest.approx(2.5) == nnt(0.4)
    assert comp.p_value == pytest.approx(stats.fisher_exact([[6, 4], [2, 8]]).pvalue)
    assert comp.ci_low < comp.difference < comp.ci_high
    assert np.isnan(nnt(0.0))
    assert nnt(-0.25) == -4.0  # negative: number needed to harm


def test_wilson_interval_of_zero_events() -> None:
    lo, hi = wilson(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx(1.959964**2 / (10 + 1.959964**2), rel=1e-6)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (17, 40), (1, 1)])
def test_wilson_agrees_with_statsmodels(k: int, n: int) -> None:
    from statsmodels.stats.proportion import proportion_confint

    assert wilson(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"))
    assert np.isnan(wilson(0, 0)).all()


@pytest.mark.parametrize(("ka", "na", "kc", "nc"), [(6, 10, 2, 10), (0, 12, 5, 9),
                                                     (30, 40, 30, 40), (12, 12, 0, 15)])
def test_newcombe_agrees_with_statsmodels(ka: int, na: int, kc: int, nc: int) -> None:
    from statsmodels.stats.proportion import confint_proportions_2indep

    ref = confint_proportions_2indep(ka, na, kc, nc, method="newcomb", compare="diff")
    assert newcombe(ka, na, kc, nc) == pytest.approx(ref)
    a = np.r_[np.ones(ka), np.zeros(na - ka)]
    c = np.r_[np.ones(kc), np.zeros(nc - kc)]
    comp = compare_parallel(a, c, fraction=True)
    assert (comp.ci_low, comp.ci_high) == pytest.approx(ref)


def test_welch_comparison_agrees_with_scipy() -> None:
    rng = np.random.default_rng(2)
    a, c = rng.normal(-10, 8, 25), rng.normal(-3, 5, 31)
    comp = compare_parallel(a, c)
    ref = stats.ttest_ind(a, c, equal_var=False)
    ci = ref.confidence_interval()
    assert comp.p_value == pytest.approx(ref.pvalue)
    assert (comp.ci_low, comp.ci_high) == pytest.approx((ci.low, ci.high))
    pooled = np.sqrt((24 * a.var(ddof=1) + 30 * c.var(ddof=1)) / 54)
    assert comp.cohens_d == pytest.approx((a.mean() - c.mean()) / pooled)


def test_ancova_agrees_with_statsmodels_ols() -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    ba, bc = rng.normal(32, 4, 30), rng.normal(32, 4, 30)
    a = -12 + 0.3 * (ba - 32) + rng.normal(0, 5, 30)
    c = -3 + 0.3 * (bc - 32) + rng.normal(0, 5, 30)
    comp = compare_parallel(a, c, base_a=ba, base_c=bc)
    X = sm.add_constant(np.column_stack([np.r_[np.ones(30), np.zeros(30)], np.r_[ba, bc]]))
    fit = sm.OLS(np.r_[a, c], X).fit()
    assert comp.extra["difference_ancova"] == pytest.approx(fit.params[1])
    assert comp.extra["p_ancova"] == pytest.approx(fit.pvalues[1])


def _crossover_data(n_ab: int, n_ba: int, tau: float, period: float,
                    noise: float, seed: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = n_ab + n_ba
    subject = rng.normal(0, 5, n)
    a_first = np.r_[np.ones(n_ab, bool), np.zeros(n_ba, bool)]
    # active value: tau + period effect if the active arm came second
    y_a = subject + tau + np.where(a_first, 0.0, period) + rng.normal(0, noise, n)
    y_c = subject + np.where(a_first, period, 0.0) + rng.normal(0, noise, n)
    return y_a, y_c, a_first


def test_crossover_test_equals_ols_with_subject_fixed_effects() -> None:
    import statsmodels.formula.api as smf

    y_a, y_c, a_first = _crossover_data(9, 6, tau=-4.0, period=2.0, noise=3.0)
    comp = compare_crossover(y_a, y_c, a_first)
    n = y_a.size
    df = pd.DataFrame({
        "y": np.r_[y_a, y_c], "subject": np.r_[np.arange(n), np.arange(n)],
        "treat": np.r_[np.ones(n), np.zeros(n)],
        "period2": np.r_[~a_first, a_first].astype(float)})
    fit = smf.ols("y ~ C(subject) + period2 + treat", df).fit()
    assert comp.extra["difference_adjusted"] == pytest.approx(fit.params["treat"])
    assert comp.extra["period_effect"] == pytest.approx(fit.params["period2"])
    assert comp.p_value == pytest.approx(fit.pvalues["treat"])
    lo, hi = fit.conf_int().loc["treat"]
    assert (comp.ci_low, comp.ci_high) == pytest.approx((lo, hi))


def test_period_effect_does_not_bias_the_adjusted_estimate() -> None:
    # unbalanced sequences and a large period effect: the raw mean difference is biased,
    # the period-adjusted one is not
    y_a, y_c, a_first = _crossover_data(8, 2, tau=-5.0, period=10.0, noise=1e-3)
    comp = compare_crossover(y_a, y_c, a_first)
    assert comp.extra["difference_adjusted"] == pytest.approx(-5.0, abs=0.01)
    assert comp.extra["period_effect"] == pytest.approx(10.0, abs=0.01)
    assert comp.difference == pytest.approx(-5.0 + 10.0 * (2 - 8) / 10, abs=0.01)
    d = y_a - y_c
    assert comp.cohens_d == pytest.approx(d.mean() / d.std(ddof=1))  # within-subject d


def test_crossover_with_one_sequence_falls_back_to_the_paired_test() -> None:
    y_a, y_c, a_first = _crossover_data(6, 0, tau=-3.0, period=0.0, noise=2.0)
    comp = compare_crossover(y_a, y_c, a_first)
    assert comp.p_value == pytest.approx(stats.ttest_1samp(y_a - y_c, 0.0).pvalue)
    assert "difference_adjusted" not in comp.extra


def test_mcnemar_for_paired_fractions() -> None:
    # 6 respond on the active arm only, 1 on control only, 3 on both, 2 on neither
    y_a = np.array([1] * 6 + [0] + [1] * 3 + [0] * 2, float)
    y_c = np.array([0] * 6 + [1] + [1] * 3 + [0] * 2, float)
    comp = compare_crossover(y_a, y_c, np.arange(12) % 2 == 0, fraction=True)
    assert comp.difference == pytest.approx(5 / 12)
    assert comp.p_value == pytest.approx(stats.binomtest(6, 7, 0.5).pvalue)
    from statsmodels.stats.contingency_tables import mcnemar

    table = [[3, 6], [1, 2]]  # rows: active yes/no; columns: control yes/no
    assert comp.p_value == pytest.approx(mcnemar(table, exact=True).pvalue)
    assert comp.extra["nnt"] == pytest.approx(12 / 5)
    assert comp.ci_low < comp.difference < comp.ci_high


def test_constant_data_gives_no_test() -> None:
    comp = compare_parallel(np.zeros(5), np.zeros(5))
    assert comp.difference == 0.0 and np.isnan(comp.p_value) and np.isnan(comp.cohens_d)
    comp = compare_crossover(np.ones(6), np.ones(6), np.arange(6) < 3)
    assert np.isnan(comp.p_value)
