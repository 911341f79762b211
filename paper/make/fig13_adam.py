"""Figure 13: Adam's preconditioned sharpness hovers at its frozen-preconditioner threshold."""

from __future__ import annotations

import math
from statistics import median

import numpy as np

from paper import style
from paper.build import Context, Section
from paper.cache import Job
from paper.runs import describe_network, network_job

NAME = "adam"
NUMBER = 13
TITLE = "Adam: the preconditioned sharpness at its edge, the raw sharpness far below"


def config(quick: bool):
    """Full-batch Adam at ``eta = 1e-3`` (``beta1 = 0.9``, ``beta2 = 0.999``)."""
    from validation.experiment import Config

    if quick:
        return Config(optimizer="adam", n=100, width=16, eta=0.01, steps=120, track_every=10,
                      checks=("preconditioned-edge",))
    return Config(optimizer="adam", eta=1e-3, steps=600, track_every=5,
                  checks=("preconditioned-edge",))


def jobs(quick: bool) -> list[Job]:
    return [network_job(config(quick), label="MNIST-1D, Adam")]


def summary(r: dict) -> dict:
    """Onset, levels after it, and the rows of the check ``preconditioned-edge``
    (:func:`validation.predictions.preconditioned_edge_rows`)."""
    from validation.predictions import BAND, onset_step, preconditioned_edge_rows

    diverged = int(r["main.diverged_at"])
    t, s = r["main.sharpness_t"].tolist(), r["main.sharpness"].tolist()
    main = {"optimizer": r["main.optimizer"], "eta": r["main.eta"], "edge": r["main.edge"],
            "diverged_at": None if diverged < 0 else diverged,
            "sharpness": list(zip(t, s, strict=True))}
    pt, ps = r["adaptive.t"].astype(int).tolist(), r["adaptive.preconditioned"].tolist()
    res = {"runs": {"main": main}, "adaptive": {"t": pt, "preconditioned": ps}}
    rows = {row["name"]: row for row in preconditioned_edge_rows(res)}
    edge = main["edge"]
    onset = onset_step(list(zip(pt, ps, strict=True)), edge)
    post = [v for k, v in zip(pt, ps, strict=True) if onset is not None and k >= onset]
    raw = [v for k, v in zip(t, s, strict=True) if onset is not None and k >= onset]
    inside = [abs(v / edge - 1) <= BAND for v in post]
    return {"eta": main["eta"], "edge": edge, "onset": onset, "band": BAND,
            "diverged_at": main["diverged_at"],
            "preconditioned_first": ps[0] if ps else math.nan,
            "preconditioned_min_before": min((v for k, v in zip(pt, ps, strict=True)
                                              if onset is None or k < onset),
                                             default=math.nan),
            "preconditioned_median": float(median(post)) if post else math.nan,
            "preconditioned_range": [min(post), max(post)] if post else [],
            "inside_band": float(np.mean(inside)) if inside else math.nan,
            "tracked_after": len(post),
            "raw_first": s[0], "raw_last": s[-1],
            "raw_median": float(median(raw)) if raw else math.nan,
            "holds": {k: bool(v["holds"]) for k, v in rows.items()}}


