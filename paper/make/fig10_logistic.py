"""Figure 10: logistic regression at large step sizes, separable and non-separable."""

from __future__ import annotations

import numpy as np

from paper import style
from paper.build import Context, Section
from paper.cache import Job

NAME = "logistic"
#: Relative tolerance of "1/L grows by eta gamma^2 per step".
RATE_TOL = 0.05
NUMBER = 10
TITLE = "Logistic regression at large step sizes: loss curves and period doubling"


def jobs(quick: bool) -> list[Job]:
    config = {"separable": {"n_up": 3, "n_down": 1, "tilt": 0.1},
              "etas": [1.0, 10.0, 100.0, 1000.0], "steps": 2000 if quick else 20000,
              "every": 1 if quick else 5, "adaptive_etas": [1.0, 10.0],
              "adaptive_steps": 200 if quick else 400,
              "nonseparable": {"n": 30, "d": 2, "seed": 0},
              "eta_lambda": [1.6, 3.0, 60 if quick else 600],
              "transient": 1000 if quick else 4000, "keep": 32 if quick else 128,
              "cycles": {"n_near": 47, "far": 20.0, "scan": [1.0, 1.7, 15 if quick else 71],
                         "dense_to": 1.66, "to": 2.05, "num": [20, 10] if quick else [90, 40]}}
    return [Job("logistic", config, compute, version=2, cost=1.5, label="logistic regression")]


def compute(config: dict) -> dict:
    """Loss curves on separable data (constant and risk-adaptive steps) and the orbit diagram
    of GD on non-separable data, from :mod:`analysis.dln_logistic`."""
    from analysis.dln_logistic import (
        logistic_bifurcation,
        logistic_loss_curves,
        stable_cycle_start,
    )
    from minimal_eos.data import imbalanced_separable, nonseparable_logistic
    from minimal_eos.logistic_theory import stability_thresholds
    from minimal_eos.models.logistic import LogisticRegression
    from paper.tails import classify_tail

    sep = imbalanced_separable(**config["separable"])
    cur = logistic_loss_curves(sep, config["etas"], config["steps"], every=config["every"])
    ada = logistic_loss_curves(sep, config["adaptive_etas"], config["adaptive_steps"])
    ns = nonseparable_logistic(config["nonseparable"]["n"], config["nonseparable"]["d"],
                               seed=config["nonseparable"]["seed"])
    lam = stability_thresholds(LogisticRegression(ns.X, ns.y)).sharpness
    lo, hi, num = config["eta_lambda"]
    grid = np.linspace(lo, hi, int(num))
    bif = logistic_bifurcation(ns, grid / lam, transient=config["transient"],
                               keep=config["keep"])
    diag = bif.diagrams[0]
    pts = np.ma.getdata(diag.points)
    tails = [classify_tail(pts[i]) if not np.ma.getmaskarray(diag.points)[i].any()
             else None for i in range(len(grid))]
    return {"etas": cur.etas, "t": cur.t, "log_loss": cur.log_loss_constant,
            "predicted": cur.predicted_constant, "gamma": cur.gamma,
            "phase": cur.phase_constant, "late": cur.late_constant,
            "ada_etas": ada.etas, "ada_t": ada.t, "ada_log_loss": ada.log_loss_adaptive,
            "ada_const_log_loss": ada.log_loss_constant,
            "ada_slope": ada.predicted_adaptive_slope, "ada_phase": ada.phase_adaptive,
            "grid": grid, "lambda": lam, "minimizer": bif.thresholds.minimizer,
            "values": np.ma.filled(diag.values(0), np.nan), "period": diag.period,
            "status": np.array([str(s) for s in diag.status]),
            "tail_status": np.array(["diverged" if c is None else c.status for c in tails]),
            "tail_period": np.array([0 if c is None else c.period for c in tails]),
            "tail_rate": np.array([np.nan if c is None else c.rate for c in tails]),
            **_cycles(config["cycles"], config, stable_cycle_start, logistic_bifurcation)}


