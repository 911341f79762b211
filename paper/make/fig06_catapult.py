"""Figure 6: the catapult phase diagram of the uv model (Lewkowycz et al., arXiv 2003.02218)."""

from __future__ import annotations

import numpy as np

from paper import style
from paper.build import Context, Section
from paper.cache import Job

NAME = "catapult"
NUMBER = 6
TITLE = "The catapult phase diagram of the uv model"

#: Outcomes, in the order of their colour codes.
OUTCOMES = ("lazy", "catapult", "diverged", "not converged")
COLOURS = ("#9ecae1", "#fdae6b", "#636363", "#e7298a")
#: Up to this eta * lambda_0 the catapult's end point is a smooth function of it; above,
#: it bounces chaotically and depends on the initial output (arXiv 2311.02076).
SMOOTH = 2.9


def jobs(quick: bool) -> list[Job]:
    if quick:
        config = {"widths": [10, 100], "seeds": 2, "grid": [0.5, 4.5, 17], "steps": 1500,
                  "curve": 40}
    else:
        config = {"widths": [4, 16, 64, 256, 1024], "seeds": 4, "grid": [0.5, 4.5, 81],
                  "steps": 6000, "curve": 300}
    return [Job("catapult", config, compute, version=1, cost=2.0, label="uv catapult")]


def compute(config: dict) -> dict:
    """GD on the uv model over ``eta lambda_0`` and widths; outcome, spike and final sharpness.

    For every width, ``seeds`` initialisations ``u, v ~ N(0, 1)`` (so ``f_0 ~ 1`` and
    ``lambda_0 ~ 2``; target ``y = 0``) and step sizes ``eta = mu / lambda_0`` for ``mu`` on
    the grid. A converged run is *lazy* when its loss never rose above the initial loss and
    a *catapult* otherwise.
    """
    from minimal_eos import GD, UVModel, simulate
    from minimal_eos.scalar_theory import predict_catapult, universal_catapult, uv_state

    lo, hi, num = config["grid"]
    mus = np.linspace(lo, hi, num)
    widths = config["widths"]
    seeds = config["seeds"]
    outcome = np.zeros((len(widths), seeds, num), dtype=np.int64)
    final_mu = np.full((len(widths), seeds, num), np.nan)
    spike = np.full((len(widths), seeds, num), np.nan)
    agree = np.zeros((len(widths), seeds, num), dtype=bool)
    for i, n in enumerate(widths):
        model = UVModel(width=n)
        th0 = np.array([model.init(np.random.default_rng(1000 * n + k)) for k in range(seeds)])
        lam0 = np.array([uv_state(model, t)[1] for t in th0])
        etas = (mus[None, :] / lam0[:, None]).ravel()
        starts = np.repeat(th0, num, axis=0)
        res = simulate(model, GD(), starts, config["steps"], eta=etas, save=("loss",),
                       tol=1e-12)
        loss = np.ma.filled(res.loss, np.inf)
        peak = loss.max(axis=1) / loss[:, 0]
        sharp = np.array([model.sharpness(t) for t in res.final_theta])
        for b in range(len(etas)):
            k, j = divmod(b, num)
            status = str(res.status[b])
            if status == "diverged":
                code = 2
            elif status == "converged":
                code = 1 if peak[b] > 1.0 + 1e-9 else 0
                final_mu[i, k, j] = etas[b] * sharp[b]
                spike[i, k, j] = peak[b]
            else:
                code = 3
            outcome[i, k, j] = code
            pred = predict_catapult(model, th0[k], float(etas[b]), max_steps=config["steps"])
            pred_code = {"lazy": 0, "catapult": 1, "divergent": 2}.get(pred.phase, 3)
            agree[i, k, j] = pred_code == code
    curve_mu = np.linspace(lo, 3.999, config["curve"])
    curve = np.array([universal_catapult(m).eta_lambda or np.nan for m in curve_mu])
    return {"mus": mus, "widths": np.array(widths), "outcome": outcome, "final_mu": final_mu,
            "spike": spike, "agree": agree, "curve_mu": curve_mu, "curve": curve,
            "steps": config["steps"], "seeds": seeds}


