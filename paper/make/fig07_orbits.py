"""Figure 7: orbit (bifurcation) diagrams of scalar networks with the period-2 prediction."""

from __future__ import annotations

import numpy as np

from paper import style
from paper.build import Context, Section
from paper.cache import Job

NAME = "orbits"
NUMBER = 7
TITLE = "Orbit diagrams of scalar networks and the predicted period-2 orbits"


def jobs(quick: bool) -> list[Job]:
    cases = [{"depth": 2, "eta": [0.85, 1.42]}, {"depth": 3, "eta": [0.58, 0.98]}]
    if quick:
        config = {"cases": cases, "etas": 150, "transient": 600, "keep": 48, "predicted": 12}
    else:
        config = {"cases": cases, "etas": 1500, "transient": 3000, "keep": 200,
                  "predicted": 80}
    return [Job("orbits", config, compute, version=3, cost=1.0, label="orbit diagrams")]


def compute(config: dict) -> dict:
    """Orbit diagrams of ``L = (w_1 ... w_D - 1)^2 / 2`` from a balanced start, with the
    period-2 orbits derived symbolically on the balanced line
    (:func:`minimal_eos.scalar_theory.scalar_period_two`) and their stability."""
    from analysis import orbit_diagram
    from minimal_eos import ScalarNetwork
    from minimal_eos.scalar_theory import balanced_loss, chen_bruna_condition, scalar_period_two

    out: dict = {"depths": [c["depth"] for c in config["cases"]]}
    for case in config["cases"]:
        d = case["depth"]
        net = ScalarNetwork(depth=d)
        s_star = net.sharpness(np.ones(d))
        w_sym, phi = balanced_loss(net)
        condition = float(chen_bruna_condition(phi, w_sym, 1))
        etas = np.linspace(*case["eta"], config["etas"])
        diag = orbit_diagram(net, etas, np.full(d, 1.05), transient=config["transient"],
                             keep=config["keep"])
        vals = np.ma.filled(diag.values(0), np.nan)
        # period-2 orbits born at the flip eta = 2 / S*, at a subset of the diagram's
        # step sizes (both points near the minimum)
        above = np.where(etas > 2.0 / s_star)[0]
        idx = above[np.unique(np.linspace(0, len(above) - 1, config["predicted"]).round()
                              .astype(int))]
        pe = etas[idx]
        lo, hi, stable = (np.full(len(pe), np.nan) for _ in range(3))
        errors = []
        for i, (j, e) in enumerate(zip(idx, pe, strict=True)):
            near = [o for o in scalar_period_two(net, float(e)) if o.points[:, 0].min() > 0]
            if not near:
                continue
            o = min(near, key=lambda o: abs(o.points[:, 0].mean() - 1.0))
            lo[i], hi[i] = sorted(o.points[:, 0])
            stable[i] = float(o.stable)
            if diag.period[j] == 2:
                v = vals[j][np.isfinite(vals[j])]
                err = float(np.max(np.minimum(np.abs(v - lo[i]), np.abs(v - hi[i]))))
                errors.append((float(e), err, float(np.max(np.abs(o.multipliers)))))
        out.update({
            f"d{d}.etas": etas, f"d{d}.values": vals, f"d{d}.period": diag.period,
            f"d{d}.s_star": float(s_star), f"d{d}.condition": condition,
            f"d{d}.pred_eta": pe, f"d{d}.pred_lo": lo,
            f"d{d}.pred_hi": hi, f"d{d}.pred_stable": stable,
            f"d{d}.p2_errors": np.array(errors).reshape(-1, 3),
        })
    return out


def _errors(rows: np.ndarray) -> dict:
    """Median and largest gap between measured and predicted period-2 points, where the
    largest one sits and the predicted orbit's largest multiplier modulus there."""
    if not len(rows):
        return {"p2_compared": 0, "p2_error_median": float("nan"),
                "p2_error": float("nan"), "p2_error_eta": float("nan"),
                "p2_error_multiplier": float("nan")}
    k = int(np.argmax(rows[:, 1]))
    return {"p2_compared": len(rows), "p2_error_median": float(np.median(rows[:, 1])),
            "p2_error": float(rows[k, 1]), "p2_error_eta": float(rows[k, 0]),
            "p2_error_multiplier": float(rows[k, 2])}


