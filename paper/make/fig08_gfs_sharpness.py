"""Figure 8: GD decreases the sharpness of gradient-flow solutions (Kreisler et al., ICML 2023)."""

from __future__ import annotations

import numpy as np

from paper import style
from paper.build import Context, Section
from paper.cache import Job

NAME = "gfs-sharpness"
NUMBER = 8
TITLE = "GD decreases the sharpness of the gradient-flow solution of a scalar network"

#: ``2/eta`` as fractions of the initial GFS sharpness; the last one is below the
#: smallest sharpness of any minimum (D for this loss), so GD cannot converge.
FRACTIONS = (0.97, 0.92, 0.86, 0.75)
#: Iterates read by the classification rule, and its relative tolerance.
TAIL = 128
TOL = 1e-9


def jobs(quick: bool) -> list[Job]:
    config = {"depth": 4, "theta0": [1.5, 1.0, 0.6, 0.4], "fractions": list(FRACTIONS),
              "steps": 300 if quick else 20000}
    return [Job("gfs", config, compute, version=2, cost=0.6, label="GFS sharpness")]


def compute(config: dict) -> dict:
    """GD on ``L = (w_1 ... w_D - 1)^2 / 2`` from an unbalanced point, for several step sizes.

    Records, at every step, the loss, the sharpness ``S(w_t)`` and the sharpness of the
    gradient-flow solution from ``w_t`` (:func:`minimal_eos.scalar_theory.gfs_sharpness`,
    closed form), and the fate of each run read from its last :data:`TAIL` iterates
    (:func:`paper.tails.classify_tail`) with the step from which it stays put
    (:func:`paper.tails.settled_step`).
    """
    from minimal_eos import GD, ScalarNetwork, simulate
    from minimal_eos.scalar_theory import gfs_sharpness
    from paper.tails import classify_tail, settled_step

    net = ScalarNetwork(depth=config["depth"])
    w0 = np.array(config["theta0"], dtype=float)
    s0 = gfs_sharpness(net, w0)
    etas = 2.0 / (s0 * np.array(config["fractions"]))
    res = simulate(net, GD(), w0, config["steps"], eta=etas)
    theta = np.ma.filled(res.theta, np.nan)
    gfs = np.array([[gfs_sharpness(net, th) if np.all(np.isfinite(th)) else np.nan
                     for th in run] for run in theta])
    return {"etas": etas, "t": res.t, "loss": np.ma.filled(res.loss, np.nan),
            "sharpness": np.ma.filled(res.sharpness, np.nan), "gfs": gfs, "gfs0": s0,
            "s0": net.sharpness(w0), "min_sharpness": float(config["depth"]),
            "status": [str(s) for s in res.status], "period": res.period.tolist(),
            "depth": config["depth"], **_fates(theta, classify_tail, settled_step)}


def _fates(theta: np.ndarray, classify, settled) -> dict:
    """The tail class of each run and the step from which it stays put (-1: never)."""
    out: dict = {"fate": [], "fate_period": [], "fate_rate": [], "settled": []}
    for run in theta:
        if not np.all(np.isfinite(run)):
            out["fate"].append("diverged")
            out["fate_period"].append(0)
            out["fate_rate"].append(float("nan"))
            out["settled"].append(-1)
            continue
        c = classify(run[-TAIL:], tol=TOL)
        k = settled(run, tol=TOL)
        out["fate"].append(c.status)
        out["fate_period"].append(c.period)
        out["fate_rate"].append(c.rate)
        out["settled"].append(-1 if k is None else k)
    return {k: np.asarray(v) for k, v in out.items()}


