"""Figure 12: mini-batch SGD, batch sharpness and full-batch sharpness for three batch sizes."""

from __future__ import annotations

import math
from itertools import pairwise
from statistics import median

import numpy as np

from paper import last_sample, style
from paper.build import Context, Section
from paper.cache import SECONDS, Job
from paper.last_sample import last_sample_job
from paper.runs import describe_network, network_job

NAME = "sgd"
NUMBER = 12
TITLE = "Mini-batch SGD: batch sharpness and the full-batch sharpness"


def configs(quick: bool) -> list:
    """One SGD run per batch size, same step size, data, network and seed.

    At ``eta = 0.8`` a batch of 25 (or 10) examples diverges within the first 25 steps on
    the full network, so the batch sizes start at 50; 3,000 steps let the batch of 50
    reach ``2/eta`` (600 do not).
    """
    from validation.experiment import Config

    if quick:
        base = {"n": 100, "width": 16, "eta": 0.3, "steps": 60, "track_every": 15,
                "bs_batches": 4}
        sizes = (10, 25, 50)
    else:
        base = {"n": 1000, "width": 64, "eta": 0.8, "steps": 3000, "track_every": 50}
        sizes = (50, 100, 200)
    return [Config(optimizer="sgd", batch_size=b, checks=("batch-sharpness",), **base)
            for b in sizes]


def jobs(quick: bool) -> list[Job]:
    return ([network_job(c, label=f"MNIST-1D, SGD B={c.batch_size}") for c in configs(quick)]
            + last_sample_jobs(quick))


def last_sample_jobs(quick: bool) -> list[Job]:
    """The cold check of the last tracked samples of the full-batch λmax of every run."""
    return [last_sample_job(c, label=f"last sample, SGD B={c.batch_size}")
            for c in configs(quick)]


def records(r: dict) -> dict:
    """The records of :meth:`validation.experiment.Experiment.results` that the check
    ``batch-sharpness`` reads, rebuilt from a cached run ``r``."""
    diverged = int(r["main.diverged_at"])
    main = {"optimizer": r["main.optimizer"], "eta": r["main.eta"], "edge": r["main.edge"],
            "diverged_at": None if diverged < 0 else diverged,
            "sharpness": list(zip(r["main.sharpness_t"].tolist(), r["main.sharpness"].tolist(),
                                  strict=True))}
    keys = ("t", "batch_sharpness", "batch_lambda", "lambda_max", "sigma_u2", "alpha", "beta")
    sto = {k: r[f"stochastic.{k}"].tolist() for k in keys}
    sto["t"] = [int(t) for t in sto["t"]]
    sto["batch_size"] = int(r["stochastic.batch_size"])
    sto["batches"] = int(r["stochastic.batches"])
    return {"runs": {"main": main}, "stochastic": sto}


def summary(r: dict) -> dict:
    """The rows of the check ``batch-sharpness`` and the levels they are measured on.

    After the onset (the batch sharpness reaching ``2/eta`` from 10% below), or over the
    second half of the run without one: medians of the batch sharpness, of ``lambda_max``
    and of ``E_B lambda_max(H_B)``, and the rows ``h.plateau``, ``h.below``, ``h.gap``
    of :func:`validation.predictions.batch_sharpness_rows`.
    """
    from validation.predictions import batch_sharpness_rows, onset_step

    res = records(r)
    sto = res["stochastic"]
    edge = 2.0 / res["runs"]["main"]["eta"]
    onset = onset_step(list(zip(sto["t"], sto["batch_sharpness"], strict=True)), edge)
    start = onset if onset is not None else (sto["t"][-1] / 2 if sto["t"] else 0)
    idx = [i for i, t in enumerate(sto["t"]) if t >= start]

    def med(key: str) -> float:
        vals = [sto[key][i] for i in idx]
        return float(median(vals)) if vals else math.nan

    rows = {row["name"]: row for row in batch_sharpness_rows(res)}
    alpha = [sto["alpha"][i] for i in idx]
    return {"batch_size": sto["batch_size"], "eta": res["runs"]["main"]["eta"], "edge": edge,
            "onset": onset, "from_step": int(start), "tracked_after": len(idx),
            "diverged_at": res["runs"]["main"]["diverged_at"],
            "batch_sharpness": med("batch_sharpness"), "lambda_max": med("lambda_max"),
            "batch_lambda": med("batch_lambda"),
            "lambda_max_largest": max((sto["lambda_max"][i] for i in idx), default=math.nan),
            "lambda_below": rows["h.below"]["measured"],
            "alpha_mean": float(np.mean(alpha)) if alpha else math.nan,
            "alpha_positive": int(sum(a > 0 for a in alpha)),
            "gap_measured": rows["h.gap"]["measured"],
            "gap_predicted": rows["h.gap"]["predicted"],
            "holds": {k: bool(v["holds"]) for k, v in rows.items()}}


