"""Figure 3: momentum moves the plateau to the optimizer's own critical sharpness."""

from __future__ import annotations

from paper import last_sample, style
from paper.build import Context, Section
from paper.cache import Job
from paper.edge_stats import BAND, edge_summary, summary_table
from paper.last_sample import last_sample_job
from paper.make import _network as nw
from paper.make import fig01_sharpening as fig01
from paper.runs import describe_network, network_job

NAME = "momentum"
NUMBER = 3
TITLE = "Momentum plateaus at its own critical sharpness"


#: Heavy ball's momentum parameters, at GD's step size.
HEAVY_BALL_BETAS = (0.5, 0.9)


def configs(quick: bool) -> tuple:
    """(heavy ball at each of :data:`HEAVY_BALL_BETAS`, Nesterov); GD is Figure 1's run."""
    from validation.experiment import Config

    if quick:
        base = {"n": 100, "width": 16, "steps": 120, "track_every": 10}
    else:
        base = {"n": 1000, "width": 64, "steps": 1000, "track_every": 5}
    eta = fig01.reference_eta(quick)
    heavy = tuple(Config(eta=eta, optimizer="heavy_ball", beta=b, checks=("edge",), **base)
                  for b in HEAVY_BALL_BETAS)
    return heavy, Config(eta=eta / 2, optimizer="nesterov", beta=0.9, checks=("edge",),
                         **base)


def jobs(quick: bool) -> list[Job]:
    heavy, nest = configs(quick)
    return ([fig01.reference_job(quick)]
            + [network_job(c, label=f"MNIST-1D, heavy ball beta={c.beta:g}") for c in heavy]
            + [network_job(nest, label="MNIST-1D, Nesterov")] + last_sample_jobs(quick))


def last_sample_jobs(quick: bool) -> list[Job]:
    """The cold check of the last tracked samples of panel (a)'s runs and Nesterov's."""
    heavy, nest = configs(quick)
    runs = [fig01.configs(quick)[-1], *heavy, nest]
    return [last_sample_job(c, label=f"last sample, {c.optimizer} beta={c.beta:g}")
            for c in runs]