def make(ctx: Context) -> Section:
    r = ctx.result(jobs(ctx.quick)[0])
    mus, widths, outcome = r["mus"], r["widths"], r["outcome"]
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    fig, (ax1, ax2) = style.figure(2, width=11.0, height=4.0)
    # (a) the outcome of every run: rows are (width, initialisation) pairs
    rows = outcome.reshape(-1, len(mus))
    cmap = ListedColormap(COLOURS)
    dm = mus[1] - mus[0]
    ax1.imshow(rows, aspect="auto", interpolation="nearest", cmap=cmap,
               norm=BoundaryNorm(np.arange(-0.5, 4), cmap.N), origin="lower",
               extent=(mus[0] - dm / 2, mus[-1] + dm / 2, -0.5, rows.shape[0] - 0.5))
    seeds = int(r["seeds"])
    ticks = [i * seeds + (seeds - 1) / 2 for i in range(len(widths))]
    ax1.set_yticks(ticks, [str(w) for w in widths])
    ax1.grid(False)
    for i in range(1, len(widths)):
        ax1.axhline(i * seeds - 0.5, color="white", lw=1.5)
    style.edge_vline(ax1, 2.0, label="η = 2/λ₀", color="k", above=True)
    style.edge_vline(ax1, 4.0, label="η = 4/λ₀", color="k", above=True)
    ax1.set_xlabel("η λ₀  [step size × initial NTK eigenvalue]")
    ax1.set_ylabel(f"width n  ({seeds} initialisations each)")
    ax1.set_title("Outcome of GD on the uv model", pad=16)
    ax1.legend([Patch(color=c) for c in COLOURS], OUTCOMES, loc="upper center",
               bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    style.panel_label(ax1, "a")
    # (b) eta times the final sharpness: below 2 (the edge) after the catapult
    for i, n in enumerate(widths):
        fm = r["final_mu"][i]
        ok = np.isfinite(fm)
        xs = np.broadcast_to(mus, fm.shape)[ok]
        ax2.scatter(xs, fm[ok], s=10, color=style.SEQUENCE[i % len(style.SEQUENCE)],
                    label=f"GD, width {n}", zorder=3, alpha=0.8)
    smooth = r["curve_mu"] <= SMOOTH
    ax2.plot(r["curve_mu"][smooth], r["curve"][smooth], color=style.PREDICTION, lw=1.6,
             label=f"width → ∞ (the (μ, z) map, η λ₀ ≤ {SMOOTH})", zorder=4)
    style.edge_line(ax2, 2.0, label="S = 2/η")
    style.edge_vline(ax2, 2.0, label="η = 2/λ₀", above=True)
    style.edge_vline(ax2, 4.0, label="η = 4/λ₀", above=True)
    ax2.set_xlabel("η λ₀  [step size × initial NTK eigenvalue]")
    ax2.set_ylabel("η × final sharpness  [dimensionless]")
    ax2.set_title("Sharpness at the minimum reached", pad=16)
    ax2.set_xlim(mus[0] - 0.1, mus[-1] + 0.1)
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    style.panel_label(ax2, "b")
    path, rel = ctx.figure_path(NUMBER, NAME)
    style.save(fig, path)

    below = mus < 2.0
    between = (mus > 2.0) & (mus < 4.0)
    above = mus > 4.0
    frac = {
        "lazy_below_2": float(np.mean(outcome[:, :, below] == 0)),
        "catapult_between": float(np.mean(outcome[:, :, between] == 1)),
        "diverged_above_4": float(np.mean(outcome[:, :, above] == 2)),
        "agree": float(np.mean(r["agree"])),
    }
    cat = outcome == 1
    max_final = float(np.nanmax(np.where(cat, r["final_mu"], np.nan))) if cat.any() else np.nan
    widest = r["final_mu"][-1]
    zone = (mus > 2.0) & (mus <= SMOOTH)
    pred = np.interp(mus[zone], r["curve_mu"], r["curve"])
    gap = float(np.nanmax(np.abs(widest[:, zone] - pred[None, :]))) if zone.any() else np.nan
    numbers = {**frac, "runs": int(outcome.size), "gap_widest": gap,
               "widths": [int(w) for w in widths],
               "steps": int(r["steps"]), "max_final_mu_catapult": max_final}
    caption = (
        "GD on the uv model of Lewkowycz et al. (arXiv 2003.02218; see also Kalra et al., "
        "arXiv 2311.02076) f = u·v/√n with one example (x = 1, y = 0), squared loss. "
        "(a) Outcome of every run against η λ₀, where λ₀ is the initial neural tangent "
        "kernel (the sharpness at a minimum); each band of rows is one width, each row "
        "one initialisation. (b) η times the sharpness of the minimum reached by the "
        "converged runs, against the infinite-width prediction of the exact "
        "reduction of GD to (μ, z) = (ηλ, η²c²f²), drawn where it is a smooth function of "
        f"η λ₀ (up to {SMOOTH}; beyond, the catapult bounces chaotically and its end "
        "point depends on the initial output); the dashed horizontal line is S = 2/η.")
    text = (
        f"Over {numbers['runs']} runs ({len(widths)} widths from {widths[0]} to "
        f"{widths[-1]}, {int(r['steps'])} steps each), "
        f"{100 * frac['lazy_below_2']:.0f}% of the runs with η λ₀ < 2 converged without "
        f"a loss spike (lazy), {100 * frac['catapult_between']:.0f}% of those with "
        f"2 < η λ₀ < 4 converged after a spike of the loss (the catapult), and "
        f"{100 * frac['diverged_above_4']:.0f}% of those with η λ₀ > 4 diverged. "
        + (f"Every catapult ends at a minimum with η S < 2 (largest η S measured: "
           f"{max_final:.3f}): the run is thrown out of the sharp region and lands where "
           f"GD is stable. " if max_final < 2 else
           f"Some catapults end at η S = {max_final:.3f} ≥ 2. ")
        + f"For 2 < η λ₀ ≤ {SMOOTH} the widest network's η S (a dimensionless number) "
        f"ends within {gap:.3f} of the infinite-width prediction. "
        f"The exact (f, λ) map predicts the outcome of "
        f"{100 * frac['agree']:.1f}% of the runs (lazy, catapult or divergent, run by "
        f"run; it follows the same iterates in two variables instead of 2n).")
    return Section(file=rel, caption=caption, text=text, numbers=numbers)