def _describe(row: dict, steps: int) -> str:
    head = f"**B = {row['batch_size']}**: "
    if row["diverged_at"] is not None:
        return head + f"the run diverged at step {row['diverged_at']}"
    if row["onset"] is None:
        head += (f"the batch sharpness did not reach 2/η within {steps} steps; over the "
                 f"second half of the run (from step {row['from_step']}) ")
    else:
        head += (f"the batch sharpness reached 2/η at step {row['onset']}; over the "
                 f"{row['tracked_after']} tracked steps from there ")
    order = ("below" if row["lambda_max"] < row["batch_sharpness"] else "above")
    text = (head + f"the median batch sharpness is {row['batch_sharpness']:.3f} "
            f"({100 * (row['batch_sharpness'] / row['edge'] - 1):+.1f}% from 2/η), the "
            f"median full-batch λmax {row['lambda_max']:.3f} ({order} the batch sharpness; "
            f"below it at {100 * row['lambda_below']:.0f}% of the steps, largest "
            f"{row['lambda_max_largest']:.3f}) and the median E_B λmax(H_B) "
            f"{row['batch_lambda']:.3f}")
    if math.isfinite(row["gap_predicted"]):
        text += (f"; the gap 2/η − λmax = {row['gap_measured']:.3f} against the predicted "
                 f"ηβσ_u²/(4α) = {row['gap_predicted']:.3f}")
    else:
        text += (f"; α = −∇L·∇S averages {row['alpha_mean']:.3g} (positive at "
                 f"{row['alpha_positive']} of {row['tracked_after']} steps), so the "
                 f"formula of stochastic self-stabilization is not applicable (measured "
                 f"2/η − λmax = {row['gap_measured']:.3f})")
    return text


#: Why the gap formula has nothing to say when progressive sharpening is absent.
NOT_APPLICABLE = (
    "The gap formula ηβσ_u²/(4α) is the equilibrium of two forces: progressive sharpening "
    "(α > 0) pushing the sharpness up, and the cubic restoring force, strengthened by the "
    "noise along u, pulling it down. With α ≤ 0 there is no sharpening to balance, the "
    "equilibrium it describes does not exist (the formula would give a gap of the wrong "
    "sign, or none), and the check `batch-sharpness` marks its row not applicable: the "
    "formula is not tested by these runs, rather than contradicted by them.")


