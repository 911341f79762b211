"""Figure 2: a step-size drop sends GD back to progressive sharpening, up to the new 2/eta."""

from __future__ import annotations

import numpy as np

from paper import style
from paper.build import Context, Section
from paper.cache import SECONDS, Job
from paper.edge_stats import BAND, edge_summary
from paper.make import _network as nw
from paper.make import fig01_sharpening as fig01
from paper.runs import TRACKING, describe_network, network_job

NAME = "drop"
NUMBER = 2
TITLE = "A step-size drop"


#: The step-size drops of the figure: ``eta`` divided by these factors at ``drop_step``.
FACTORS = (1.6, 2.0)


def configs(quick: bool) -> list:
    """One run per factor of :data:`FACTORS`, each with its unchanged twin."""
    from validation.experiment import Config

    if quick:
        base = {"n": 100, "width": 16, "steps": 120, "drop_step": 60, "track_every": 10}
    else:
        base = {"n": 1000, "width": 64, "steps": 1000, "drop_step": 300, "track_every": 5}
    return [Config(eta=fig01.reference_eta(quick), drop_factor=f, checks=("edge", "drop"),
                   **base) for f in FACTORS]


#: How many times longer the run with the largest drop is continued (panel c), to see
#: whether its re-sharpening reaches the new edge or stalls.
LONG = 2.5


def long_config(quick: bool):
    """The run with the largest factor of :data:`FACTORS`, :data:`LONG` times as many steps."""
    import dataclasses

    c = configs(quick)[-1]
    return dataclasses.replace(c, steps=int(LONG * c.steps))


def jobs(quick: bool) -> list[Job]:
    c = long_config(quick)
    return [fig01.reference_job(quick)] + [
        network_job(c, label=f"MNIST-1D, step-size drop by {c.drop_factor:g}")
        for c in configs(quick)] + [
        network_job(c, label=f"MNIST-1D, step-size drop by {c.drop_factor:g}, {c.steps} steps")]


