#!/usr/bin/env python3
"""Fixtures for shiftlm's classical forecasting baselines (src/stats/,
tests/classical_baselines.rs), computed with statsmodels 0.15.

For each series (real ones shipped with statsmodels, and two seeded
synthetic ones) it fits, on the first part only (the "training rows"):

- AR(p), the order chosen by AIC: `ar_select_order(y, maxlag, ic="aic",
  trend="c")`, then `AutoReg(y, p, trend="c")` (OLS); the AIC of every order,
  the coefficients and the h-step forecast.
- Theta: `ThetaModel(y, period=m)` (statsmodels' defaults: seasonality test,
  classical multiplicative decomposition when the series is positive, SES
  with known initial level, drift from OLS, theta = 2); its parameters,
  seasonal indices and forecast.
- ETS: `ETSModel` for every error/trend/season combination shiftlm
  considers (R's restricted set without multiplicative trend); its fitted
  parameters and initial states, log-likelihood and forecast. shiftlm's test
  evaluates its own likelihood and forecast at these parameters (exact), and
  checks that its own optimiser finds a likelihood at least as high. For a
  multiplicative season the two forms differ slightly (see `exact` below).

A plain numpy reference of the ETS recursion checks here that the parameter
and state order written to the fixture reproduces statsmodels' fitted values,
so the fixture's layout is the one the Rust code reads:
`initial = [level, trend, s_0, s_-1, …, s_-(m-1)]` (most recent season first).

  python3 tools/make_baseline_fixtures.py      (needs statsmodels, numpy)
"""
import json
import math
import pathlib
import warnings

import numpy as np
import statsmodels.api as sm
from statsmodels.tsa.ar_model import AutoReg, ar_select_order
from statsmodels.tsa.exponential_smoothing.ets import ETSModel
from statsmodels.tsa.forecasting.theta import ThetaModel

warnings.simplefilter("ignore")
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "classical_baselines.json"


def series():
    """(name, training values, season, horizon, AR maxlag)."""
    sun = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(float)
    nile = sm.datasets.nile.load_pandas().data["volume"].to_numpy(float)
    gdp = sm.datasets.macrodata.load_pandas().data["realgdp"].to_numpy(float)
    nino = sm.datasets.elnino.load_pandas().data.iloc[:, 1:].to_numpy(float).ravel()
    rng = np.random.default_rng(7)
    t = np.arange(96)
    monthly = 100 + 0.5 * t + 12 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 2, t.size)
    walk = np.cumsum(rng.normal(0.2, 1.0, 80))
    return [
        ("sunspots", sun[:216], 11, 10, 22),
        ("nile", nile[:70], 1, 10, 8),
        ("realgdp", gdp[:140], 4, 8, 12),
        ("elnino", nino[:240], 12, 12, 24),
        ("synthetic_monthly", monthly, 12, 12, 13),
        ("random_walk", walk, 1, 6, 6),
    ]


def ar_case(y, maxlag, h):
    sel = ar_select_order(y, maxlag, ic="aic", trend="c")
    aic = {int(k[-1]) if isinstance(k, tuple) else int(k): float(v) for k, v in sel.aic.items()}
    lags = sel.ar_lags
    p = 0 if lags is None or len(lags) == 0 else int(max(lags))
    res = AutoReg(y, p, trend="c").fit()
    return {
        "maxlag": maxlag,
        "aic": [aic[k] for k in range(maxlag + 1)],
        "order": p,
        "params": [float(v) for v in np.asarray(res.params)],
        "forecast": [float(v) for v in np.asarray(res.forecast(h))],
    }


def theta_case(y, m, h):
    if m < 2:
        mod = ThetaModel(y, period=1, deseasonalize=False)
    else:
        mod = ThetaModel(y, period=m)
    res = mod.fit()
    return {
        "deseasonalized": bool(mod._has_seasonality) if m >= 2 else False,
        "method": mod.method,
        "seasonal": [float(v) for v in res._seasonal],
        "b0": float(res._b0),
        "alpha": float(res._alpha),
        "one_step": float(np.asarray(res._one_step).ravel()[0]),
        "forecast": [float(v) for v in np.asarray(res.forecast(h))],
    }


def ets_reference(y, spec, alpha, beta, gamma, phi, init, m):
    """The recursion shiftlm implements (R's `etscalc`), in numpy: returns
    the one-step fitted values and the final state."""
    err, trend, season = spec
    level, slope = init[0], init[1]
    s = list(init[2:]) if season != "N" else []
    fitted = []
    for v in y:
        q = level + (phi * slope if trend == "A" else 0.0)
        so = s[m - 1] if season != "N" else None
        f = q + so if season == "A" else q * so if season == "M" else q
        fitted.append(f)
        p = v - so if season == "A" else v / so if season == "M" else v
        new_level = q + alpha * (p - q)
        if trend == "A":
            slope = phi * slope + (beta / alpha) * (new_level - level - phi * slope)
        if season != "N":
            t = v - q if season == "A" else v / q
            s = [so + gamma * (t - so)] + s[:-1]
        level = new_level
    return np.array(fitted), (level, slope, s)


