"""How closely the central flow of the default comparison run holds its sharpness at 2/eta.

Runs the default configuration of ``python -m validation.compare`` (GD, gradient flow and
the central flow, step by step) and, at every record where the central flow is at the
edge (``tr Sigma > 0``), compares with ``2/eta``

* the sharpness the run records for the central flow, and
* the top eigenvalue of the Hessian at the flow's point, estimated independently: the
  loss in float64, a block of two LOBPCG vectors to relative residual ``1e-9``, so that
  the Ritz value is exact to about ``(1e-9 S)^2 / gap``.

Prints the largest deviations, the records they cover, and the Hessian-vector products
per estimate of the central flow's tracker.

    python -m benchmarks.central_flow_edge [--steps 600]
"""

from __future__ import annotations

import argparse
import time

import torch

from validation.experiment import Config, Experiment
from validation.objective import make_objective
from validation.sharpness import SharpnessTracker


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=Config().steps,
                   help="GD steps (default: the default run's)")
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cfg = Config(steps=args.steps)
    exp = Experiment(cfg, torch.device("cpu"))
    obj64 = make_objective(exp.network, exp.data, loss=cfg.loss, dtype=torch.float64,
                           chunk_size=cfg.chunk_size)
    reference = SharpnessTracker(obj64.hvp, exp.p, k=2, tol=1e-9, max_iterations=500,
                                 generator=torch.Generator().manual_seed(0))
    rec = exp.records
    rows = []
    while exp.t < cfg.steps + 1:
        before = len(rec["t"])
        exp.step()
        if len(rec["t"]) > before and rec["cf_sigma"][-1] > 0:
            est = reference.estimate(exp.cf.w.to(torch.float64))
            rows.append((rec["t"][-1], rec["cf_sharpness"][-1], float(est.values[0]),
                         float(est.residuals[0])))
    edge = exp.cf.edge
    recorded = max(abs(r - edge) for _, r, _, _ in rows)
    true = max(abs(s - edge) for _, _, s, _ in rows)
    above = max(s - edge for _, _, s, _ in rows)
    diff = max(abs(r - s) for _, r, s, _ in rows)
    cf = exp.cf
    print(f"default run, {cfg.steps} steps, eta = {cfg.eta}, 2/eta = {edge:.6f}, "
          f"{cfg.dtype}, {exp.p} parameters")
    print(f"central flow at the edge (tr Sigma > 0) at {len(rows)} records, "
          f"t = {rows[0][0]} .. {rows[-1][0]}")
    print(f"max |recorded S - 2/eta|                  {recorded:.3g}")
    print(f"max |S - 2/eta|, independent estimate     {true:.3g}  (largest S - 2/eta: "
          f"{above:+.3g})")
    print(f"max |recorded S - independent estimate|   {diff:.3g}")
    print(f"largest relative residual of the reference estimates: "
          f"{max(r for *_, r in rows):.2g}")
    print(f"central flow: {cf.steps} RK4 steps, {cf.projections} projections "
          f"({cf.shortened} shortened), {cf.tracker.mean_hvps:.2f} HVPs per estimate "
          f"over {cf.tracker.estimates} estimates")
    print(f"wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
