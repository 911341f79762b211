"""Figures' data for diagonal linear networks and logistic regression at large step sizes.

- :func:`dln_step_size_sweep`: GD on a diagonal network over a range of step sizes, with
  the recovery error of ``beta*``, the effective initialisation ``alpha_infinity``, the
  error of the exact implicit-bias prediction, the edge ``eta S(theta_inf)`` and the
  oscillation, next to the EoS onset ``2 / S(beta_GF)`` and the divergence threshold.
- :func:`logistic_loss_curves`: ``ln L(w_t)`` on separable data with a constant step and
  with the risk-adaptive step ``eta / L(w_t)``, with the predicted late behaviour.
- :func:`logistic_bifurcation`: orbit (bifurcation) diagrams of GD on non-separable data,
  one branch per starting point, with ``1/lambda`` and ``2/lambda``.

References
----------
Even, Pesme, Gunasekar, Flammarion, arXiv 2302.08982; Wu, Bartlett, Telgarsky, Yu,
arXiv 2402.15926; Zhang, Wu, Lin, Bartlett, arXiv 2504.04105; Meng, Orvieto, Cao, De Sa,
arXiv 2406.05033.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from minimal_eos._checks import as_float_array, choice, positive_float, positive_int
from minimal_eos.data import (
    ClassificationData,
    SparseRegression,
    cycle_dataset_1d,
    imbalanced_separable,
    nonseparable_logistic,
    sparse_regression,
)
from minimal_eos.implicit_bias import (
    divergence_threshold,
    effective_initialization,
    eos_onset,
    gradient_flow_limit,
    predicted_limit,
)
from minimal_eos.logistic_theory import (
    LogisticThresholds,
    late_rate_constant,
    max_margin,
    nonmonotone_phase,
    stability_thresholds,
)
from minimal_eos.models.diagonal import DiagonalNetwork, dln_gd, hyperbolic_shift
from minimal_eos.models.logistic import LogisticRegression, logistic_gd

from .maps import GDMap
from .orbits import OrbitDiagram, orbit_diagram, periodic_orbits

__all__ = [
    "DLNSweep",
    "LogisticBifurcation",
    "LogisticCurves",
    "dln_step_size_sweep",
    "logistic_bifurcation",
    "logistic_loss_curves",
    "stable_cycle_start",
]


@dataclass(frozen=True)
class DLNSweep:
    """What :func:`dln_step_size_sweep` returns (arrays indexed by step size first).

    Attributes
    ----------
    etas
        Step sizes, shape ``(E,)``.
    status
        ``"converged"``, ``"running"`` or ``"diverged"`` per step size.
    beta
        The last iterate's ``beta`` (the last one inside the bound for diverged runs),
        shape ``(E, d)``.
    recovery_error
        ``|beta - beta*|_2`` per step size.
    prediction_error
        ``|beta - beta_pred|_inf`` with ``beta_pred`` the hyperbolic-entropy minimiser at the
        run's own ``A_infinity``, ``c_infinity``; masked unless converged.
    alpha_only_error
        ``|beta - beta_alpha|_inf`` with ``beta_alpha`` the minimiser at ``A_infinity`` with
        the initial shift ``c_0`` (the prediction through ``alpha_infinity`` alone,
        :func:`minimal_eos.implicit_bias.predicted_limit` with ``exact=False``); masked
        unless converged.
    shift
        ``max_j |c_infinity,j - c_0,j|``, how far the run moved the shift; masked unless
        converged.
    gradient_flow_error
        ``|beta - beta_GF|_inf``.
    alpha_eff
        ``alpha_infinity``, shape ``(E, d)``; masked unless converged.
    edge
        ``eta S(theta_inf)``; masked unless converged.
    loss_increases
        Number of steps at which the loss went up.
    oscillation
        Fraction of the steps at which the loss went up: 0 for a monotone run, about 1/2
        for a run that keeps oscillating (period 2).
    alpha, parametrization
        The initialisation scale and the parametrization.
    eta_eos
        ``2 / S(beta_GF)``: the onset of the edge-of-stability window.
    eta_div
        The measured divergence threshold.
    eta_init
        ``2 / S(theta_0)``, a reference for ``eta_div``.
    gradient_flow_recovery
        ``|beta_GF - beta*|_2``.
    """

    etas: np.ndarray
    status: np.ndarray
    beta: np.ndarray
    recovery_error: np.ndarray
    prediction_error: np.ma.MaskedArray
    alpha_only_error: np.ma.MaskedArray
    shift: np.ma.MaskedArray
    gradient_flow_error: np.ndarray
    alpha_eff: np.ma.MaskedArray
    edge: np.ma.MaskedArray
    loss_increases: np.ndarray
    oscillation: np.ndarray
    alpha: float
    parametrization: str
    eta_eos: float
    eta_div: float
    eta_init: float
    gradient_flow_recovery: float


def dln_step_size_sweep(
    problem: SparseRegression,
    etas=None,
    *,
    alpha: float = 0.05,
    parametrization: str = "uv",
    steps: int = 40000,
    n_etas: int = 48,
    progress: bool = False,
) -> DLNSweep:
    """Sweep GD's step size on the diagonal network of a sparse-regression problem.

    Parameters
    ----------
    problem
        From :func:`minimal_eos.data.sparse_regression`.
    etas
        Step sizes; by default ``n_etas`` values on ``(0, 1.05 eta_div]`` (``eta_div``
        measured first).
    alpha
        Initialisation scale (standard initialisation :meth:`DiagonalNetwork.init`).
    parametrization
        ``"uv"`` or ``"uu-vv"``.
    steps
        Largest number of GD steps per run (runs stop once ``L <= 1e-26``).
    n_etas
        Number of default step sizes.
    progress
        Show a progress bar over the per-run predictions.

    Returns
    -------
    DLNSweep
    """
    if not isinstance(problem, SparseRegression):
        raise ValueError("problem must be a SparseRegression (minimal_eos.data.sparse_regression)")
    choice(parametrization, "parametrization", ("uv", "uu-vv"))
    alpha = positive_float(alpha, "alpha")
    steps = positive_int(steps, "steps")
    n_etas = positive_int(n_etas, "n_etas", minimum=2)
    model = DiagonalNetwork(problem.X, problem.y, parametrization)
    theta0 = model.init(alpha)
    s0 = model.sharpness(theta0)
    eta_div = divergence_threshold(model, theta0, eta_max=4.0 / s0)
    if etas is None:
        etas = np.linspace(1.05 * eta_div / n_etas, 1.05 * eta_div, n_etas)
    etas = as_float_array(etas, "etas", ndim=1)
    if etas.size == 0 or np.any(etas <= 0):
        raise ValueError("etas must be a non-empty list of step sizes > 0")
    every = max(1, steps // 400)
    run = dln_gd(model, theta0, steps, eta=etas, every=every)
    beta = model.beta(run.final_theta)
    gf = gradient_flow_limit(model, theta0)
    conv = run.status == "converged"
    pred_err = np.zeros(len(etas))
    alpha_err = np.zeros(len(etas))
    edge = np.zeros(len(etas))
    idx = np.nonzero(conv)[0]
    with np.errstate(under="ignore"):  # runs that never converge may shrink A to 0
        eff = effective_initialization(model, run)
    alpha_eff = eff.alpha
    c0 = hyperbolic_shift(model, theta0)
    shift = np.max(np.abs(eff.shift - c0), axis=1)
    for b in tqdm(idx, disable=not progress, desc="limits"):
        pred_err[b] = np.max(np.abs(beta[b] - predicted_limit(model, run, which=b)[0]))
        alpha_err[b] = np.max(np.abs(beta[b] - predicted_limit(model, run, exact=False,
                                                               which=b)[0]))
        edge[b] = etas[b] * np.linalg.eigvalsh(model.hessian(run.final_theta[b]))[-1]
    osc = run.loss_increases / np.maximum(run.steps, 1)
    mask = ~conv
    return DLNSweep(
        etas=etas.copy(), status=run.status.copy(), beta=beta,
        recovery_error=np.linalg.norm(beta - problem.beta_star, axis=1),
        prediction_error=np.ma.MaskedArray(pred_err, mask=mask),
        alpha_only_error=np.ma.MaskedArray(alpha_err, mask=mask),
        shift=np.ma.MaskedArray(shift, mask=mask),
        gradient_flow_error=np.max(np.abs(beta - gf), axis=1),
        alpha_eff=np.ma.MaskedArray(alpha_eff, mask=np.repeat(mask[:, None], model.d, 1)),
        edge=np.ma.MaskedArray(edge, mask=mask),
        loss_increases=run.loss_increases.copy(), oscillation=osc, alpha=alpha,
        parametrization=parametrization, eta_eos=eos_onset(model, theta0), eta_div=eta_div,
        eta_init=2.0 / s0, gradient_flow_recovery=float(np.linalg.norm(gf - problem.beta_star)),
    )


@dataclass(frozen=True)
class LogisticCurves:
    """What :func:`logistic_loss_curves` returns.

    Attributes
    ----------
    etas
        Step sizes (constant) and scales (adaptive), shape ``(E,)``.
    t
        Record times, shape ``(R,)``.
    log_loss_constant, log_loss_adaptive
        ``ln L(w_t)``, shape ``(E, R)``.
    gamma
        The maximal margin.
    predicted_constant
        ``ln(1 / (eta gamma^2 t))``, the late asymptote of the constant step (``t >= 1``;
        the ``t = 0`` column repeats ``ln 2``), shape ``(E, R)``.
    predicted_adaptive_slope
        ``-eta gamma^2``: the late slope of ``ln L`` with adaptive steps, shape ``(E,)``.
    phase_constant, phase_adaptive
        Last loss increase (length of the non-monotone phase), shape ``(E,)``.
    late_constant
        ``c gamma^2`` with ``c`` from :func:`minimal_eos.logistic_theory.late_rate_constant`
        (tends to 1), shape ``(E,)``.
    """

    etas: np.ndarray
    t: np.ndarray
    log_loss_constant: np.ndarray
    log_loss_adaptive: np.ndarray
    gamma: float
    predicted_constant: np.ndarray
    predicted_adaptive_slope: np.ndarray
    phase_constant: np.ndarray
    phase_adaptive: np.ndarray
    late_constant: np.ndarray


def logistic_loss_curves(data: ClassificationData, etas, steps: int, *, every: int = 1
                         ) -> LogisticCurves:
    """Loss curves on separable data: constant step against risk-adaptive step.

    Both runs start at ``w = 0`` and take the same number of steps with the same ``eta``
    (``eta_t = eta`` and ``eta_t = eta / L(w_t)``).
    """
    if not isinstance(data, ClassificationData):
        raise ValueError("data must be a ClassificationData (minimal_eos.data)")
    etas = as_float_array(etas, "etas", ndim=1)
    if etas.size == 0 or np.any(etas <= 0):
        raise ValueError("etas must be a non-empty list of step sizes > 0")
    steps = positive_int(steps, "steps", minimum=2)
    model = LogisticRegression(data.X, data.y)
    gamma, _ = max_margin(data.X, data.y)
    w0 = np.zeros(model.dim)
    const = logistic_gd(model, w0, steps, eta=etas, every=every)
    ada = logistic_gd(model, w0, steps, eta=etas, schedule="risk-adaptive", every=every)
    t = const.t.astype(float)
    pred = -np.log(etas[:, None] * gamma**2 * np.maximum(t[None, :], 1.0))
    pred[:, t == 0] = np.log(2.0)
    return LogisticCurves(
        etas=etas.copy(), t=const.t, log_loss_constant=const.log_loss,
        log_loss_adaptive=ada.log_loss, gamma=gamma, predicted_constant=pred,
        predicted_adaptive_slope=-etas * gamma**2, phase_constant=nonmonotone_phase(const),
        phase_adaptive=nonmonotone_phase(ada), late_constant=late_rate_constant(const) * gamma**2,
    )


def stable_cycle_start(model: LogisticRegression, eta: float, guesses, *,
                       periods=(2, 4, 8)) -> np.ndarray | None:
    """A point of a stable periodic orbit of GD at ``eta`` (period in ``periods``), or None.

    Uses :func:`analysis.orbits.periodic_orbits` from ``guesses`` (shape ``(B, d)``).
    """
    eta = positive_float(eta, "eta")
    for p in periods:
        stable = [o for o in periodic_orbits(GDMap(model, eta), int(p), guesses) if o.stable]
        if stable:
            return stable[0].points[0].copy()
    return None


@dataclass(frozen=True)
class LogisticBifurcation:
    """What :func:`logistic_bifurcation` returns.

    Attributes
    ----------
    thresholds
        ``w*``, ``lambda``, ``1/lambda`` and ``2/lambda``.
    starts
        The starting points of the branches, shape ``(K, d)``.
    diagrams
        One :class:`analysis.orbits.OrbitDiagram` per start (continuation over ``etas``).
    """

    thresholds: LogisticThresholds
    starts: np.ndarray
    diagrams: list[OrbitDiagram]


def logistic_bifurcation(data: ClassificationData, etas, *, starts=None, transient: int = 3000,
                         keep: int = 64) -> LogisticBifurcation:
    """Orbit diagrams of GD on non-separable logistic regression.

    Parameters
    ----------
    data
        A non-separable data set.
    etas
        Step sizes in increasing order (continuation follows each attractor).
    starts
        Starting points, shape ``(K, d)``; by default the minimiser (nudged by ``1e-3``),
        plus a point of a stable cycle at ``etas[0]`` when one exists
        (:func:`stable_cycle_start`, guesses on a line through ``w*``).
    transient, keep
        As in :func:`analysis.orbits.orbit_diagram`.
    """
    if not isinstance(data, ClassificationData):
        raise ValueError("data must be a ClassificationData (minimal_eos.data)")
    model = LogisticRegression(data.X, data.y)
    etas = as_float_array(etas, "etas", ndim=1)
    th = stability_thresholds(model)
    if starts is None:
        pts = [th.minimizer + 1e-3]
        _, u = model.top_eigenpair(th.minimizer)
        scale = 3.0 / max(1e-12, float(np.max(np.abs(model.X))))
        guesses = th.minimizer + np.linspace(-scale, scale, 61)[:, None] * u
        cyc = stable_cycle_start(model, float(etas[0]), guesses)
        if cyc is not None:
            pts.append(cyc)
        starts = np.array(pts)
    starts = as_float_array(starts, "starts", ndim=2)
    if starts.shape[1] != model.dim:
        raise ValueError(f"starts must have shape (K, {model.dim}); got {starts.shape}")
    diagrams = [orbit_diagram(model, etas, s, transient=transient, keep=keep) for s in starts]
    return LogisticBifurcation(thresholds=th, starts=starts, diagrams=diagrams)


def _report_dln(seed: int = 0) -> list[str]:
    prob = sparse_regression(20, 50, 3, seed=seed)
    lines = [f"Diagonal networks on sparse_regression(20, 50, 3, seed={seed}), alpha = 0.01"]
    for par in ("uv", "uu-vv"):
        model = DiagonalNetwork(prob.X, prob.y, par)
        theta0 = model.init(0.01)
        e0 = eos_onset(model, theta0)
        s0 = model.sharpness(theta0)
        e_div = divergence_threshold(model, theta0, eta_max=4.0 / s0)
        lines.append(f"  {par}: eta_eos = 2/S(beta_GF) = {e0:.4f}, eta_div (measured) = "
                     f"{e_div:.4f}, 2/S(theta_0) = {2 / s0:.4f}")
        factors = np.array([0.05, 0.1, 0.2, 0.5, 0.9, 1.1, 1.3])
        run = dln_gd(model, theta0, 400000, eta=factors * e0)
        gf = gradient_flow_limit(model, theta0)
        lines.append("    eta/eta_eos  status     |GD-pred|  |GD-pred(no shift)|  |GD-GF|"
                     "   |beta-beta*|  min alpha_inf/alpha  eta S(limit)")
        for b, f in enumerate(factors):
            beta = model.beta(run.final_theta[b])
            ok = run.status[b] == "converged"
            pe = np.max(np.abs(beta - predicted_limit(model, run, which=b)[0])) if ok else np.nan
            pn = (np.max(np.abs(beta - predicted_limit(model, run, which=b, exact=False)[0]))
                  if ok else np.nan)
            a_min = np.exp(-0.5 * np.max(run.sum_q[b]))
            edge = f * e0 * np.linalg.eigvalsh(model.hessian(run.final_theta[b]))[-1]
            rec = np.linalg.norm(beta - prob.beta_star)
            lines.append(f"    {f:10.2f}  {run.status[b]:9s}  {pe:9.2e}  {pn:19.2e}  "
                         f"{np.max(np.abs(beta - gf)):8.2e}  {rec:12.3f}  {a_min:19.2e}  "
                         f"{edge:12.4f}")
    return lines


def _report_logistic() -> list[str]:
    lines = ["Logistic regression, separable: imbalanced_separable(3, 1, tilt)"]
    data = imbalanced_separable(3, 1, tilt=0.1)
    model = LogisticRegression(data.X, data.y)
    gamma, _ = max_margin(data.X, data.y)
    etas = np.array([1.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0])
    run = logistic_gd(model, np.zeros(2), 20000, eta=etas)
    lines.append(f"  tilt 0.1 (gamma = {gamma:.5f}): non-monotone phase tau(eta):")
    lines.append("    " + "  ".join(f"eta={e:g}: {t}" for e, t in
                                    zip(etas, nonmonotone_phase(run), strict=True)))
    lines.append("  late-rate constant c gamma^2 (c from 1/L growth over steps 5e4..1e5):")
    for tilt in (0.05, 0.1, 0.2, 0.4):
        d = imbalanced_separable(3, 1, tilt=tilt)
        m = LogisticRegression(d.X, d.y)
        g, _ = max_margin(d.X, d.y)
        r = logistic_gd(m, np.zeros(2), 100000, eta=[1.0, 10.0], every=100)
        c = late_rate_constant(r)
        lines.append(f"    gamma = {g:.4f}: c = {c[0]:.2f} (eta 1), {c[1]:.2f} (eta 10); "
                     f"1/gamma^2 = {1 / g**2:.2f}; c gamma^2 = {c[0] * g**2:.4f}, "
                     f"{c[1] * g**2:.4f}")
    budget = int(np.ceil(4 / gamma**2))
    ada = logistic_gd(model, np.zeros(2), budget, eta=[1.0, 5.0, 20.0], schedule="risk-adaptive")
    const = logistic_gd(model, np.zeros(2), budget, eta=[1.0, 5.0, 20.0])
    lines.append(f"  same budget of {budget} = 4/gamma^2 steps, ln L(w_T): adaptive "
                 f"{np.round(ada.log_loss[:, -1], 1)} vs constant "
                 f"{np.round(const.log_loss[:, -1], 2)} (eta = 1, 5, 20)")
    cyc = cycle_dataset_1d()
    m1 = LogisticRegression(cyc.X, cyc.y)
    th = stability_thresholds(m1)
    lines.append(f"Non-separable, cycle_dataset_1d(): w* = {th.minimizer[0]:.5f}, lambda = "
                 f"{th.sharpness:.5f}, 1/lambda = {th.global_1d:.4f}, 2/lambda = "
                 f"{th.critical:.4f}")
    guesses = np.linspace(-3, 3, 61)[:, None]
    grid = np.arange(1.55, 1.65, 0.0025)
    born = flip = None
    for f in grid:
        orbits = periodic_orbits(GDMap(m1, f / th.sharpness), 2, guesses)
        stable = [o for o in orbits if o.stable]
        if born is None and orbits:
            born = f
        if born is not None and flip is None and not stable:
            flip = f
    lines.append(f"  2-cycles appear at eta lambda ~ {born:.4f} (saddle-node); the stable one "
                 f"loses stability through -1 at eta lambda ~ {flip:.4f} (grid 0.0025)")
    ns = nonseparable_logistic(30, 2, seed=0)
    bif = logistic_bifurcation(ns, np.linspace(1.9, 3.0, 45) / stability_thresholds(
        LogisticRegression(ns.X, ns.y)).sharpness, transient=4000, keep=64)
    per = bif.diagrams[0].period
    lam = bif.thresholds.sharpness
    first = {p: float(bif.diagrams[0].etas[np.argmax(per == p)] * lam) for p in (2, 4, 8)
             if np.any(per == p)}
    lines.append("  nonseparable_logistic(30, 2, seed=0): first eta lambda with period "
                 + ", ".join(f"{p}: {v:.3f}" for p, v in first.items()))
    return lines


def main() -> None:
    """Print the measured numbers quoted in the README: ``python -m analysis.dln_logistic``."""
    for line in _report_dln() + _report_logistic():
        print(line)


if __name__ == "__main__":
    main()