def _cycles(cfg: dict, config: dict, cycle_start, bifurcation) -> dict:
    """Stable cycles below ``2/lambda`` on :func:`minimal_eos.data.cycle_dataset_1d`.

    Scans ``eta lambda`` for the lowest value with a stable periodic orbit
    (:func:`analysis.dln_logistic.stable_cycle_start`), then draws the orbit diagram from
    there, from the minimiser and from a point of the cycle.
    """
    from minimal_eos.data import cycle_dataset_1d
    from minimal_eos.logistic_theory import stability_thresholds
    from minimal_eos.models.logistic import LogisticRegression

    data = cycle_dataset_1d(cfg["n_near"], cfg["far"])
    model = LogisticRegression(data.X, data.y)
    th = stability_thresholds(model)
    lam = th.sharpness
    lo, hi, num = cfg["scan"]
    scan = np.linspace(lo, hi, int(num))
    guesses = th.minimizer + np.linspace(-3.0, 3.0, 61)[:, None]
    found = [cycle_start(model, float(v / lam), guesses) is not None for v in scan]
    first = float(scan[found.index(True)]) if any(found) else float("nan")
    out = {"cyc_lambda": lam, "cyc_minimizer": float(th.minimizer[0]), "cyc_scan": scan,
           "cyc_found": np.array(found), "cyc_first": first}
    if not any(found):
        return out
    n1, n2 = cfg["num"]
    grid = np.unique(np.concatenate([np.linspace(first, cfg["dense_to"], int(n1)),
                                     np.linspace(cfg["dense_to"], cfg["to"], int(n2))]))
    start = cycle_start(model, float(first / lam), guesses)
    starts = np.array([th.minimizer + 1e-3, start])
    bif = bifurcation(data, grid / lam, starts=starts, transient=config["transient"],
                      keep=config["keep"])
    out["cyc_grid"] = grid
    out["cyc_starts"] = bif.starts[:, 0]
    for k, diag in enumerate(bif.diagrams):
        out[f"cyc_values{k}"] = np.ma.filled(diag.values(0), np.nan)
        out[f"cyc_period{k}"] = diag.period
        out[f"cyc_status{k}"] = np.array([str(s) for s in diag.status])
    out["cyc_branches"] = len(bif.diagrams)
    return out


def _first(grid, mask) -> float | None:
    hit = np.flatnonzero(mask)
    return float(grid[hit[0]]) if hit.size else None


def _cycle_numbers(r) -> dict:
    """Where the cycle branch of panel (d) changes period, and where it falls to w*."""
    from paper.tails import classify_tail

    out = {"first": float(r["cyc_first"]), "lambda": float(r["cyc_lambda"]),
           "scan_step": float(np.diff(r["cyc_scan"])[0])}
    if "cyc_grid" not in r:
        return out
    grid = r["cyc_grid"]
    for k, name in ((0, "minimum"), (1, "cycle")):
        vals = r[f"cyc_values{k}"]
        tails = [classify_tail(v) if np.all(np.isfinite(v)) else None for v in vals]
        status = np.array(["diverged" if c is None else c.status for c in tails])
        period = np.array([0 if c is None else c.period for c in tails])
        settled = np.isin(status, ("converged", "converging"))
        out[name] = {"status": status.tolist(), "period": period.tolist(),
                     "first_settled": _first(grid, settled),
                     "last_settled_below_2": _first(grid[::-1], settled[::-1] & (grid[::-1] < 2)),
                     "first_running": _first(grid, status == "running"),
                     **{f"first_period_{p}": _first(grid, (status == "periodic") & (period == p))
                        for p in (2, 4, 8)}}
    return out


