"""Figure 1: progressive sharpening and the edge of stability on MNIST-1D, several step sizes."""

from __future__ import annotations

from itertools import pairwise

from paper import style
from paper.build import Context, Section
from paper.cache import Job
from paper.edge_stats import BAND, edge_summary, span, summary_table
from paper.make import _network as nw
from paper.runs import TRACKING, describe_network, network_job

NAME = "sharpening"
NUMBER = 1
TITLE = "Progressive sharpening and the edge of stability on a real network"


def configs(quick: bool) -> list:
    from validation.experiment import Config

    if quick:
        base = {"n": 100, "width": 16, "steps": 120, "track_every": 10}
        etas = (0.3, 0.5)
    else:
        base = {"n": 1000, "width": 64, "steps": 1000, "track_every": 5}
        etas = (0.25, 0.3, 0.35, 0.4)
    return [Config(eta=eta, checks=("edge",), **base) for eta in etas]


def reference_eta(quick: bool) -> float:
    """The step size of the GD run that Figures 2 and 3 quote (this figure's largest)."""
    return configs(quick)[-1].eta


def jobs(quick: bool) -> list[Job]:
    return [network_job(c, label=f"MNIST-1D, GD eta={c.eta}") for c in configs(quick)]


def reference_job(quick: bool) -> Job:
    """The job of the GD run at :func:`reference_eta`."""
    return jobs(quick)[-1]


def summaries(ctx: Context) -> list[dict]:
    """:func:`paper.edge_stats.edge_summary` of every run (with its loss), in order of η."""
    out = []
    for c, job in zip(configs(ctx.quick), jobs(ctx.quick), strict=True):
        r = ctx.result(job)
        out.append(edge_summary(r["main.sharpness_t"], r["main.sharpness"], r["main.edge"],
                                end=c.steps, loss=r["main.loss"]))
    return out


def make(ctx: Context) -> Section:
    cfgs = configs(ctx.quick)
    results = [ctx.result(j) for j in jobs(ctx.quick)]
    fig, (ax1, ax2) = style.figure(2, width=11.0, height=4.0)
    rows = []
    colors = style.shades(style.GD, len(cfgs))
    for c, r, e, color in zip(cfgs, results, summaries(ctx), colors, strict=True):
        nw.loss_curve(ax1, r, "main", color=color, label=f"η = {c.eta:g}")
        nw.sharpness_curve(ax2, r, "main", color=color, label=f"η = {c.eta:g}",
                           edge_label=f"2/{c.eta:g}")
        if e["onset"] is not None:
            ax2.plot([e["peak_at"]], [e["peak"]], marker="v", color=color, ms=5, ls="none")
        loss = r["main.loss"]
        rises = loss[1:] > loss[:-1]
        onset = e["onset"]
        up = float(rises[onset:].mean()) if onset is not None and onset < len(rises) \
            else float("nan")
        t, s = r["main.sharpness_t"], r["main.sharpness"]
        # The dip after the first catapult, before the plateau window.
        gap = (t >= e["settle"]) & (t < e["window"]) if e["after_transient"] else t < 0
        dip = float(s[gap].min() / e["edge"]) if gap.any() else float("nan")
        rows.append({"eta": c.eta, "s0": float(s[0]), "dip": dip,
                     "loss_rises_after_onset": up, "loss_end": float(loss[-1]),
                     "diverged_at": int(r["main.diverged_at"])} | e)
    nw.style_loss_axes(ax1)
    ax1.set_title("Training loss")
    fig.legend(*ax1.get_legend_handles_labels(), loc="outside lower center",
               ncol=len(cfgs))
    style.panel_label(ax1, "a")
    nw.style_sharpness_axes(ax2)
    ax2.set_title("Sharpness (dashed: 2/η; ▼ catapult peak)")
    style.panel_label(ax2, "b")
    path, rel = ctx.figure_path(NUMBER, NAME)
    style.save(fig, path)

    steps = cfgs[0].steps
    reached = [row for row in rows if row["onset"] is not None]
    caption = (
        f"Full-batch GD on {describe_network(cfgs[0])}, with {len(cfgs)} step sizes from "
        f"the same initialisation. (a) Training loss. (b) Sharpness, the top eigenvalue of "
        f"the Hessian estimated every {cfgs[0].track_every} steps by LOBPCG on "
        f"Hessian-vector products ({TRACKING['track_vectors']} vectors warm-started from the "
        f"previous estimate, and a cold Lanczos start every {TRACKING['refresh_every']} "
        f"estimates), with each run's 2/η dashed in its colour and the peak of its first "
        f"crossing marked.")
    order = sorted(reached, key=lambda row: -row["eta"])
    later = len(order) > 1 and all(a["onset"] <= b["onset"] for a, b in pairwise(order))
    ups = [row["loss_rises_after_onset"] for row in reached]
    table = summary_table([(f"GD, η = {row['eta']:g}", row) for row in rows])
    text = (
        f"The sharpness rises while it is below 2/η (progressive sharpening), from "
        f"{rows[0]['s0']:.2f} at initialisation; {len(reached)} of {len(rows)} runs reached "
        f"their edge within {steps} steps"
        + (", the smaller step sizes later, at their higher 2/η" if later else "") + ". ")
    if reached:
        over = [row["overshoot"] for row in reached]
        spikes = [row["loss_spike"] for row in reached]
        above = sum(x > 1 for x in spikes)
        ended = [row for row in reached if row["after_transient"]]
        within = [row["within"] for row in reached]
        within_all = [row["within_after_onset"] for row in reached]
        dips = [row["dip"] for row in reached if row["dip"] == row["dip"]]
        offsets = [row["plateau_rel"] for row in reached]
        text += (
            f"The first crossing is a catapult, not a gentle arrival: the sharpness "
            f"overshoots to {span(over)} times 2/η before it is pulled "
            f"back to the edge, and during this excursion the loss peaks at "
            f"{span(spikes)} times its initial value ({above} of "
            f"{len(reached)} runs above it)."
            + (f" The sharpness is thrown below the edge, to {span(dips)} times 2/η, and "
               f"sharpens again, crossing the edge in further catapults (panel "
               f"b)." if dips else "")
            + f" In {len(ended)} of {len(reached)} runs the first "
            f"catapult has ended before the plateau window, the last two thirds of the time "
            f"after onset; over that window the sharpness averages "
            f"{100 * min(offsets):+.1f}% to {100 * max(offsets):+.1f}% from 2/η, and "
            f"{span(within, '.0f', 100)}% of its tracked steps lie within "
            f"±{100 * BAND:g}% of 2/η. Counted over every tracked step after the onset, "
            f"catapult included, the fraction within ±{100 * BAND:g}% is "
            f"{span(within_all, '.0f', 100)}% (last column):\n\n"
            + table + "\n\n")
    text += (f"The loss decreases over the long run (from {rows[0]['loss_start_value']:.3f} "
             f"to between {min(r['loss_end'] for r in rows):.3f} and "
             f"{max(r['loss_end'] for r in rows):.3f})"
             + (f" but not monotonically: after the onset it rose at {span(ups, '.0f', 100)}% "
                "of the steps" if ups else "") + ".")
    return Section(file=rel, caption=caption, text=text, numbers={"runs": rows})
