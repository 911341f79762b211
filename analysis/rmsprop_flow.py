"""RMSProp at its edge against its central flow, on a minimal model.

``python -m analysis.rmsprop_flow`` runs RMSProp on the depth-2 scalar network with two data
points that no weight fits (so the loss floor is 0.0045 > 0 and the gradient never vanishes
exactly), or with ``--model two-layer`` on a width-4 tanh network with 8 points (16
parameters, where two eigenvalues reach the edge), rebuilds RMSProp's average of squared
gradients ``nu`` from its iterates, starts :func:`minimal_eos.rmsprop_central_flow` from
RMSProp's state ``(w, nu)`` at step ``start`` (after the few steps in which ``nu`` climbs
from 0), and compares over windows of steps:

- RMSProp's mean loss with the flow's predicted time-averaged loss ``L(w) + 1/2 <Sigma, H>``,
  and with ``L(w)`` alone (what the flow would predict without the oscillation);
- RMSProp's mean preconditioned sharpness ``lambda_max(D H)``,
  ``D = diag(1 / (sqrt(nu) + eps))``, with ``2/eta`` and with the flow's.

It prints one row per window and a summary over the windows after ``settle`` (the first
crossing of ``2/eta`` is a catapult, which no flow describes).

References
----------
Cohen, Damian, Talwalkar, Kolter, Lee, arXiv 2410.24206, section 5 (RMSProp).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from minimal_eos import (
    Model,
    RMSProp,
    ScalarNetwork,
    TwoLayerNetwork,
    rmsprop_central_flow,
    simulate,
)
from minimal_eos._checks import positive_float, positive_int


@dataclass(frozen=True)
class RMSPropFlowComparison:
    """Window averages of an RMSProp run and of its central flow.

    Attributes
    ----------
    eta
        RMSProp's step size.
    starts
        First step of each window, shape ``(K,)``; each window has ``window`` steps.
    loss, predicted_loss, flow_loss
        RMSProp's mean loss, the flow's mean ``L + 1/2 <Sigma, H>`` and mean ``L(w)``.
    psharp, flow_psharp
        Mean ``lambda_max(D H)`` of RMSProp and of the flow.
    sigma
        The flow's root mean squared oscillation ``sqrt(tr Sigma)`` at each window's start.
    n_critical
        The rank of the flow's ``Sigma`` there (eigenvalues held at the edge).
    """

    eta: float
    starts: np.ndarray
    loss: np.ndarray
    predicted_loss: np.ndarray
    flow_loss: np.ndarray
    psharp: np.ndarray
    flow_psharp: np.ndarray
    sigma: np.ndarray
    n_critical: np.ndarray


def preconditioned_sharpness(model: Model, theta: np.ndarray, nu: np.ndarray,
                             eps: float) -> float:
    """``lambda_max(D H(theta))`` with ``D = diag(1 / (sqrt(nu) + eps))``, dense."""
    s = 1.0 / np.sqrt(np.sqrt(nu) + eps)
    return float(np.linalg.eigvalsh(model.hessian(theta) * np.outer(s, s))[-1])


def rmsprop_flow_comparison(
    model: Model,
    optimizer: RMSProp,
    theta0,
    steps: int,
    *,
    eta: float,
    start: int,
    window: int = 100,
) -> RMSPropFlowComparison:
    """Run RMSProp and its central flow (from RMSProp's state at ``start``) and compare.

    Parameters
    ----------
    model, optimizer, theta0
        The model, an :class:`~minimal_eos.RMSProp` and RMSProp's initial point.
    steps
        Length of the run.
    eta
        Step size.
    start
        The step whose RMSProp state ``(w_start, nu_start)`` starts the flow.
    window
        Steps per window.

    Returns
    -------
    RMSPropFlowComparison

    Notes
    -----
    ``nu`` is rebuilt from the recorded iterates, ``nu_{k+1} = beta2 nu_k +
    (1 - beta2) grad L(w_k)^2``; step ``k`` moves with ``D(nu_{k+1})``, so RMSProp's
    preconditioned sharpness at step ``k`` is ``lambda_max(D(nu_{k+1}) H(w_k))``.
    """
    steps = positive_int(steps, "steps")
    start = positive_int(start, "start")
    window = positive_int(window, "window")
    eta = positive_float(eta, "eta")
    if start + window > steps:
        raise ValueError(f"start + window must be at most steps = {steps}; got {start + window}")
    run = simulate(model, optimizer, theta0, steps, eta=eta, save=("loss", "theta"))
    if run.diverged_at[0] >= 0:
        raise ValueError(f"RMSProp diverged at step {run.diverged_at[0]}; lower eta")
    theta, loss = run.theta[0].data, run.loss[0].data
    nu = np.zeros((steps + 1, model.dim))
    for k in range(steps):
        g = model.grad(theta[k])
        nu[k + 1] = optimizer.beta2 * nu[k] + (1 - optimizer.beta2) * g * g
    psharp = np.array([preconditioned_sharpness(model, theta[k], nu[k + 1], optimizer.eps)
                       for k in range(steps)])
    flow = rmsprop_central_flow(model, theta[start], nu[start], float(steps - start), eta=eta,
                                optimizer=optimizer,
                                t_eval=np.arange(0.0, steps - start + 1.0))
    if not flow.success:
        raise ValueError(f"the flow stopped: {flow.message}")
    starts = np.arange(start, steps - window + 1, window)

    def mean(values, offset):
        return np.array([values[s - offset:s - offset + window].mean() for s in starts])

    return RMSPropFlowComparison(
        eta=eta, starts=starts, loss=mean(loss, 0), predicted_loss=mean(flow.predicted_loss, start),
        flow_loss=mean(flow.loss, start), psharp=mean(psharp, 0),
        flow_psharp=mean(flow.preconditioned_sharpness, start),
        sigma=np.sqrt(flow.sigma2[starts - start]), n_critical=flow.n_critical[starts - start],
    )


_PRESETS = {
    # model, its description, initial point, and the defaults of --eta --steps --settle
    "scalar": (lambda: ScalarNetwork(depth=2, x=(1.0, 2.0), y=(1.0, 1.7)),
               "L = 1/4 sum_k (x_k w1 w2 - y_k)^2, x = (1, 2), y = (1, 1.7), w0 = (2, 0.1)",
               lambda _m: np.array([2.0, 0.1]), 0.01, 4000, 1500),
    "two-layer": (lambda: TwoLayerNetwork.toy(4, "tanh", n_points=8),
                  "TwoLayerNetwork.toy(4, 'tanh', n_points=8), w0 = init(default_rng(0), 0.5)",
                  lambda m: m.init(np.random.default_rng(0), scale=0.5), 0.003, 3000, 1200),
}


def main(argv: Sequence[str] | None = None) -> None:
    """Print the comparison table and its summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(_PRESETS), default="scalar")
    parser.add_argument("--eta", type=float, default=None)
    parser.add_argument("--beta2", type=float, default=0.99)
    parser.add_argument("--eps", type=float, default=1e-8)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--start", type=int, default=300)
    parser.add_argument("--settle", type=int, default=None)
    parser.add_argument("--window", type=int, default=100)
    args = parser.parse_args(argv)
    build, described, theta0, eta, steps, settle = _PRESETS[args.model]
    args.eta = eta if args.eta is None else args.eta
    args.steps = steps if args.steps is None else args.steps
    args.settle = settle if args.settle is None else args.settle
    model = build()
    try:
        opt = RMSProp(beta2=args.beta2, eps=args.eps)
        cmp = rmsprop_flow_comparison(model, opt, theta0(model), args.steps, eta=args.eta,
                                      start=args.start, window=args.window)
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    edge = 2.0 / cmp.eta
    print(f"RMSProp(beta2={args.beta2:g}, eps={args.eps:g}), eta={args.eta:g}, on {described}; "
          f"flow from step {args.start}; windows of {args.window} steps")
    print(f"{'step':>6} {'loss':>12} {'predicted':>12} {'L(w) flow':>12} "
          f"{'S_P eta/2':>10} {'flow':>10} {'sigma':>9} {'k':>2}")
    for row in zip(cmp.starts, cmp.loss, cmp.predicted_loss, cmp.flow_loss,
                   cmp.psharp / edge, cmp.flow_psharp / edge, cmp.sigma, cmp.n_critical,
                   strict=True):
        print(f"{row[0]:>6d} {row[1]:>12.7f} {row[2]:>12.7f} {row[3]:>12.7f} "
              f"{row[4]:>10.5f} {row[5]:>10.5f} {row[6]:>9.2e} {row[7]:>2d}")
    late = cmp.starts >= args.settle
    if not late.any():
        return
    rel = np.abs(cmp.predicted_loss - cmp.loss)[late] / cmp.loss[late]
    rel0 = np.abs(cmp.flow_loss - cmp.loss)[late] / cmp.loss[late]
    print(f"windows from step {args.settle} on ({late.sum()}):")
    print(f"  |mean loss - predicted| / mean loss: max {rel.max():.2e} "
          f"(without Sigma, L(w) alone: min {rel0.min():.2e})")
    share = (cmp.loss - cmp.flow_loss)[late] / (cmp.predicted_loss - cmp.flow_loss)[late] - 1
    print(f"  RMSProp's mean loss - L(w) of the flow, against <Sigma, H>/2: relative error "
          f"{share.min():.2e} to {share.max():.2e}")
    print(f"  RMSProp's mean S_P eta/2: {(cmp.psharp[late] / edge).min():.5f} to "
          f"{(cmp.psharp[late] / edge).max():.5f}; the flow's: max |S_P eta/2 - 1| "
          f"{np.abs(cmp.flow_psharp[late] / edge - 1).max():.1e}")


if __name__ == "__main__":
    main()
