"""Accuracy and HVPs of the sharpness tracker along the default comparison run.

Runs the main GD run of ``python -m validation.compare`` with its default configuration
(the tracker with its default block, tolerance and restart rule), keeps the parameters
at every tracked step, and compares each tracked sharpness with an independent
reference: ARPACK (``scipy.sparse.linalg.eigsh``, ``tol=1e-10``) in float64 on the same
parameters, with Hessian-vector products of a float64 copy of the objective. At the
steps of ``--dense`` the reference itself is checked against a dense float64
eigendecomposition of the full Hessian. The same saved parameters are then replayed
through the previous default (one warm vector, relative residual ``1e-2``).

Prints the worst error, the steps off by more than ``--atol``, and the mean HVPs per
tracked step.

    python -m benchmarks.sharpness_accuracy [--dense 70] [--atol 1e-3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse.linalg as sla
import torch

from validation.experiment import Config, Experiment
from validation.objective import Objective, make_objective
from validation.sharpness import SharpnessTracker, lobpcg


def trajectory(config: Config) -> tuple[Experiment, list[int], list[torch.Tensor], list[float],
                                        list[int]]:
    """Run ``config`` and return the tracked steps, their parameters, estimates and HVPs."""
    exp = Experiment(config, torch.device("cpu"))
    run = exp.runs["main"]
    steps, ws = [], []
    while exp.t <= config.steps:
        t, w = exp.t, run.state[0]
        before = len(run.sharpness)
        exp.step()
        if len(run.sharpness) > before:
            steps.append(t)
            ws.append(w.clone())
    values = [s for _, s in run.sharpness]
    return exp, steps, ws, values, list(run.hvps)


def reference(obj64: Objective, w: torch.Tensor, v0: np.ndarray) -> tuple[float, np.ndarray, int]:
    """Top eigenpair of ``H(w)`` by ARPACK in float64, and the products it spent."""
    w64 = w.double()
    n = w64.numel()
    count = [0]

    def matvec(v):
        count[0] += 1
        return obj64.hvp(w64, torch.as_tensor(np.ravel(v))).numpy()

    op = sla.LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    vals, vecs = sla.eigsh(op, k=2, which="LA", tol=1e-10, v0=v0)
    top = int(np.argmax(vals))
    return float(vals[top]), vecs[:, top], count[0]


def dense_top(obj64: Objective, w: torch.Tensor) -> float:
    """Largest eigenvalue of the full float64 Hessian (built column by column)."""
    w64 = w.double()
    n = w64.numel()
    hess = torch.empty((n, n), dtype=torch.float64)
    eye = torch.eye(n, dtype=torch.float64)
    for i in range(0, n, 256):
        hess[:, i: i + 256] = obj64.hvp(w64, eye[:, i: i + 256])
    hess = 0.5 * (hess + hess.T)
    return float(torch.linalg.eigvalsh(hess)[-1])


def replay_previous_default(obj: Objective, ws: list[torch.Tensor]) -> tuple[list[float],
                                                                           list[int]]:
    """The previous default: one warm vector, LOBPCG to a relative residual of 1e-2."""
    cold = SharpnessTracker(obj.hvp, ws[0].numel(), k=1, tol=1e-2, guard=0,
                            generator=torch.Generator().manual_seed(1))
    first = cold.estimate(ws[0])
    values, hvps, x = [float(first.values[0])], [first.hvps], first.vectors
    for w in ws[1:]:
        res = lobpcg(lambda v, w=w: obj.hvp(w, v), x, tol=1e-2)
        x = res.vectors
        values.append(float(res.values[0]))
        hvps.append(res.hvps)
    return values, hvps


def _summary(name: str, steps: list[int], values, refs: np.ndarray, hvps, atol: float) -> None:
    err = np.abs(np.asarray(values) - refs)
    rel = err / refs
    over = [t for t, e in zip(steps, err, strict=True) if e > atol]
    hv = np.asarray(hvps)
    print(f"{name}:")
    print(f"  worst |error| {err.max():.1e} (relative {rel.max():.1e}) at t = "
          f"{steps[int(err.argmax())]}; median {np.median(err):.1e}")
    print(f"  {len(over)} of {len(steps)} tracked steps off by more than {atol:g}"
          + (f": t = {', '.join(map(str, over[:12]))}{' ...' if len(over) > 12 else ''}"
             if over else ""))
    print(f"  HVPs per tracked step: mean {hv.mean():.2f} (warm steps {hv[1:].mean():.2f}, "
          f"max {hv[1:].max()}), cold first estimate {hv[0]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dense", type=int, nargs="*", default=[70],
                   help="tracked steps whose reference is checked against a dense "
                        "eigendecomposition (default 70)")
    p.add_argument("--atol", type=float, default=1e-3,
                   help="accuracy goal of the tracked sharpness (default 1e-3)")
    args = p.parse_args()
    torch.set_num_threads(1)
    config = Config()
    start = time.perf_counter()
    exp, steps, ws, values, hvps = trajectory(config)
    run_time = time.perf_counter() - start
    obj64 = make_objective(exp.network, exp.data, loss=config.loss, dtype=torch.float64,
                           chunk_size=config.chunk_size)
    rng = np.random.default_rng(0)
    refs, ref_hvps = [], []
    v = rng.standard_normal(exp.p)
    for w in ws:
        # Warm start plus a random part, so ARPACK never starts inside one eigenspace.
        noise = rng.standard_normal(exp.p)
        v0 = v / np.linalg.norm(v) + 0.3 * noise / np.linalg.norm(noise)
        lam, v, spent = reference(obj64, w, v0)
        refs.append(lam)
        ref_hvps.append(spent)
    refs = np.asarray(refs)
    print(f"default run of validation.compare: {exp.p} parameters, {config.dtype}, "
          f"eta={config.eta}, {len(steps)} tracked steps (every {config.track_every}); "
          f"tracker block k+guard, tol={config.tol:g}, refresh_every={config.refresh_every} "
          f"({run_time:.0f} s)")
    print(f"reference: ARPACK eigsh tol 1e-10, float64, {np.mean(ref_hvps):.0f} products "
          f"per step on average")
    for t in args.dense:
        if t not in steps:
            raise SystemExit(f"--dense {t} is not a tracked step")
        i = steps.index(t)
        dense = dense_top(obj64, ws[i])
        print(f"  dense float64 eigendecomposition at t = {t}: {dense:.10f}; reference "
              f"{refs[i]:.10f}; difference {abs(dense - refs[i]):.1e}")
    _summary("default tracker", steps, values, refs, hvps, args.atol)
    old_values, old_hvps = replay_previous_default(exp.objective, ws)
    _summary("previous default (1 vector, residual 1e-2), replayed on the same parameters",
             steps, old_values, refs, old_hvps, args.atol)


if __name__ == "__main__":
    main()