def make(ctx: Context) -> Section:
    cfgs = configs(ctx.quick)
    ref, *results, long = (ctx.result(j) for j in jobs(ctx.quick))
    c0 = cfgs[0]
    fig, (ax1, ax2, ax3) = style.figure(3, width=16.0, height=4.2)
    # GD at every step size in shades of GD's colour, light to dark as eta grows.
    *lighter, darkest = style.shades(style.GD, len(cfgs) + 1)
    nw.loss_curve(ax1, ref, "main", color=darkest, label=f"η = {c0.eta:g} throughout")
    nw.sharpness_curve(ax2, ref, "main", color=darkest, label=f"η = {c0.eta:g} throughout",
                       edge_label=f"2/{c0.eta:g}")
    drops = []
    for c, r, color in zip(cfgs, results, lighter[::-1], strict=True):
        eta_new = r["drop.eta"]
        label = f"η = {c.eta:g}/{c.drop_factor:g} = {eta_new:g} from step {c.drop_step}"
        nw.loss_curve(ax1, r, "drop", color=color, label=label)
        nw.sharpness_curve(ax2, r, "drop", color=color, label=label,
                           edge_label=f"2/{eta_new:g}")
        td, sd = r["drop.sharpness_t"], r["drop.sharpness"]
        e = edge_summary(td, sd, r["drop.edge"], end=c.steps, after=c.drop_step,
                         loss=r["drop.loss"], loss_start=c.drop_step)
        third = td >= c.drop_step + 2 * (c.steps - c.drop_step) // 3
        slope = float(np.polyfit(td[third], sd[third], 1)[0]) if third.sum() > 1 \
            else float("nan")
        drops.append({"factor": c.drop_factor, "eta_new": eta_new,
                      "s_at_drop": float(sd[0]), "s_min_after_drop": float(sd.min()),
                      "s_end": float(sd[-1]), "slope_last_third": slope,
                      "gap_closed": float((sd[-1] - sd[0]) / (e["edge"] - sd[0])),
                      "diverged_at": int(r["drop.diverged_at"])} | e)
    c_long = long_config(ctx.quick)
    nw.sharpness_curve(ax3, long, "main", color=darkest, label="", edge_label=f"2/{c0.eta:g}")
    nw.sharpness_curve(ax3, long, "drop", color=lighter[0], label="",
                       edge_label=f"2/{long['drop.eta']:g}")
    ax3.axvline(c0.steps, color="0.5", lw=0.8, ls="--")
    ax3.text(c0.steps, 0.02, " end of (a, b)", transform=ax3.get_xaxis_transform(),
             color="0.4", fontsize=8.5, va="bottom")
    for ax in (ax1, ax2, ax3):
        ax.axvline(c0.drop_step, color="0.5", lw=0.8, ls=":")
    nw.style_loss_axes(ax1)
    ax1.set_title("Training loss")
    fig.legend(*ax1.get_legend_handles_labels(), loc="outside lower center",
               ncol=len(cfgs) + 1)
    style.panel_label(ax1, "a")
    nw.style_sharpness_axes(ax2)
    ax2.set_title(f"Sharpness (dotted: the drop at step {c0.drop_step})")
    style.panel_label(ax2, "b")
    nw.style_sharpness_axes(ax3)
    ax3.set_title(f"The drop by {c_long.drop_factor:g}, continued to {c_long.steps} steps")
    style.panel_label(ax3, "c")
    path, rel = ctx.figure_path(NUMBER, NAME)
    style.save(fig, path)

    # The drop runs branch from their own copy of the run at eta: it must be Figure 1's.
    same = all(np.array_equal(ref["main.loss"], r["main.loss"]) for r in results)
    before = edge_summary(ref["main.sharpness_t"], ref["main.sharpness"], ref["main.edge"],
                          end=c0.drop_step)
    numbers = {"eta": c0.eta, "edge": ref["main.edge"], "drop_step": c0.drop_step,
               "steps": c0.steps, "same_as_figure_1": same, "onset": before["onset"],
               "s_end_main": float(ref["main.sharpness"][-1]), "drops": drops}
    caption = (
        f"GD on {describe_network(c0)} with η = {c0.eta:g}, and the same run continued from "
        f"step {c0.drop_step} with η divided by "
        + " or by ".join(f"{c.drop_factor:g}" for c in cfgs)
        + f". (a) Training loss; (b) sharpness with each run's 2/η dashed; (c) the runs with "
        f"η = {c0.eta:g} and with the drop by {c_long.drop_factor:g}, continued to "
        f"{c_long.steps} steps (a second run of the same configuration with more steps).")
    first = (f"The run at η = {c0.eta:g} is Figure 1's"
             + (" (the drop runs branch from copies of it whose losses equal it step for "
                "step)" if same else " (the copies the drop runs branch from differ from it)")
             + (f": its sharpness reached 2/η = {ref['main.edge']:.2f} at step "
                f"{before['onset']}, before the drop" if before["onset"] is not None else
                f": its sharpness had not reached 2/η = {ref['main.edge']:.2f} by the drop")
             + f" (final sharpness {numbers['s_end_main']:.2f}). ")
    parts = []
    for d in drops:
        head = (f"After the drop by {d['factor']:g} (to η = {d['eta_new']:g}, new 2/η = "
                f"{d['edge']:.2f}) GD was stable again and the sharpness, {d['s_at_drop']:.2f} "
                f"at the drop,")
        if d["onset"] is None:
            parts.append(
                f"{head} {'rose' if d['s_end'] > d['s_at_drop'] else 'fell'} to "
                f"{d['s_end']:.2f} by step {c0.steps} without reaching it: "
                f"{100 * d['gap_closed']:.0f}% of the way to the new edge in "
                f"{c0.steps - c0.drop_step} steps, at {100 * d['slope_last_third']:.2f} per "
                f"100 steps over the last third.")
        else:
            back = (f"was back at the edge at step {d['settle']}" if d["settle"] is not None
                    else "stayed above it to the end")
            parts.append(
                f"{head} reached it at step {d['onset']} ({d['onset'] - c0.drop_step} steps "
                f"after the drop), overshot to {d['overshoot']:.2f} times it at step "
                f"{d['peak_at']} and {back}; over the last two thirds of the time after "
                f"onset it averaged {d['plateau']:.2f} ({100 * d['plateau_rel']:+.1f}% from "
                f"2/η), with {100 * d['within']:.0f}% of the tracked steps of that window "
                f"within ±{100 * BAND:g}% ({100 * d['within_after_onset']:.0f}% of all "
                f"tracked steps after onset, catapult included).")
    text = first + " ".join(parts)
    failed = [d for d in drops if d["onset"] is None]
    if failed and len(failed) < len(drops):
        gaps = "; ".join(f"by {d['factor']:g}: {d['edge'] - d['s_at_drop']:.2f} to close, "
                         + (f"closed in {d['onset'] - c0.drop_step} steps"
                            if d["onset"] is not None else
                            f"{100 * d['gap_closed']:.0f}% closed in "
                            f"{c0.steps - c0.drop_step} steps")
                         for d in drops)
        text += (f" Within {c0.steps} steps the sharpness reaches the new edge after the drop"
                 f"{'s' if len(drops) - len(failed) > 1 else ''} by "
                 + ", ".join(f"{d['factor']:g}" for d in drops if d["onset"] is not None)
                 + " but not after the drop"
                 + ("s" if len(failed) > 1 else "") + " by "
                 + ", ".join(f"{d['factor']:g}" for d in failed)
                 + f": the gap from the sharpness at the drop to the new 2/η grows with the "
                 f"factor ({gaps}).")
    numbers["long"] = long_drop(ctx, long, results[-1])
    text += " " + _describe_long(numbers["long"], c0.steps)
    numbers["spikes"] = spikes(long, "main", after=c0.steps)
    if numbers["spikes"]:
        sp = numbers["spikes"]
        text += (
            f" The run at η = {c0.eta:g}, continued as well, shows {len(sp)} isolated "
            f"tracked sample{'s' if len(sp) > 1 else ''} after step {c0.steps}: "
            + ", ".join(f"{x['value']:.2f} at step {x['t']}" for x in sp)
            + f", against neighbours of {min(x['neighbours'] for x in sp):.2f}–"
            f"{max(x['neighbours'] for x in sp):.2f}. "
            + (f"Each is a cold restart of the tracker, and the loss moves by at most "
               f"{100 * max(x['loss_change'] for x in sp):.2f}% per step around them, while "
               f"a curvature of {min(x['value'] for x in sp):.2f} (over "
               f"{min(x['value'] for x in sp) / long['main.edge']:.1f} times 2/η) would "
               f"multiply GD's displacement along its eigenvector by |1 − ηS| ≥ "
               f"{abs(1 - c0.eta * min(x['value'] for x in sp)):.1f} per step: we read them "
               f"as errors of the tracker's estimate, not as the sharpness of the iterates."
               if all(x["cold_restart"] for x in sp) else
               f"The loss moves by at most {100 * max(x['loss_change'] for x in sp):.2f}% "
               f"per step around them."))
    return Section(file=rel, caption=caption, text=text, numbers=numbers)