def ets_candidates(y, m):
    positive = bool(np.min(y) > 0)
    out = []
    for err in ("A", "M"):
        for trend, damped in (("N", False), ("A", False), ("A", True)):
            for season in ("N", "A", "M"):
                if err == "M" and not positive:
                    continue
                if season != "N" and (m < 2 or m > 24):
                    continue
                if season == "M" and (err == "A" or not positive):
                    continue
                out.append((err, trend, damped, season))
    return out


def ets_case(y, m, h):
    cases = []
    for err, trend, damped, season in ets_candidates(y, m):
        kw = dict(error="add" if err == "A" else "mul",
                  trend=None if trend == "N" else "add", damped_trend=damped,
                  seasonal=None if season == "N" else ("add" if season == "A" else "mul"))
        if season != "N":
            kw["seasonal_periods"] = m
        mod = ETSModel(y, initialization_method="estimated", **kw)
        res = mod.fit(disp=False, maxiter=10000)
        par = dict(zip(mod.param_names, np.asarray(res.params)))
        alpha = par["smoothing_level"]
        beta = par.get("smoothing_trend", 0.0)
        gamma = par.get("smoothing_seasonal", 0.0)
        phi = par.get("damping_trend", 1.0)
        init = [par["initial_level"], par.get("initial_trend", 0.0)]
        if season != "N":
            # statsmodels lists initial_seasonal.0 … .(m-1) most recent
            # first, as shiftlm's state does.
            init += [par[f"initial_seasonal.{i}"] for i in range(m)]
        code = err + trend + ("d" if damped else "") + season
        fitted, _ = ets_reference(y, (err, trend, season), alpha, beta, gamma, phi, init, m)
        gap = np.max(np.abs(fitted - np.asarray(res.fittedvalues))) / np.std(y)
        # A multiplicative season is updated in Holt-Winters' component form
        # by statsmodels (s = γ* y/l_t + (1-γ*) s_t-m, with the new level),
        # in the error-correction form by R and shiftlm (s += γ (y/q - s)):
        # close, not equal. Only the other models are compared exactly.
        exact = season != "M"
        assert gap < (1e-9 if exact else 1e-3), f"{code}: reference recursion differs from statsmodels by {gap}"
        if not exact:
            # The likelihood of shiftlm's form at statsmodels' parameters.
            f = fitted
            e = (y - f) / f if err == "M" else y - f
            llf_ours = -len(y) / 2 * (math.log(2 * math.pi * np.mean(e ** 2)) + 1)
            if err == "M":
                llf_ours -= np.sum(np.log(np.abs(f)))
        # The forecast, from the reference's final state.
        _, (lv, sl, s) = ets_reference(y, (err, trend, season), alpha, beta, gamma, phi, init, m)
        fc = []
        damp = 0.0
        for k in range(1, h + 1):
            damp += phi ** k if trend == "A" else 0.0
            q = lv + damp * sl
            fc.append(q + s[m - 1 - (k - 1) % m] if season == "A" else q * s[m - 1 - (k - 1) % m]
                      if season == "M" else q)
        sm_fc = np.asarray(res.forecast(h)) if exact else np.array(fc)
        assert np.max(np.abs(np.array(fc) - sm_fc)) / np.std(y) < 1e-9, code
        cases.append({
            "model": code,
            "alpha": float(alpha), "beta": float(beta), "gamma": float(gamma), "phi": float(phi),
            "initial": [float(v) for v in init],
            "exact": exact,
            # statsmodels' log-likelihood, or (not exact) that of shiftlm's
            # form at statsmodels' parameters, a point shiftlm's optimiser
            # must match or beat.
            "llf": float(res.llf if exact else llf_ours),
            "forecast": [float(v) for v in sm_fc],
        })
    return cases


def main():
    fixtures = []
    for name, y, m, h, maxlag in series():
        fixtures.append({
            "name": name, "season": m, "horizon": h, "y": [float(v) for v in y],
            "ar": ar_case(y, maxlag, h),
            "theta": theta_case(y, m, h),
            "ets": ets_case(y, m, h),
        })
        best = max(fixtures[-1]["ets"], key=lambda c: c["llf"])
        print(f"{name}: n={len(y)} m={m} AR({fixtures[-1]['ar']['order']}) "
              f"theta deseasonalized={fixtures[-1]['theta']['deseasonalized']} "
              f"ETS candidates={len(fixtures[-1]['ets'])} (highest llf {best['model']})")
    OUT.write_text(json.dumps({"statsmodels": sm.__version__, "series": fixtures}, indent=1) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
