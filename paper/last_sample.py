"""The sharpness at the last two tracked iterates of a run, estimated from cold starts.

The tracker of a paper run (:data:`paper.runs.TRACKING`) warm-starts LOBPCG from the
previous estimate and restarts cold every ``refresh_every`` estimates. When a curve jumps
at its last tracked sample, :func:`last_sample_job` reruns the same configuration (same
seed, same iterates) and estimates the top eigenvalue at the last tracked iterate and at
the one before it by Lanczos from several random starts, none warm: if the cold values
agree with the tracked ones at both samples, the jump is in the iterates, not in the
tracking.
"""

from __future__ import annotations

import numpy as np

from paper.cache import Job
from paper.runs import config_from_dict, network_job

#: Bumped when :func:`run_last_sample` changes what it stores.
VERSION = 1
#: Krylov dimension of each cold Lanczos estimate.
COLD_ITERATIONS = 100
#: Random start vectors per iterate (generator seeds ``0 .. COLD_STARTS - 1``).
COLD_STARTS = 3


def last_sample_job(config, *, label: str = "") -> Job:
    """The cached cold check of the run of ``config`` (a validation ``Config``, tracked as
    every paper run is)."""
    d = network_job(config).config
    return Job("last-sample", {"network": d, "iterations": COLD_ITERATIONS,
                               "starts": COLD_STARTS},
               run_last_sample, version=VERSION, cost=network_job(config).cost, label=label)


def run_last_sample(d: dict) -> dict:
    """Rerun the network run of ``d["network"]`` and estimate its top Hessian eigenvalues
    cold at its last two tracked steps.

    Returns
    -------
    dict
        ``t``: the two tracked steps (the one before the last, the last);
        ``tracked``: the main run's tracked sharpness there (as in its cached result);
        ``cold``: shape ``(2, starts, 2)``, the top two eigenvalues from each cold start;
        ``residual``: their relative residuals ``|H u - lambda u| / |lambda|``, same shape;
        ``estimates``: the tracked samples of the run; ``refresh_every``: the tracker's
        cold-restart period (the last sample was a cold restart when ``estimates - 1`` is a
        multiple of it).

    Notes
    -----
    Lanczos with full reorthogonalisation from a Gaussian start vector (seed ``k`` for the
    ``k``-th start), ``iterations`` Hessian-vector products: its top Ritz value is a lower
    bound of the top eigenvalue that a warm start cannot bias.
    """
    import torch

    from validation.experiment import Experiment
    from validation.sharpness import lanczos

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    config = config_from_dict(d["network"])
    exp = Experiment(config, torch.device("cpu"))
    run = exp.runs["main"]
    # The tracked step before the last (tracking: every track_every steps, and the last).
    before = (config.steps - 1) // config.track_every * config.track_every
    points = {}
    while exp.t < config.steps + 1:
        exp.step()
        if exp.t == before + 1:
            # After the step of t, prev_w is w_t.
            points[before] = run.prev_w.clone()
    points[config.steps] = run.state[0].clone()
    tracked = dict(run.sharpness)
    cold = np.empty((2, d["starts"], 2))
    residual = np.empty_like(cold)
    for i, t in enumerate(sorted(points)):
        w = points[t]
        for k in range(d["starts"]):
            res = lanczos(lambda v, w=w: exp.objective.hvp(w, v), exp.p, k=2,
                          iterations=d["iterations"],
                          generator=torch.Generator().manual_seed(k), dtype=w.dtype)
            cold[i, k] = res.values.double().numpy()
            residual[i, k] = res.residuals.double().numpy()
    steps = sorted(points)
    return {"t": np.array(steps), "tracked": np.array([tracked[t] for t in steps]),
            "cold": cold, "residual": residual, "estimates": len(run.sharpness),
            "refresh_every": config.refresh_every}


#: Cold and tracked values closer than this (relative) agree.
AGREE = 0.01
#: A change from the sample before the last larger than this (relative) is a jump.
JUMP = 0.1


def summary(r: dict) -> dict:
    """The two samples of a :func:`run_last_sample` result, compared.

    ``t_before``, ``t_last``, ``tracked_before``, ``tracked_last``; ``cold_before``,
    ``cold_last``: the largest top eigenvalue over the cold starts, and ``cold_spread``:
    its range over the starts at the last step; ``jump = tracked_last / tracked_before -
    1``; ``agrees_before``, ``agrees_last``: the tracked value within :data:`AGREE` of the
    cold one; ``last_cold``: the last sample was itself a cold restart of the tracker.
    """
    top = r["cold"][:, :, 0]
    tracked = r["tracked"]
    cold = top.max(axis=1)
    return {"t_before": int(r["t"][0]), "t_last": int(r["t"][1]),
            "tracked_before": float(tracked[0]), "tracked_last": float(tracked[1]),
            "cold_before": float(cold[0]), "cold_last": float(cold[1]),
            "cold_spread": float(np.ptp(top[1])), "starts": int(top.shape[1]),
            "jump": float(tracked[1] / tracked[0] - 1),
            "agrees_before": bool(abs(tracked[0] / cold[0] - 1) <= AGREE),
            "agrees_last": bool(abs(tracked[1] / cold[1] - 1) <= AGREE),
            "last_cold": bool(r["refresh_every"] > 0
                              and (int(r["estimates"]) - 1) % int(r["refresh_every"]) == 0)}


def describe(name: str, s: dict) -> str:
    """One sentence on the last sample of run ``name`` (``s``: :func:`summary`)."""
    change = (f"{100 * s['jump']:+.0f}%" if round(100 * s["jump"]) != 0
              else "a change under 0.5%")
    head = (f"{name}: tracked {s['tracked_before']:.2f} at step {s['t_before']} and "
            f"{s['tracked_last']:.2f} at step {s['t_last']} ({change}); "
            f"cold Lanczos ({s['starts']} random starts, {COLD_ITERATIONS} products each) "
            f"gives {s['cold_before']:.2f} and {s['cold_last']:.2f}")
    if s["agrees_before"] and s["agrees_last"]:
        return head + (", so the tracking is right at both samples"
                       + (" and the jump is real, in the iterates" if abs(s["jump"]) > JUMP
                          else ""))
    if not s["agrees_before"] and s["cold_before"] > s["tracked_before"]:
        return head + (f": before the last sample the warm estimate had missed a larger "
                       f"eigenvalue ({100 * (s['cold_before'] / s['tracked_before'] - 1):.0f}% "
                       f"higher), which the last sample"
                       + (", a cold restart of the tracker," if s["last_cold"] else "")
                       + " found; the jump is in the tracking, not in the iterates")
    if s["agrees_before"] and s["tracked_last"] > s["cold_last"]:
        return head + (f": the last tracked value is "
                       f"{100 * (s['tracked_last'] / s['cold_last'] - 1):.0f}% above the cold "
                       f"estimate at the same iterate, an error of the tracker's estimate"
                       + (" (a cold restart of the tracker)" if s["last_cold"] else "")
                       + f"; the sharpness there is {s['cold_last']:.2f} and the jump is not "
                       f"in the iterates")
    return head + (f": the tracked values differ from the cold ones by "
                   f"{100 * (s['tracked_before'] / s['cold_before'] - 1):+.1f}% and "
                   f"{100 * (s['tracked_last'] / s['cold_last'] - 1):+.1f}%")