#: A tracked sample more than this factor above both its neighbours is isolated.
SPIKE = 1.5


def spikes(r: dict, run: str, *, after: int = 0) -> list[dict]:
    """Tracked samples of ``run`` after step ``after`` more than :data:`SPIKE` times both
    neighbours: the step, the value, the larger neighbour, whether the tracker restarted
    cold there (every ``refresh_every``-th estimate of :data:`paper.runs.TRACKING`), and
    the largest relative change of the loss per step within a tracking interval of it."""
    t, s = r[f"{run}.sharpness_t"], r[f"{run}.sharpness"]
    loss, start = r[f"{run}.loss"], int(r[f"{run}.start"])
    every = int(t[1] - t[0]) if len(t) > 1 else 1
    out = []
    for i in range(1, len(t) - 1):
        near = max(s[i - 1], s[i + 1])
        if t[i] > after and s[i] > SPIKE * near:
            lo, hi = max(t[i] - every - start, 0), min(t[i] + every - start + 1, len(loss))
            seg = loss[lo:hi]
            out.append({"t": int(t[i]), "value": float(s[i]), "neighbours": float(near),
                        "cold_restart": i % TRACKING["refresh_every"] == 0,
                        "loss_change": float(np.max(np.abs(np.diff(seg)) / seg[:-1]))})
    return out


def long_drop(ctx: Context, long: dict, short: dict) -> dict:
    """:func:`paper.edge_stats.edge_summary` of the drop run of :func:`long_config`, and
    whether it equals the shorter run ``short`` over the shorter run's steps."""
    c = long_config(ctx.quick)
    n = len(short["drop.loss"])
    same = (np.array_equal(short["drop.loss"], long["drop.loss"][:n])
            and np.array_equal(short["drop.sharpness"],
                               long["drop.sharpness"][:len(short["drop.sharpness"])]))
    e = edge_summary(long["drop.sharpness_t"], long["drop.sharpness"], long["drop.edge"],
                     end=c.steps, after=c.drop_step, loss=long["drop.loss"],
                     loss_start=c.drop_step)
    return {"steps": c.steps, "factor": c.drop_factor, "drop_step": c.drop_step,
            "same_as_short": bool(same), "s_end": float(long["drop.sharpness"][-1]),
            "diverged_at": int(long["drop.diverged_at"]),
            "seconds": float(long[SECONDS] or 0.0)} | e


def _describe_long(d: dict, short_steps: int) -> str:
    head = (f"Continued to {d['steps']} steps (panel c; a second run of the same "
            f"configuration, "
            + ("equal to the first step for step over its " if d["same_as_short"] else
               "which differs from the first within its ")
            + f"{short_steps} steps), the sharpness after the drop by {d['factor']:g}")
    if d["onset"] is None:
        return (head + f" still does not reach the new 2/η = {d['edge']:.2f}: it ends at "
                f"{d['s_end']:.2f}, so re-sharpening stalls below the new edge.")
    back = (f"is back at the edge at step {d['settle']}" if d["settle"] is not None
            else "stays above it to the end")
    return (head + f" reaches the new 2/η = {d['edge']:.2f} at step {d['onset']} "
            f"({d['onset'] - d['drop_step']} steps after the drop), overshoots to "
            f"{d['overshoot']:.2f} times it at step {d['peak_at']} and {back}; over the last "
            f"two thirds of the time after onset it averages {d['plateau']:.2f} "
            f"({100 * d['plateau_rel']:+.1f}% from 2/η), with {100 * d['within']:.0f}% of "
            f"the tracked steps of that window within ±{100 * BAND:g}% "
            f"({100 * d['within_after_onset']:.0f}% of all tracked steps after onset)."
            + (f" Re-sharpening after the drop by {d['factor']:g} is slower, not stalled: it "
               f"reaches the edge {d['onset'] - short_steps} steps after the end of panels "
               f"(a, b)." if d["onset"] > short_steps else ""))