def make(ctx: Context) -> Section:
    cfgs = configs(ctx.quick)
    results = [ctx.result(network_job(c)) for c in cfgs]
    last = [last_sample.summary(ctx.result(j)) for j in last_sample_jobs(ctx.quick)]
    fig, axes = style.figure(len(cfgs), width=15.0, height=4.0, sharey=True)
    rows = []
    for i, (ax, c, r) in enumerate(zip(axes, cfgs, results, strict=True)):
        t = r["stochastic.t"]
        ax.plot(t, r["stochastic.batch_sharpness"], color=style.SGD, lw=1.6,
                label="batch sharpness E_B[g_Bᵀ H_B g_B / |g_B|²]")
        ax.plot(r["main.sharpness_t"], r["main.sharpness"], color="k", lw=1.0,
                label="full-batch λmax")
        ax.plot(t, r["stochastic.batch_lambda"], color="0.55", lw=0.8, ls=":",
                label="E_B λmax(H_B)")
        ax.plot([last[i]["t_last"]], [last[i]["cold_last"]], marker="x", color="k", ms=7,
                ls="none", label="λmax at the last step, cold Lanczos")
        style.edge_line(ax, r["main.edge"], label="2/η")
        row = summary(r)
        rows.append(row)
        if row["onset"] is not None:
            ax.axvline(row["onset"], color=style.SGD, lw=0.8, ls=":")
        ax.set_xlabel("step t  [SGD updates]")
        ax.set_title(f"SGD, batch size B = {c.batch_size}, η = {c.eta:g}")
        style.panel_label(ax, "abc"[i])
    axes[0].set_ylabel(style.LABELS["sharpness"])
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=4,
               fontsize=8)
    top = max(max(float(np.max(r["main.sharpness"])), 1.6 * r["main.edge"]) for r in results)
    axes[0].set_ylim(0, min(top, 2.2 * results[0]["main.edge"]))
    path, rel = ctx.figure_path(NUMBER, NAME)
    style.save(fig, path)

    c0 = cfgs[0]
    caption = (
        f"Mini-batch SGD (batches drawn without replacement, a new permutation every epoch) "
        f"on {describe_network(c0)}, η = {c0.eta:g}, {c0.steps} steps, batch sizes "
        f"{', '.join(str(c.batch_size) for c in cfgs)}; every {c0.track_every} steps the "
        f"batch sharpness (mean Rayleigh quotient of {c0.bs_batches} sampled batch Hessians "
        f"along their own gradients), the mean top eigenvalue of those batch Hessians "
        f"(dotted) and the full-batch λmax. Dashed: 2/η; vertical dotted line: the onset, "
        f"where the batch sharpness reaches 2/η from 10% below; ×: λmax at the last step "
        f"estimated cold, by Lanczos from random starts. Andreyev & Beneventano "
        f"(arXiv 2412.20553) predict that the batch sharpness rises to 2/η and hovers there "
        f"with λmax below it, lower for smaller batches.")
    steps = c0.steps
    reached = [row for row in rows if row["onset"] is not None]
    ordered = [row for row in reached if row["lambda_below"] >= 0.9]
    lams = [row["lambda_max"] for row in rows]
    by_size = ("rises" if all(a < b for a, b in pairwise(lams))
               else "falls" if all(a > b for a, b in pairwise(lams))
               else "is not monotone")
    text = (
        "; ".join(_describe(row, steps) for row in rows) + ". "
        f"The batch sharpness reached 2/η in {len(reached)} of {len(rows)} runs, and "
        f"λmax stayed below it (at 90% of the steps after the onset) in {len(ordered)} of "
        f"them. With the batch size, the median full-batch λmax "
        f"({', '.join(f'{x:.3f}' for x in lams)}) {by_size}; the prediction is that it "
        f"rises toward 2/η as the batches grow."
        + (" The predicted order (λmax below a batch sharpness at 2/η) does not hold on "
           "this network at these batch sizes and run lengths"
           + ("; the batch quantity that lies above 2/η in every run is the mean top "
              "eigenvalue of the batch Hessians, E_B λmax(H_B), not their curvature along "
              "their own gradients" if all(row["batch_lambda"] > row["edge"] for row in rows)
              else "") + "." if len(ordered) < len(rows) else ""))
    text += (" The last tracked sample of the full-batch λmax, checked by rerunning each run "
             "and estimating λmax cold at its last two tracked iterates: "
             + "; ".join(last_sample.describe(f"B = {c.batch_size}", s)
                         for c, s in zip(cfgs, last, strict=True)) + ".")
    if any(not math.isfinite(row["gap_predicted"]) for row in rows):
        text += " " + NOT_APPLICABLE
    seconds = sum(float(r[SECONDS] or 0.0) for r in results)
    text += (f" Each batch size is one run of one seed (seed {c0.seed}); the three runs took "
             f"{seconds / 60:.1f} minutes of single-threaded computation, so every further seed "
             f"costs as much; none was added, and the differences between batch sizes above are "
             f"not separated from seed-to-seed variation.")
    return Section(file=rel, caption=caption, text=text,
                   numbers={"runs": rows, "cpu_minutes": seconds / 60, "last_sample": last})