def make(ctx: Context) -> Section:
    r = ctx.result(jobs(ctx.quick)[0])
    fig, axes = style.figure(2, 2, width=12.0, height=4.0)
    (ax1, ax2), (ax3, ax4) = axes
    t = np.maximum(r["t"], 1)
    for i, eta in enumerate(r["etas"]):
        c = style.SEQUENCE[i]
        ax1.plot(t, r["log_loss"][i], color=c, lw=1.4, label=f"η = {eta:g}")
        ax1.plot(t[t > 1], r["predicted"][i][t > 1], color=c, lw=0.9, ls=":")
    ax1.set_xscale("log")
    ax1.set_xlabel("step t  [GD iterations, log scale]")
    ax1.set_ylabel("ln L(w_t)  [log of the logistic loss]")
    ax1.set_title("Separable data, constant step (dotted: ln 1/(ηγ²t))")
    ax1.legend(loc="lower left", fontsize=7.5)
    style.panel_label(ax1, "a")
    for i, eta in enumerate(r["ada_etas"]):
        c = style.SEQUENCE[i]
        ax2.plot(r["ada_t"], r["ada_log_loss"][i], color=c, lw=1.6,
                 label=f"η_t = {eta:g}/L(w_t)")
        ax2.plot(r["ada_t"], r["ada_const_log_loss"][i], color=c, lw=1.2, ls="--",
                 label=f"η_t = {eta:g}")
    ax2.set_xlabel(style.LABELS["step"])
    ax2.set_ylabel("ln L(w_t)  [log of the logistic loss]")
    ax2.set_title("Risk-adaptive against constant steps")
    ax2.legend(loc="lower left", fontsize=7.5)
    style.panel_label(ax2, "b")
    grid, vals = r["grid"], r["values"]
    keep = vals.shape[1]
    xs, ys = np.repeat(grid, keep), vals.ravel()
    ok = np.isfinite(ys)
    ax3.scatter(xs[ok], ys[ok], s=0.3, c="k", alpha=0.6, linewidths=0, rasterized=True)
    ax3.axhline(r["minimizer"][0], color=style.PREDICTION, lw=0.9, ls="-.",
                label="minimiser w*")
    style.edge_vline(ax3, 2.0, label="η = 2/λ", above=True)
    ax3.set_xlabel("η λ  [step size × sharpness at the minimiser]")
    ax3.set_ylabel("w₁ after the transient  [parameter value]")
    ax3.set_title("Non-separable data (2-D): orbit diagram", pad=16)
    ax3.legend(loc="upper left", fontsize=7.5)
    style.panel_label(ax3, "c")
    cyc = _cycle_numbers(r)
    if "cyc_grid" in r:
        g = r["cyc_grid"]
        for k, (colour, label) in enumerate(((("k", "started at the minimiser")),
                                             (style.FLOW, "started on the cycle"))):
            v = r[f"cyc_values{k}"]
            keep = v.shape[1]
            ok = np.isfinite(v.ravel())
            ax4.scatter(np.repeat(g, keep)[ok], v.ravel()[ok], s=1.2 if k else 0.6,
                        c=colour, linewidths=0, rasterized=True, label=label, zorder=3 - k)
        ax4.axhline(r["cyc_minimizer"], color=style.PREDICTION, lw=0.9, ls="-.",
                    label="minimiser w*")
        style.edge_vline(ax4, 2.0, label="η = 2/λ", above=True)
        lo, hi = np.nanmin([np.nanmin(r["cyc_values0"]), np.nanmin(r["cyc_values1"])]), \
            np.nanmax([np.nanmax(r["cyc_values0"]), np.nanmax(r["cyc_values1"])])
        ax4.set_ylim(lo - 0.05 * (hi - lo), hi + 0.45 * (hi - lo))
        ax4.legend(loc="upper left", fontsize=7.5, markerscale=6, ncols=2)
    ax4.set_xlabel("η λ  [step size × sharpness at the minimiser]")
    ax4.set_ylabel("w after the transient  [parameter value]")
    ax4.set_title("1-D data with a stable cycle below 2/λ", pad=16)
    style.panel_label(ax4, "d")
    path, rel = ctx.figure_path(NUMBER, NAME)
    style.save(fig, path)

    tail, tper = r["tail_status"], r["tail_period"]
    first = {}
    for p in (2, 4, 8):
        v = _first(grid, (tail == "periodic") & (tper == p))
        if v is not None:
            first[p] = v
    settled = np.isin(tail, ("converged", "converging"))
    cascade = max(first.values()) if first else float(grid[-1])
    last_settled = _first(grid[::-1], settled[::-1])
    slow = (tail == "converging")
    # late slope of ln L with the adaptive step, against the predicted -eta gamma^2
    ta = r["ada_t"].astype(float)
    half = ta >= ta[-1] / 2
    slopes = [float(np.polyfit(ta[half], row[half], 1)[0]) for row in r["ada_log_loss"]]
    finite = bool(np.all(np.isfinite(r["log_loss"])))
    decreasing_end = bool(np.all(r["log_loss"][:, -1] < r["log_loss"][:, -2]))
    # the level of 1/L: from some step on it grows by eta gamma^2 per step, so
    # 1/L ~ eta gamma^2 (t + t0) and L ~ 1/(eta gamma^2 t) needs t >> |t0|
    g2 = r["gamma"] ** 2
    level, t_rate, t_zero, fastest = [], [], [], []
    for i, eta in enumerate(r["etas"]):
        inv = np.exp(-r["log_loss"][i])
        rate = np.diff(inv) / (eta * g2 * np.diff(r["t"]))
        off = np.flatnonzero(np.abs(rate - 1.0) > RATE_TOL)
        t_rate.append(int(r["t"][off[-1] + 1]) if off.size else 0)
        fastest.append(float(np.max(rate)))
        level.append(float(np.exp(r["predicted"][i, -1] - r["log_loss"][i, -1])))
        t_zero.append(float(inv[-1] / (eta * g2) - r["t"][-1]))
    numbers = {"gamma": r["gamma"], "etas": r["etas"].tolist(),
               "nonmonotone_phase": r["phase"].tolist(), "late_c_gamma2": r["late"].tolist(),
               "level_ratio_end": level, "rate_from": t_rate, "t0": t_zero,
               "fastest_rate": fastest, "rate_tol": RATE_TOL,
               "adaptive_final": r["ada_log_loss"][:, -1].tolist(),
               "constant_final": r["ada_const_log_loss"][:, -1].tolist(),
               "adaptive_steps": int(r["ada_t"][-1]), "steps": int(r["t"][-1]),
               "lambda": r["lambda"], "first_period": first,
               "last_settled_eta_lambda": last_settled,
               "converging": int(slow.sum()),
               "converging_range": [float(grid[slow].min()), float(grid[slow].max())]
               if slow.any() else None,
               "chaotic_or_long": int(np.sum((tail == "running") & (grid > cascade))),
               "slow_near_bifurcation": grid[(tail == "running") & (grid <= cascade)].tolist(),
               "adaptive_slope": slopes, "adaptive_slope_predicted": r["ada_slope"].tolist(),
               "converged_all": finite and decreasing_end, "cycles": cyc}
    caption = (
        f"(a, b) GD from w = 0 on two-dimensional separable data (four points, every one a "
        f"support vector, max-margin γ = {r['gamma']:.4f}; one side outnumbers the other, so "
        f"large first steps overshoot). (a) Constant step sizes, with the late asymptote "
        f"L ≈ 1/(ηγ²t) dotted. (b) The risk-adaptive step η_t = η/L(w_t) (Zhang, Wu, Lin, "
        f"Bartlett, arXiv 2504.04105) against the constant step η. (c) Orbit diagram of "
        f"GD on non-separable data (30 Gaussian points in two dimensions, 20% of the "
        f"labels flipped), the first "
        f"coordinate after the transient against η λ, where λ is the sharpness at the "
        f"minimiser; continued from one step size to the next. (d) The same on a "
        f"one-dimensional non-separable set (47 copies of (x, y) = (1, +1) and one point "
        f"(20, −1)), from two starts at every step size: next to the minimiser (black) and "
        f"on a stable cycle found by Newton's method (orange).")
    phases = ", ".join(f"{p} (η = {e:g})" for e, p in zip(r["etas"], r["phase"], strict=True))
    lates = ", ".join(f"{c:.3f}" for c in r["late"])
    per = "; ".join(f"period {p} from η λ = {v:.4f}" for p, v in first.items())
    slope_text = ", ".join(f"{m:.4g} (predicted {p:.4g})" for m, p in
                           zip(slopes, numbers["adaptive_slope_predicted"], strict=True))
    eta_list = ", ".join(f"{e:g}" for e in r["etas"])
    text = (
        "Separable data: "
        + ("every constant step size keeps decreasing the loss at the end of its run. "
           if numbers["converged_all"] else "")
        + f"The loss is non-monotone only in an initial phase, whose last increase is at "
        f"step {phases} (0: it never increased); Wu, Bartlett, Telgarsky and Yu (arXiv "
        f"2402.15926) bound this phase by O(η) steps. Afterwards 1/L grows by ηγ² per "
        f"step: measured over the second half of the run by differencing, c γ² in "
        f"1/L(w_t) − 1/L(w_s) = "
        f"η(t − s)/c is {lates} (the prediction is 1). The per-step gain of 1/L is within "
        f"{RATE_TOL:.0%} of ηγ² from step {', '.join(str(v) for v in t_rate)} on (η = "
        f"{eta_list}); before, it is up to {', '.join(f'{v:.3g}' for v in fastest)} times "
        f"ηγ². From there 1/L(w_t) ≈ ηγ²(t + t₀), with t₀ = "
        f"{', '.join(f'{v:,.0f}' for v in t_zero)} steps, the head start (or lag) the early "
        f"phase left. So the level L ≈ 1/(ηγ²t) holds once t ≫ |t₀|: at the end of the run "
        f"(t = {numbers['steps']:,}) ηγ²t L(w_t) is "
        f"{', '.join(f'{1 / v:.3g}' for v in level)}, far from 1 where |t₀| is not small "
        f"against t. "
        f"With the risk-adaptive "
        f"step the log-loss falls linearly in t instead, with slopes {slope_text} over the "
        f"second half of the run; after {numbers['adaptive_steps']} steps it reaches ln L = "
        f"{', '.join(f'{v:.0f}' for v in numbers['adaptive_final'])} against "
        f"{', '.join(f'{v:.2f}' for v in numbers['constant_final'])} for the constant steps. "
        f"Non-separable data (c): started next to the minimiser, GD settles on it at every "
        f"step size of the grid below η λ = 2"
        + (f" (last: η λ = {last_settled:.4f})" if last_settled is not None else "")
        + (f", where the run(s) at η λ = "
           f"{', '.join(f'{v:.4f}' for v in grid[slow])} are still converging at the end of "
           f"the transient, with an oscillation that shrinks by the multiplier 1 − ηλ per "
           f"step" if slow.any() else "")
        + f"; above 2 it goes through period doubling: {per}, then "
        f"{numbers['chaotic_or_long']} step sizes with no period found (up to 64)"
        + (f"; at η λ = {', '.join(f'{v:.4f}' for v in numbers['slow_near_bifurcation'])}, "
           f"next to a bifurcation, no period was found within the transient either (the "
           f"approach to the new orbit is slow there)" if numbers["slow_near_bifurcation"]
           else "") + ". "
        + _cycle_text(cyc)
        + " Rule of (c, d): from the last kept iterates, a run is converged when its last two "
        "iterates agree to 1e-9·(1 + |w|), periodic with period p when its last p iterates "
        "repeat those p steps earlier and the step-to-step amplitude does not shrink over "
        "the kept iterates, converging when it does (paper.tails).")
    return Section(file=rel, caption=caption, text=text, numbers=numbers)