def make(ctx: Context) -> Section:
    c = config(ctx.quick)
    r = ctx.result(jobs(ctx.quick)[0])
    row = summary(r)
    fig, (ax1, ax2) = style.figure(2, width=11.0, height=4.0)
    pt, ps = r["adaptive.t"], r["adaptive.preconditioned"]
    edge = row["edge"]
    ax1.plot(pt, ps, color=style.ADAM, label="preconditioned λmax(P⁻¹H)")
    ax1.plot(r["main.sharpness_t"], r["main.sharpness"], color="k", lw=1.0,
             label="raw sharpness λmax(H)")
    style.edge_line(ax1, edge, label="(2+2β₁)/((1−β₁)η)")
    style.edge_line(ax1, 2 / row["eta"], label="2/η", color="0.6", ls=":")
    style.log_y(ax1)
    ax1.set_xlabel("step t  [Adam updates]")
    ax1.set_ylabel("sharpness  [top eigenvalue, log scale]")
    ax1.set_title("Preconditioned and raw sharpness")
    ax1.legend(loc="center right")
    style.panel_label(ax1, "a")
    ax2.plot(pt, ps, color=style.ADAM, label="λmax(P⁻¹H)")
    ax2.axhspan(edge * (1 - row["band"]), edge * (1 + row["band"]), color="0.85", zorder=0,
                label=f"±{100 * row['band']:.0f}%")
    style.edge_line(ax2, edge, label=f"{edge:,.0f}")
    if row["onset"] is not None:
        ax2.axvline(row["onset"], color=style.ADAM, lw=0.8, ls=":")
    ax2.set_xlabel("step t  [Adam updates]")
    ax2.set_ylabel("preconditioned sharpness λmax(P⁻¹H)")
    ax2.set_title("Against the threshold, linear scale")
    ax2.legend(loc="lower right")
    style.panel_label(ax2, "b")
    path, rel = ctx.figure_path(NUMBER, NAME)
    style.save(fig, path)

    caption = (
        f"Full-batch Adam (β₁ = {c.beta1:g}, β₂ = {c.beta2:g}, ε = {c.eps:g}, bias "
        f"correction as in torch.optim.Adam) with η = {c.eta:g} on {describe_network(c)}, "
        f"{c.steps} steps. Every {c.track_every} steps: the preconditioned sharpness "
        f"λmax(P⁻¹H), P = diag(√v̂) + ε the current preconditioner, and the raw sharpness "
        f"λmax(H). Dashed: the threshold (2+2β₁)/((1−β₁)η) = {edge:,.0f} derived by "
        f"`minimal_eos.thresholds` from Adam's update map with P frozen (Cohen et al., "
        f"arXiv 2207.14484); dotted in (a): GD's 2/η. (b) The same preconditioned "
        f"sharpness on a linear scale with the ±{100 * row['band']:.0f}% band of the "
        f"check `preconditioned-edge`; vertical dotted line: the onset.")
    if row["diverged_at"] is not None:
        text = f"The run diverged at step {row['diverged_at']}."
    elif row["onset"] is None:
        text = (f"The preconditioned sharpness started at {row['preconditioned_first']:,.0f} "
                f"and did not rise to the threshold {edge:,.0f} from 10% below within "
                f"{c.steps} steps; the raw sharpness went from {row['raw_first']:.3g} to "
                f"{row['raw_last']:.3g}.")
    else:
        lo, hi = row["preconditioned_range"]
        held = sum(row["holds"].values())
        dip = (f"dipped to {row['preconditioned_min_before']:,.0f}, "
               if row["preconditioned_min_before"] < row["preconditioned_first"] else "")
        text = (f"The preconditioned sharpness started at {row['preconditioned_first']:,.0f}, "
                f"{dip}reached the threshold "
                f"{edge:,.0f} at step {row['onset']} and then hovered there: median "
                f"{row['preconditioned_median']:,.0f} "
                f"({100 * (row['preconditioned_median'] / edge - 1):+.1f}%), "
                f"{100 * row['inside_band']:.0f}% of the {row['tracked_after']} tracked steps "
                f"after the onset within ±{100 * row['band']:.0f}% (range {lo:,.0f} to "
                f"{hi:,.0f}). The raw sharpness went from {row['raw_first']:.3g} to "
                f"{row['raw_last']:.3g}; its median after the onset, "
                f"{row['raw_median']:.3g}, is 1/{edge / row['raw_median']:,.0f} of the "
                f"threshold and {row['raw_median'] * row['eta'] / 2:.2g} times GD's 2/η: "
                f"Adam sits at its edge in the preconditioned geometry, not in the raw one. "
                f"{held} of the {len(row['holds'])} rows of the check hold.")
    return Section(file=rel, caption=caption, text=text, numbers=row)