def make(ctx: Context) -> Section:
    r = ctx.result(jobs(ctx.quick)[0])
    depths = r["depths"]
    fig, axes = style.figure(len(depths), width=11.0, height=4.2)
    numbers = {}
    for ax, d, letter in zip(axes, depths, "ab", strict=False):
        etas, vals = r[f"d{d}.etas"], r[f"d{d}.values"]
        keep = vals.shape[1]
        xs = np.repeat(etas, keep)
        ys = vals.ravel()
        ok = np.isfinite(ys)
        ax.scatter(xs[ok], ys[ok], s=0.15, c="k", alpha=0.5, linewidths=0, rasterized=True)
        pe, lo, hi, st = (r[f"d{d}.{k}"] for k in ("pred_eta", "pred_lo", "pred_hi",
                                                    "pred_stable"))
        for branch in (lo, hi):
            stab = np.where(st == 1.0, branch, np.nan)
            unst = np.where(st == 0.0, branch, np.nan)
            ax.plot(pe, stab, color=style.PREDICTION, lw=1.6, label="predicted period 2, stable"
                    if branch is lo else None)
            ax.plot(pe, unst, color=style.PREDICTION, lw=1.2, ls=":",
                    label="predicted period 2, unstable" if branch is lo else None)
        s_star = r[f"d{d}.s_star"]
        ax.plot([etas[0], 2 / s_star], [1, 1], color=style.FLOW, lw=1.6, ls="--",
                label="minimum w = (1, …, 1), stable below 2/S*")
        ax.plot(pe, lo, ".", color=style.PREDICTION, ms=2.5)
        ax.plot(pe, hi, ".", color=style.PREDICTION, ms=2.5)
        style.edge_vline(ax, 2 / s_star, label=f"η = 2/S* = {2 / s_star:.3g}")
        ax.set_xlabel(style.LABELS["eta"])
        ax.set_ylabel("w₁ after the transient  [parameter value]")
        product = " ".join(f"w{chr(0x2080 + i + 1)}" for i in range(d))
        ax.set_title(f"depth {d}:  L = ({product} − 1)² / 2")
        ax.set_xlim(etas[0], etas[-1])
        style.panel_label(ax, letter)
        unstable = np.where(st == 0.0)[0]
        numbers[f"depth{d}"] = {
            "s_star": s_star, "flip_eta": 2 / s_star, "condition": r[f"d{d}.condition"],
            "p2_runs": int(np.sum(r[f"d{d}.period"] == 2)),
            **_errors(r[f"d{d}.p2_errors"]),
            "p2_lost_eta": float(pe[unstable[0]]) if len(unstable) else None,
            "p2_stable_last": float(pe[unstable[0] - 1]) if len(unstable) and unstable[0] > 0
            else None,
            "p4_first_eta": float(etas[np.argmax(r[f"d{d}.period"] == 4)])
            if np.any(r[f"d{d}.period"] == 4) else None,
        }
    axes[0].legend(loc="lower left", markerscale=8)
    path, rel = ctx.figure_path(NUMBER, NAME)
    style.save(fig, path)
    n2, n3 = numbers["depth2"], numbers["depth3"]
    caption = (
        "GD on the scalar networks L = (w₁⋯w_D − 1)²/2 of depth 2 (a) and 3 (b), started "
        "near the balanced minimum w = (1, …, 1) and continued from one step size to the "
        "next. Black: the iterates kept after the transient (the attractor). Red: the "
        "period-2 orbits derived symbolically on the balanced line (roots of "
        "(F(F(w)) − w)/(F(w) − w) for GD on φ(w) = L(w, …, w)/D), solid where both of "
        "their multipliers are inside the unit circle, dotted where not. Orange dashed: "
        "the minimum itself, a fixed point, stable below its flip. The dashed vertical "
        "line is the flip η = 2/S* of the minimum.")
    lost = ""
    if n2["p2_stable_last"] and n2["p4_first_eta"]:
        lost = (f"; for depth 2 the predicted orbit is stable at η = "
                f"{n2['p2_stable_last']:.3f} and unstable at the next evaluated step size, "
                f"η = {n2['p2_lost_eta']:.3f}, and GD is first found on a period-4 orbit at "
                f"η = {n2['p4_first_eta']:.3f}")
    text = (
        f"The minimum loses stability exactly at η = 2/S*: S* = {n2['s_star']:.3g} for depth 2 "
        f"and {n3['s_star']:.3g} for depth 3. Above it GD settles on the predicted period-2 "
        f"orbit: Chen & Bruna's third-order condition 3φ‴² − φ″φ⁗ at the minimum of φ is "
        f"{n2['condition']:.3g} and {n3['condition']:.3g}, positive, so the flip is "
        f"supercritical{lost}. GD was detected on a period-2 orbit at {n2['p2_runs']} "
        f"(depth 2) and {n3['p2_runs']} (depth 3) of the step sizes; at the "
        f"{n2['p2_compared']} and {n3['p2_compared']} of them where the prediction was "
        f"evaluated (red dots), the median distance between a measured point and the "
        f"predicted orbit is {n2['p2_error_median']:.1e} and {n3['p2_error_median']:.1e}; "
        f"the largest, {n2['p2_error']:.1e} and {n3['p2_error']:.1e}, are at η = "
        f"{n2['p2_error_eta']:.3f} and {n3['p2_error_eta']:.3f}, where the orbit's largest "
        f"multiplier has modulus {n2['p2_error_multiplier']:.3f} and "
        f"{n3['p2_error_multiplier']:.3f}"
        + (" (close to 1: GD approaches the orbit slowly and is still on its way after the "
           "transient)." if max(n2["p2_error"], n3["p2_error"]) > 1e-6 else "."))
    return Section(file=rel, caption=caption, text=text, numbers=numbers)