def _cycle_text(c: dict) -> str:
    """Panel (d): the stable cycles of Meng, Orvieto, Cao and De Sa below 2/lambda."""
    if "cycle" not in c:
        return (f"One-dimensional data (d): no stable cycle found between η λ = 1 and 1.7 "
                f"(scan step {c['scan_step']:.2g}).")
    cy, mi = c["cycle"], c["minimum"]
    steps = [f"period {p} from η λ = {cy[f'first_period_{p}']:.3f}" for p in (4, 8)
             if cy[f"first_period_{p}"] is not None]
    if cy["first_running"] is not None:
        steps.append(f"no period from {cy['first_running']:.3f}")
    fall = (f", and from η λ = {cy['first_settled']:.3f} GD started there falls to the "
            f"minimiser (the cycle is gone)" if cy["first_settled"] is not None else "")
    return (
        f"Converging from next to the minimiser below η λ = 2 does not mean converging from "
        f"everywhere: Meng, Orvieto, Cao and De Sa (arXiv 2406.05033) show that for any η "
        f"between 1/λ and 2/λ some one-dimensional data set has a stable cycle. On the "
        f"data set of (d) "
        f"(λ = {c['lambda']:.4f}) the scan (step {c['scan_step']:.2g} from η λ = 1) first "
        f"finds a stable cycle at η λ = {c['first']:.2f}, where the minimum is stable too. "
        f"Started on it GD stays on a cycle ({', '.join(steps)}){fall}; started next to "
        f"the minimiser it converges at every grid step size below 2"
        + (f" (last: η λ = {mi['last_settled_below_2']:.3f})"
           if mi["last_settled_below_2"] is not None else "") + ".")