def make(ctx: Context) -> Section:
    heavy, c_nest = configs(ctx.quick)
    r_gd, *r_heavy, r_nest = (ctx.result(j) for j in jobs(ctx.quick)[:len(heavy) + 2])
    eta = fig01.reference_eta(ctx.quick)
    steps = c_nest.steps
    last = [last_sample.summary(ctx.result(j)) for j in last_sample_jobs(ctx.quick)]
    fig, (ax1, ax2) = style.figure(2, width=11.0, height=4.3)
    runs = [("GD", r_gd, style.GD, "2/η")]
    colors = style.shades(style.HEAVY_BALL, len(heavy))
    for c, r, color in zip(heavy, r_heavy, colors, strict=True):
        runs.append((f"heavy ball, β = {c.beta:g}", r, color, f"2(1+{c.beta:g})/η"))
    for (name, r, color, edge_label), s in zip(runs, last[:len(runs)], strict=True):
        nw.sharpness_curve(ax1, r, "main", color=color, label=f"{name}, η = {eta:g}",
                           edge_label=edge_label)
        ax1.plot([s["t_last"]], [s["cold_last"]], marker="x", color=color, ms=7, ls="none")
    nw.style_sharpness_axes(ax1)
    ax1.set_title("Same step size, with and without momentum")
    ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(runs))
    style.panel_label(ax1, "a")
    nw.sharpness_curve(ax2, r_nest, "main", color=style.NESTEROV,
                       label=f"Nesterov, β = {c_nest.beta:g}, η = {c_nest.eta:g}",
                       edge_label="(2+2β)/((1+2β)η)")
    ax2.plot([last[-1]["t_last"]], [last[-1]["cold_last"]], marker="x", color=style.NESTEROV,
             ms=7, ls="none")
    style.edge_line(ax2, 2 / c_nest.eta, label="2/η (GD's edge)", color="0.6", ls=":")
    nw.style_sharpness_axes(ax2)
    ax2.set_title("Nesterov's edge lies below GD's")
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2))
    style.panel_label(ax2, "b")
    path, rel = ctx.figure_path(NUMBER, NAME)
    style.save(fig, path)

    names = {"gd": "GD", "nesterov": "Nesterov"}
    summaries = [("gd", r_gd)] + [(f"heavy_ball_{c.beta:g}", r)
                                  for c, r in zip(heavy, r_heavy, strict=True)]
    summaries.append(("nesterov", r_nest))
    rows = {}
    for key, r in summaries:
        e = edge_summary(r["main.sharpness_t"], r["main.sharpness"], r["main.edge"],
                         end=steps, loss=r["main.loss"])
        rows[key] = {"optimizer": r["main.optimizer"], "beta": r["main.beta"],
                     "eta": r["main.eta"], "diverged_at": int(r["main.diverged_at"])} | e
        names.setdefault(key, f"heavy ball, β = {r['main.beta']:g}")
    caption = (
        f"{describe_network(heavy[0])}. (a) GD (Figure 1's η = {eta:g} run) and Polyak's "
        f"heavy ball (v ← βv − η∇L, w ← w + v) at β = "
        + " and ".join(f"{c.beta:g}" for c in heavy)
        + f" from the same initialisation and step size; (b) Nesterov's momentum "
        f"(β = {c_nest.beta:g}) from the same initialisation at its own step size "
        f"η = {c_nest.eta:g}. Dashed: each optimizer's critical sharpness on a quadratic, "
        "derived by the Schur–Cohn test in `minimal_eos.thresholds` (the momentum "
        "thresholds are those of Cohen et al., arXiv 2103.00065); ×: the sharpness at the "
        "last step estimated cold, by Lanczos from random starts.")
    table = summary_table([(f"{names[k]}, η = {row['eta']:g}", row)
                           for k, row in rows.items()])
    parts = []
    for key, row in rows.items():
        if row["onset"] is None:
            parts.append(f"{names[key]} did not reach its critical sharpness "
                         f"{row['edge']:.2f} within {steps} steps")
            continue
        parts.append(f"{names[key]} reached its critical sharpness {row['edge']:.2f} at step "
                     f"{row['onset']}, overshot to {row['overshoot']:.2f} times it, and "
                     f"then averaged {100 * row['plateau_rel']:+.1f}% from it")
    below = [k for k, row in rows.items() if row["plateau_rel"] < -BAND / 2]
    text = ("Each optimizer sharpens until its own critical sharpness, crosses it in a "
            "catapult and then hovers near it: " + "; ".join(parts)
            + " (plateaus over the last two thirds of the time after onset; the GD numbers "
            "are Figure 1's, from the same run and window).")
    if below:
        text += (" Not every plateau sits on the edge: "
                 + "; ".join(f"{names[k]} averaged {100 * -rows[k]['plateau_rel']:.1f}% "
                             f"below its edge, with {100 * rows[k]['within']:.0f}% of the "
                             f"tracked steps of the same window within ±{100 * BAND:g}% of "
                             f"it" for k in below) + ".")
    nest = rows["nesterov"]
    if nest["onset"] is not None:
        largest = all(nest["overshoot"] >= row["overshoot"] for row in rows.values()
                      if row["onset"] is not None)
        text += (f" Nesterov's catapult is {'the largest' if largest else 'not the largest'} "
                 f"of the {len(rows)} (peak {nest['peak']:.2f} at step {nest['peak_at']}, "
                 f"{100 * (nest['overshoot'] - 1):.0f}% above its edge; it ran at "
                 f"η = {c_nest.eta:g}, the others at η = {eta:g}, so this compares catapults "
                 f"at different step sizes), and its plateau stays "
                 f"{100 * nest['plateau_rel']:+.1f}% from its edge, "
                 f"{100 * (1 - nest['plateau'] / (2 / c_nest.eta)):.0f}% below 2/η = "
                 f"{2 / c_nest.eta:.2f}, the critical sharpness of GD at its η on a "
                 f"quadratic (no GD run at that η is shown).")
    step = nesterov_step_size(r_nest, eta, c_nest.eta, c_nest.beta)
    if step["edge_at_shared_eta"] < step["s0"]:
        text += (f" Nesterov runs at a smaller step size because at the others' η = {eta:g} "
                 f"(β = {c_nest.beta:g}) its critical sharpness, (2+2β)/((1+2β)η) = "
                 f"{step['edge_at_shared_eta']:.2f} from `minimal_eos.thresholds`, is below "
                 f"the network's initial sharpness {step['s0']:.2f} (the run's own value at "
                 f"step {step['s0_step']}): the run would start above its edge, with no "
                 f"sharpening phase to measure. At η = {c_nest.eta:g} it is "
                 f"{step['edge_at_own_eta']:.2f}, "
                 + ("above" if step["edge_at_own_eta"] > step["s0"] else "still not above")
                 + " the initial sharpness.")
    else:
        text += (f" At the others' η = {eta:g} Nesterov's critical sharpness would be "
                 f"{step['edge_at_shared_eta']:.2f}, above the initial sharpness "
                 f"{step['s0']:.2f}; it runs at η = {c_nest.eta:g} (critical sharpness "
                 f"{step['edge_at_own_eta']:.2f}).")
    text += ("\n\n" + table + "\n\nOn a quadratic, heavy ball's critical sharpness is (1+β) "
             "times GD's at the same η, and Nesterov's lies below 2/η.")
    text += (" The last tracked sample of each curve, checked by rerunning the run and "
             "estimating the sharpness cold at its last two tracked iterates: "
             + "; ".join(last_sample.describe(names[k], s)
                         for k, s in zip(rows, last, strict=True)) + ".")
    return Section(file=rel, caption=caption, text=text,
                   numbers=rows | {"nesterov_step_size": step, "last_sample": last})


def nesterov_step_size(r: dict, shared_eta: float, eta: float, beta: float) -> dict:
    """Nesterov's critical sharpness at the other runs' step size and at its own, derived
    by :func:`minimal_eos.thresholds.derive_all`, beside the initial sharpness ``s0`` of
    its run ``r`` (its first tracked value).

    On a quadratic of curvature ``a`` Nesterov's momentum is stable iff
    ``a < (2 + 2 beta) / ((1 + 2 beta) eta)``; a run whose ``s0`` is above that starts
    beyond its edge.
    """
    from minimal_eos.thresholds import derive_all

    threshold = derive_all(("nesterov",))["nesterov"]
    return {"s0": float(r["main.sharpness"][0]), "s0_step": int(r["main.sharpness_t"][0]),
            "shared_eta": shared_eta, "eta": eta, "beta": beta,
            "edge_at_shared_eta": threshold(eta=shared_eta, beta=beta),
            "edge_at_own_eta": threshold(eta=eta, beta=beta)}