def make(ctx: Context) -> Section:
    r = ctx.result(jobs(ctx.quick)[0])
    t, etas, gfs, sharp = r["t"], r["etas"], r["gfs"], r["sharpness"]
    x = t + 1
    fig, (ax1, ax2) = style.figure(2, width=11.0, height=4.0)
    for i, eta in enumerate(etas):
        c = style.SEQUENCE[i]
        ax1.plot(x, gfs[i], color=c, lw=1.8, label=f"η = {eta:.3f}")
        style.edge_line(ax1, 2 / eta, color=c, label=None)
    ax1.axhline(r["min_sharpness"], color="k", lw=0.8, ls=":")
    ax1.text(x[0], r["min_sharpness"], "flattest minimum (S = D)",
             va="top", ha="left", fontsize=8)
    ax1.set_xscale("log")
    ax1.set_xlabel("step t + 1  [GD iterations]")
    ax1.set_ylabel("GFS sharpness  [S at the gradient-flow limit]")
    ax1.set_title("GFS sharpness of w_t  (dashed: 2/η, same colour)")
    ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=4)
    style.panel_label(ax1, "a")
    # (b) the iterate's own sharpness, even and odd steps apart (GD oscillates with period 2)
    for idx in (len(etas) - 2, len(etas) - 1):
        c = style.SEQUENCE[idx]
        for parity in (0, 1):
            ax2.plot(x[parity::2], sharp[idx, parity::2], color=c, lw=0.8, alpha=0.7,
                     label=f"S(w_t), η = {etas[idx]:.3f} (even, odd t)" if parity == 0
                     else None)
        ax2.plot(x, gfs[idx], color=c, lw=2.2, label=f"GFS sharpness, η = {etas[idx]:.3f}")
        style.edge_line(ax2, 2 / etas[idx], color=c, label="2/η")
    ax2.set_xscale("log")
    ax2.set_xlabel("step t + 1  [GD iterations]")
    ax2.set_ylabel(style.LABELS["sharpness"])
    ax2.set_title("Sharpness of the iterate and of its GF solution")
    ax2.legend(loc="upper right", fontsize=7.5)
    style.panel_label(ax2, "b")
    path, rel = ctx.figure_path(NUMBER, NAME)
    style.save(fig, path)

    rises = np.nanmax(np.diff(gfs, axis=1), axis=1)
    final = gfs[:, -1]
    fate, settled = [str(f) for f in r["fate"]], [int(k) for k in r["settled"]]
    numbers = {"etas": etas.tolist(), "gfs0": r["gfs0"], "s0": r["s0"],
               "largest_rise": float(np.max(rises)), "final_gfs": final.tolist(),
               "edges": (2 / etas).tolist(), "fate": fate,
               "fate_period": [int(p) for p in r["fate_period"]],
               "fate_rate": [float(v) for v in r["fate_rate"]], "settled": settled,
               "steps": int(t[-1]), "min_sharpness": r["min_sharpness"],
               "final_loss": r["loss"][:, -1].tolist()}
    conv = [i for i, f in enumerate(fate) if f == "converged"]
    below = all(final[i] <= 2 / etas[i] * (1 + 1e-9) for i in conv)
    caption = (
        f"GD on the depth-{r['depth']} scalar network L = (w₁w₂w₃w₄ − 1)²/2 from the "
        f"unbalanced point w₀ = (1.5, 1, 0.6, 0.4), whose own sharpness is {r['s0']:.3g} "
        f"but whose gradient-flow solution (GFS) has sharpness {r['gfs0']:.3g}. The step "
        f"sizes put 2/η (dashed) below the GFS sharpness, so gradient flow from w₀ would "
        f"end at a minimum where GD is unstable. (a) The GFS sharpness of every iterate, "
        f"in closed form. (b) The sharpness of the iterate itself (thin) for the two "
        f"largest step sizes.")
    # rounding: the closed form is evaluated in float64 on values of order 5
    monotone = numbers["largest_rise"] <= 1e-12
    above = [i for i in range(len(etas)) if 2 / etas[i] > r["min_sharpness"]]

    def fate_text(i: int) -> str:
        how = {"converged": f"converged (it stays put from step {settled[i]})",
               "converging": f"still converging (amplitude shrinking by "
                             f"{numbers['fate_rate'][i]:.4f} per step)",
               "periodic": f"periodic with period {numbers['fate_period'][i]}",
               "running": "no period found", "diverged": "diverged"}[fate[i]]
        return (f"η = {etas[i]:.3f}: {how}, loss {numbers['final_loss'][i]:.1e}, GFS "
                f"sharpness {final[i]:.4f} against 2/η = {2 / etas[i]:.4f}")

    rule = (f"Rule: a run is converged when its last two iterates agree to "
            f"{TOL:g}·(1 + max|w_T|); periodic with period p when its last p iterates repeat "
            f"those p steps earlier to that tolerance and the step-to-step amplitude "
            f"|w_t − w_(t−1)| does not shrink over its last {TAIL} steps (a shrinking "
            f"amplitude is a fixed point approached slowly, with multiplier near −1).")
    text = (
        f"Along all {len(etas)} runs ({numbers['steps']} steps) the GFS sharpness "
        + ("never increases by more than rounding" if monotone else "does not always decrease")
        + f" (largest step-to-step change {numbers['largest_rise']:.1e}; Kreisler et al. "
        f"prove that it decreases monotonically). The runs whose 2/η lies above the "
        f"flattest minimum's sharpness end as follows, after {numbers['steps']} steps "
        f"({'; '.join(fate_text(i) for i in above)}): GD moves to flatter "
        f"minima until 2/η admits a stable one"
        + (", and every run that converged did so below its 2/η" if below and conv else "")
        + f". The run with η = {etas[-1]:.3f} "
        f"has 2/η = {2 / etas[-1]:.3f}, below the sharpness D = {r['min_sharpness']:.0f} of "
        f"the flattest minimum (the balanced one); its GFS sharpness falls to "
        f"{final[-1]:.4f} and GD keeps oscillating around the balanced minimum "
        f"({fate_text(len(etas) - 1).split(': ', 1)[1].split(',')[0]}). {rule}")
    return Section(file=rel, caption=caption, text=text, numbers=numbers)
