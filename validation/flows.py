"""Continuous-time and projected references for gradient descent at the edge of stability.

Time is counted in gradient-descent steps: ``t`` steps of GD with step size ``eta``
correspond to gradient-flow time ``eta t``.

* :class:`GradientFlow`: ``dw/dt = -eta grad L(w)`` by RK4 with a step adapted to the
  sharpness.
* :class:`CentralFlow`: ``dw/dt = -eta [grad L(w) + 1/2 grad_w <Sigma(t), H(w)>]``
  (Cohen, Damian, Talwalkar, Kolter, Lee, arXiv 2410.24206), single- and
  multi-eigenvalue.
* :class:`RMSPropCentralFlow`: the central flow of RMSProp on the weights and the
  average of squared gradients, with the edge on ``lambda_max(D H)`` (same paper,
  section 5).
* :class:`ConstrainedTrajectory`: projected GD onto
  ``M = {S(w) <= 2/eta, grad L(w) . u(w) = 0}`` (Damian, Nichani, Lee, arXiv 2209.15594).

Each keeps its whole state in ``state_dict`` so that runs can be checkpointed and
resumed bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from minimal_eos.flows import rmsprop_sigma_problem, smat, solve_sigma, svec
from validation.adaptive import preconditioned_hvp
from validation.objective import Objective
from validation.sharpness import SharpnessTracker

_EPS_T = 1e-9  # times closer than this (in GD steps) are the same time
_CANDIDATES = 0.99  # eigenvalues above this fraction of 2/eta enter the projection and Sigma
# an eigenvalue this far (relatively) above 2/eta before a projection: the projection does
# not hold the edge (a step moves an eigenvalue by far less), and the flow stops
_RUNAWAY = 0.1
#: Relative residual of the eigenpairs a :class:`CentralFlow` should project with (see
#: its ``tracker`` parameter).
EDGE_TOL = 3e-4


class FlowRunaway(RuntimeError):
    """The central flow's projection no longer holds the edge (see :meth:`CentralFlow.advance`)."""


def rk4_step(objective: Objective, w: torch.Tensor, eta: float, dt: float) -> torch.Tensor:
    """One classical Runge-Kutta step of ``dw/dt = -eta grad L(w)`` of length ``dt`` steps.

    Notes
    -----
    ``k1 = f(w)``, ``k2 = f(w + dt k1 / 2)``, ``k3 = f(w + dt k2 / 2)``,
    ``k4 = f(w + dt k3)``, ``w+ = w + dt (k1 + 2 k2 + 2 k3 + k4) / 6``. On a quadratic of
    curvature ``lambda`` the step multiplies the mode by the degree-4 Taylor polynomial
    of ``exp(-z)``, ``z = eta lambda dt``, stable for ``z < 2.785``.
    """
    def f(p: torch.Tensor) -> torch.Tensor:
        return -eta * objective.grad(p)

    k1 = f(w)
    k2 = f(w + 0.5 * dt * k1)
    k3 = f(w + 0.5 * dt * k2)
    k4 = f(w + dt * k3)
    return w + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def _even_step(remaining: float, dt_max: float) -> float:
    """Largest step ``<= dt_max`` that divides ``remaining`` into equal parts."""
    return remaining / math.ceil(remaining / dt_max - 1e-12)


class GradientFlow:
    """Gradient flow ``dw/dt = -eta grad L(w)``, integrated by RK4.

    Parameters
    ----------
    objective : Objective
        The training loss.
    eta : float
        Step size of the GD run it is compared with (sets the time unit).
    w0 : torch.Tensor
        Initial parameters.
    tracker : SharpnessTracker
        Sharpness estimates for the step-size rule.
    safety : float
        Step rule ``dt = safety / (eta S)``: ``eta S dt = safety`` below RK4's stability
        limit 2.785 (default 2.5: the top mode is damped by the factor 0.65 per step
        instead of ``exp(-2.5)``, which only matters for a mode that decays anyway;
        the slow modes that carry the trajectory have ``eta lambda dt`` far below 1).
    estimate_every : int
        RK4 steps between sharpness estimates.
    max_dt : float
        Largest step (in GD steps).
    """

    def __init__(self, objective: Objective, eta: float, w0: torch.Tensor, *,
                 tracker: SharpnessTracker, safety: float = 1.0, estimate_every: int = 8,
                 max_dt: float = 4.0) -> None:
        if not 0.0 < safety < 2.785:
            raise ValueError(f"safety must lie in (0, 2.785) for RK4 stability; got {safety!r}")
        self.objective = objective
        self.eta = float(eta)
        self.w = w0.clone()
        self.t = 0.0
        self.tracker = tracker
        self.safety = safety
        self.estimate_every = estimate_every
        self.max_dt = max_dt
        self.sharpness = float("nan")
        self.steps_since_estimate = estimate_every
        self.rk4_steps = 0

    def estimate(self) -> float:
        """Sharpness at the current point (warm-started estimate)."""
        self.sharpness = float(self.tracker.estimate(self.w).values[0])
        self.steps_since_estimate = 0
        return self.sharpness

    def advance(self, t_target: float) -> None:
        """Integrate up to time ``t_target`` (in GD steps)."""
        while t_target - self.t > _EPS_T:
            if self.steps_since_estimate >= self.estimate_every:
                self.estimate()
            rate = self.eta * max(self.sharpness, 1e-12)
            dt = _even_step(t_target - self.t, min(self.safety / rate, self.max_dt))
            self.w = rk4_step(self.objective, self.w, self.eta, dt)
            self.t += dt
            self.rk4_steps += 1
            self.steps_since_estimate += 1
        self.t = float(t_target) if abs(self.t - t_target) <= _EPS_T else self.t

    def state_dict(self) -> dict:
        """Everything needed to resume."""
        return {"w": self.w, "t": self.t, "sharpness": self.sharpness,
                "steps_since_estimate": self.steps_since_estimate,
                "rk4_steps": self.rk4_steps, "tracker": self.tracker.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`."""
        self.w = state["w"]
        self.t = float(state["t"])
        self.sharpness = float(state["sharpness"])
        self.steps_since_estimate = int(state["steps_since_estimate"])
        self.rk4_steps = int(state["rk4_steps"])
        self.tracker.load_state_dict(state["tracker"])


def third_pairs(objective: Objective, w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``c_ij = grad_w (u_i^T H(w) u_j)`` for all ``i, j``: shape ``(m, m, p)``, symmetric."""
    m = u.shape[1]
    out = torch.zeros((m, m, w.numel()), dtype=w.dtype, device=w.device)
    for i in range(m):
        out[i, i] = objective.third(w, u[:, i])
        for j in range(i):
            x = torch.tensor([[0.0, 0.5], [0.5, 0.0]], dtype=w.dtype, device=w.device)
            cij = objective.third(w, torch.stack([u[:, i], u[:, j]], 1), x)
            out[i, j] = cij
            out[j, i] = cij
    return out


def _svec_generators(c: torch.Tensor) -> torch.Tensor:
    """Rows ``c_ij`` (``i <= j``, off-diagonal ones times ``sqrt 2``): shape ``(m(m+1)/2, p)``.

    In these coordinates ``sum_ij X_ij c_ij = svec(X) . rows`` and the Gram matrix
    ``rows rows^T`` is the operator ``X -> (c_ij . sum_kl X_kl c_kl)_ij`` of
    :func:`minimal_eos.flows.solve_sigma` (see :func:`minimal_eos.flows.svec`).
    """
    m = c.shape[0]
    return torch.stack([c[i, j] * (1.0 if i == j else math.sqrt(2.0))
                        for i in range(m) for j in range(i, m)])


def _solve(rows: torch.Tensor, b: np.ndarray, gram_scale: float) -> np.ndarray:
    """``X`` of ``X >= 0, b + gram_scale/2 A(X) >= 0`` complementary, ``A`` the Gram of ``rows``."""
    r = rows.double().cpu().numpy()
    return solve_sigma(gram_scale * (r @ r.T), b).x


def central_flow_sigma(objective: Objective, w: torch.Tensor, u: torch.Tensor
                       ) -> np.ndarray:
    """Instantaneous central-flow ``X`` (``Sigma = U X U^T``) for eigenvectors ``u`` at the edge.

    Parameters
    ----------
    objective : Objective
        The loss.
    w : torch.Tensor
        Point on the edge (the eigenvalues of ``u`` equal ``2 / eta``).
    u : torch.Tensor
        ``(p, m)`` orthonormal eigenvectors at the edge.

    Returns
    -------
    numpy.ndarray
        ``X``, ``(m, m)`` PSD.

    Notes
    -----
    ``d/dt (U^T H U)_ij = c_ij . dw/dt = -eta (A_ij + 1/2 sum_kl (c_ij . c_kl) X_kl)``
    with ``A_ij = c_ij . grad L``. The central flow keeps every eigenvalue at or below
    ``2/eta``: ``X >= 0``, ``A + B[X]/2 >= 0``, ``<X, A + B[X]/2> = 0``. With one
    eigenvalue this is ``sigma^2 = max(0, -2 grad L . grad S / |grad S|^2)``, i.e.
    ``2 alpha / beta`` in Damian et al.'s notation.
    """
    c = third_pairs(objective, w, u)
    g = objective.grad(w)
    a = torch.einsum("ijp,p->ij", c, g).double().cpu().numpy()
    return _solve(_svec_generators(c), a, 1.0)


class _EdgeFlow:
    """The discretisation shared by the central flows of GD and RMSProp.

    Each step is an RK4 step of the stable flow (:meth:`_stable_step`) followed by the
    linearised projection of the tracked eigenvalues back to ``2/eta``
    (:meth:`_project`, whose correction :meth:`_correction` comes from the flow's own
    ``Sigma`` terms); :meth:`advance` guards against a projection that loses the edge
    (:class:`FlowRunaway`) and :meth:`_settle` sets ``Sigma = U X U^T`` at the end
    (:meth:`_edge_sigma`). A subclass says what its state is, how the stable flow moves
    it, and which eigenproblem its ``tracker`` solves; the parameters are those of
    :class:`CentralFlow`.
    """

    #: Whether the flow holds its eigenvalues at ``2/eta`` (False: the stable flow alone).
    holds_edge = True

    def __init__(self, objective: Objective, eta: float, w0: torch.Tensor, *,
                 tracker: SharpnessTracker, safety: float, max_dt: float, hold_tol: float,
                 max_corrections: int) -> None:
        if not 0.0 < safety < 2.785:
            raise ValueError(f"safety must lie in (0, 2.785) for RK4 stability; got {safety!r}")
        if not 0.0 < hold_tol < 0.01:
            raise ValueError(f"hold_tol must lie in (0, 0.01); got {hold_tol!r}")
        if isinstance(max_corrections, bool) or not isinstance(max_corrections, int) \
                or max_corrections < 0:
            raise ValueError(f"max_corrections must be an integer >= 0; got {max_corrections!r}")
        self.objective = objective
        self.eta = float(eta)
        self.w = w0.clone()
        self.t = 0.0
        self.tracker = tracker
        self.safety = safety
        self.max_dt = max_dt
        self.hold_tol = hold_tol
        self.max_corrections = max_corrections
        self.eigenvalues = torch.full((tracker.k,), float("nan"))
        self.sigma = np.zeros((0, 0))
        self.steps = 0
        self.projections = 0
        self.shortened = 0
        self._ceiling: float | None = None

    @property
    def edge(self) -> float:
        """``2 / eta``."""
        return 2.0 / self.eta

    @property
    def sharpness(self) -> float:
        """Top eigenvalue at the last estimate (at the current point after :meth:`advance`)."""
        return float(self.eigenvalues[0])

    @property
    def sigma_trace(self) -> float:
        """``tr(X)`` of ``Sigma = U X U^T``, summed over the edge."""
        return float(np.trace(self.sigma)) if self.sigma.size else 0.0

    def predicted_loss(self) -> float:
        """Predicted time-averaged loss ``L(w) + tr(X) / eta`` (``= L + 1/2 <Sigma, H>``)."""
        return float(self.objective.value(self.w)) + self.sigma_trace / self.eta

    def _parts(self) -> tuple[torch.Tensor, ...]:
        """The state, weights first."""
        raise NotImplementedError

    def _set_parts(self, parts: tuple[torch.Tensor, ...]) -> None:
        raise NotImplementedError

    def _stable_step(self, dt: float) -> None:
        raise NotImplementedError

    def _correction(self, u: torch.Tensor, lam: np.ndarray) -> tuple[torch.Tensor, ...]:
        """The projection's correction of each part of the state."""
        raise NotImplementedError

    def _edge_sigma(self, u: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def _estimate(self):
        est = self.tracker.estimate(self.w)
        self.eigenvalues = est.values.detach().cpu()
        return est

    def _project(self, est, step: tuple[float, ...]) -> None:
        """Linearised projection of the state onto ``{lambda_i <= 2/eta}`` from ``est``;
        ``step`` holds the length of the last step in each part of the state."""
        if not bool((est.values > self.edge).any()):
            return
        # Candidates: the eigenvalues above the edge and those within 1% below it, which
        # the projection may have to hold down too.
        cand = est.values > self.edge * _CANDIDATES
        lam = est.values[cand].double().cpu().numpy()
        delta = self._correction(est.vectors[:, cand], lam)
        # Trust region: a consistent correction is of the order of the step that caused
        # the violation. Near an eigenvalue crossing the linearisation can be nearly
        # singular and ask for far more; the correction is then shortened (when it is more
        # than twice the step in every part of the state), and the next step's
        # projection continues it.
        norms = [float(torch.linalg.vector_norm(d)) for d in delta]
        if all(n > 2.0 * s > 0.0 for n, s in zip(norms, step, strict=True)):
            factor = max(2.0 * s / n for n, s in zip(norms, step, strict=True))
            delta = tuple(d * factor for d in delta)
            self.shortened += 1
        self._set_parts(tuple(x + d for x, d in zip(self._parts(), delta, strict=True)))
        self.projections += 1

    def _settle(self, step: tuple[float, ...]) -> None:
        """Estimate at the current point, project again while above the edge, set Sigma."""
        est = self._estimate()
        for _ in range(self.max_corrections):
            if not bool((est.values > self.edge * (1.0 + self.hold_tol)).any()):
                break
            self._project(est, step)
            est = self._estimate()
        if bool((est.values >= self.edge * (1.0 - self.hold_tol)).any()):
            # On the edge: the flow's complementarity problem over the same candidates
            # as the projection decides which eigenvectors carry Sigma.
            cand = est.values > self.edge * _CANDIDATES
            self.sigma = self._edge_sigma(est.vectors[:, cand])
        else:
            self.sigma = np.zeros((0, 0))

    def advance(self, t_target: float) -> None:
        """Integrate up to time ``t_target`` (in steps of the optimizer).

        Raises :class:`FlowRunaway` when the top eigenvalue before a projection is more than
        10% above ``2/eta`` (or above that of a start above the edge): the projection
        no longer holds the edge, and integrating on would only shrink the steps
        (``dt ~ 1 / (eta lambda_1)``) while the eigenvalue runs away.
        """
        if self.steps == 0 and torch.isnan(self.eigenvalues[0]):
            self._estimate()
        if self._ceiling is None:
            self._ceiling = (1.0 + _RUNAWAY) * max(self.edge, float(self.eigenvalues[0]))
        step, moved = (0.0,) * len(self._parts()), False
        while t_target - self.t > _EPS_T:
            rate = self.eta * max(float(self.eigenvalues[0]), 1e-12)
            dt = _even_step(t_target - self.t, min(self.safety / rate, self.max_dt))
            old = self._parts()
            self._stable_step(dt)
            self.t += dt
            self.steps += 1
            step = tuple(float(torch.linalg.vector_norm(x - y))
                         for x, y in zip(self._parts(), old, strict=True))
            est = self._estimate()
            if self.holds_edge:
                if float(est.values[0]) > self._ceiling:
                    raise FlowRunaway(
                        f"the central flow's sharpness {float(est.values[0]):.6g} rose more "
                        f"than {_RUNAWAY:.0%} above max(2/eta, its start) at t = "
                        f"{self.t:.6g}: the projection does not hold the edge")
                self._project(est, step)
            moved = True
        self.t = float(t_target) if abs(self.t - t_target) <= _EPS_T else self.t
        if moved and self.holds_edge:
            self._settle(step)

    def state_dict(self) -> dict:
        """Everything needed to resume."""
        return {"w": self.w, "t": self.t, "eigenvalues": self.eigenvalues, "sigma": self.sigma,
                "steps": self.steps, "projections": self.projections,
                "shortened": self.shortened, "tracker": self.tracker.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`."""
        self.w = state["w"]
        self.t = float(state["t"])
        self.eigenvalues = state["eigenvalues"]
        self.sigma = np.asarray(state["sigma"])
        self.steps = int(state["steps"])
        self.projections = int(state["projections"])
        self.shortened = int(state["shortened"])
        self.tracker.load_state_dict(state["tracker"])


class CentralFlow(_EdgeFlow):
    """The central flow of gradient descent, discretised as RK4 steps plus projection.

    Parameters
    ----------
    objective : Objective
        The loss.
    eta : float
        GD step size: the edge is ``2 / eta``.
    w0 : torch.Tensor
        Initial parameters.
    tracker : SharpnessTracker
        Top-``k`` eigenpairs (``k >= 2`` lets a second eigenvalue join the edge). The
        flow holds its eigenvalues at ``2/eta`` only as accurately as it estimates them:
        a Ritz value ``theta`` with residual ``r`` lies below its eigenvalue by at most
        ``|r|^2 / delta`` (``delta`` the gap to the eigenvalues outside the block), that
        is ``tol^2 theta^2 / delta`` for a relative residual ``tol``: ``4e-3 / delta`` at
        ``theta = 6.7`` and the ``tol = 1e-2`` that suffices to track the sharpness, but
        ``4e-6 / delta`` at :data:`EDGE_TOL` ``= 3e-4``.
    safety : float
        RK4 step ``dt = safety / (eta lambda_1)`` (in GD steps), as in :class:`GradientFlow`.
    max_dt : float
        Largest step (in GD steps).
    hold_tol : float
        Relative tolerance of the edge at the end of :meth:`advance`: eigenvalues above
        ``(1 + hold_tol) 2/eta`` are projected again, and the flow is at the edge (has a
        ``Sigma``) when an eigenvalue is at or above ``(1 - hold_tol) 2/eta``.
    max_corrections : int
        Largest number of extra projections at the end of :meth:`advance`.

    Notes
    -----
    The central flow is ``dw/dt = -eta [grad L + 1/2 grad <Sigma, H>]`` with
    ``Sigma = U X U^T`` on the eigenspace at ``2/eta``, fixed by complementarity so that
    no eigenvalue exceeds ``2/eta``. Below the edge it is gradient flow. Each step here
    is an RK4 gradient-flow step ``w'`` of length ``dt`` followed by the linearised
    projection onto ``{lambda_i(w) <= 2/eta}``: with ``c_ij = grad (u_i^T H u_j)`` at
    ``w'``, the correction is ``Delta = -sum_ij X_ij c_ij`` where ``X >= 0`` solves

        X >= 0,  G = (2/eta) I - U^T H(w') U + B[X] >= 0,  <X, G> = 0,

    ``B[X]_ij = c_ij . sum_kl X_kl c_kl``: the optimality conditions of the least-norm
    ``Delta`` that brings the linearised ``U^T H U`` below ``2/eta`` (solved by
    :func:`minimal_eos.flows.solve_sigma`). To first order in ``dt`` this equals the
    flow's own correction ``-eta dt / 2 grad <Sigma, H>``.

    At the end of :meth:`advance` the eigenpairs are estimated again at the projected
    point, which is one Newton step on ``lambda_i(w) = 2/eta`` past the last estimate:
    while an eigenvalue still exceeds ``(1 + hold_tol) 2/eta`` (the linearisation's
    second-order remainder), the point is projected again. The recorded eigenvalues
    (:attr:`eigenvalues`, :attr:`sharpness`) are those of that final estimate, at the
    point the flow is at. ``Sigma`` comes from the flow's complementarity problem
    (:func:`central_flow_sigma`) there, over the eigenvectors within 1% of ``2/eta``: an
    eigenvalue the projection holds at the edge can end a little below it (the
    linearisation is poor where two eigenvalues nearly cross) and still carries
    ``Sigma`` when it sharpens. The predicted
    time-averaged loss of GD is ``L(w) + tr(Sigma) / eta`` (with ``S = 2/eta``:
    ``L + 1/2 <Sigma, H>``; ``U`` is orthonormal, so ``tr(Sigma) = tr(X)``).
    """

    def __init__(self, objective: Objective, eta: float, w0: torch.Tensor, *,
                 tracker: SharpnessTracker, safety: float = 1.0, max_dt: float = 4.0,
                 hold_tol: float = 1e-5, max_corrections: int = 3) -> None:
        super().__init__(objective, eta, w0, tracker=tracker, safety=safety, max_dt=max_dt,
                         hold_tol=hold_tol, max_corrections=max_corrections)

    def _stable_step(self, dt: float) -> None:
        self.w = rk4_step(self.objective, self.w, self.eta, dt)

    def _parts(self) -> tuple[torch.Tensor]:
        return (self.w,)

    def _set_parts(self, parts: tuple[torch.Tensor, ...]) -> None:
        (self.w,) = parts

    def _correction(self, u: torch.Tensor, lam: np.ndarray) -> tuple[torch.Tensor]:
        rows = _svec_generators(third_pairs(self.objective, self.w, u))
        x = _solve(rows, np.diag(self.edge - lam), 2.0)
        return (-(torch.as_tensor(svec(x), dtype=rows.dtype, device=rows.device) @ rows),)

    def _edge_sigma(self, u: torch.Tensor) -> np.ndarray:
        return central_flow_sigma(self.objective, self.w, u)


class RMSPropCentralFlow(_EdgeFlow):
    """The central flow of RMSProp on ``(w, nu)``, discretised as RK4 steps plus projection.

    Parameters
    ----------
    objective : Objective
        The loss.
    eta : float
        RMSProp's step size: the edge of ``lambda_max(D H)`` is ``2 / eta``.
    w0, nu0 : torch.Tensor
        Initial parameters and average of squared gradients (same shape; every entry of
        ``nu0`` > 0: start from RMSProp's state after its first steps).
    beta2 : float
        Decay of the average (torch's ``alpha``), in ``[0, 1)``.
    eps : float
        Added to ``sqrt(nu)``, ``> 0``.
    make_tracker : callable
        ``(operator) -> SharpnessTracker`` for an operator ``(w, V) -> A V``; the flow hands
        it ``D^{1/2} H D^{1/2}`` (:func:`validation.adaptive.preconditioned_hvp`, reading
        the flow's current ``nu``), whose eigenvalues are those of ``D H``.
    central : bool
        False: the stable flow alone (``Sigma = 0``: preconditioned gradient flow with the
        average's ODE), which the central flow equals below the edge.
    safety, max_dt, hold_tol, max_corrections
        As in :class:`CentralFlow`, for the eigenvalues of ``D H``.

    Notes
    -----
    With ``p = sqrt(nu) + eps`` and ``D = diag(1 / p)`` (time in RMSProp steps):

        dw/dt  = -eta D [grad L + 1/2 grad <Sigma, H>],
        dnu/dt = (1 - beta2) [grad L^2 + diag(H Sigma H) - nu],

    ``Sigma = U X U^T`` on the generalised eigenvectors ``u_i = D^{1/2} q_i`` at the edge
    (``q_i`` orthonormal eigenvectors of ``D^{1/2} H D^{1/2}``, so ``H u_i = (2/eta)
    D^{-1} u_i`` and ``u_i^T D^{-1} u_j = delta_ij``). The derivation, and the
    complementarity problem fixing ``X`` (:func:`minimal_eos.flows.rmsprop_sigma_problem`,
    ``X >= 0``, ``B + 1/2 A(X) >= 0``, ``<X, B + 1/2 A(X)> = 0``), are in
    :mod:`minimal_eos.flows`; Cohen, Damian, Talwalkar, Kolter, Lee, arXiv 2410.24206,
    section 5.

    Each step is an RK4 step of the stable flow followed by the linearised projection
    onto ``{lambda_i(D H) <= 2/eta}``. Over a step ``dt`` the flow's ``Sigma`` terms move
    the state by ``Delta w = -D sum_kl Z_kl g_kl`` and
    ``Delta nu_m = (1 - beta2) (8/eta^3) p_m sum_kl Z_kl q_km q_lm`` with
    ``Z = (eta dt / 2) X`` and ``g_kl = grad (u_k^T H u_l)``: the correction in the
    preconditioned geometry, the ``nu`` part being the oscillation's own squared gradient
    ``diag(H Sigma H) = (2/eta)^2 p * diag(Q X Q^T)``. These move the critical block
    ``M = Q^T D^{1/2} H D^{1/2} Q`` by ``-A(Z)``, so ``Z`` solves

        Z >= 0,  (2/eta) I - M + A(Z) >= 0,  <Z, (2/eta) I - M + A(Z)> = 0

    (:func:`minimal_eos.flows.solve_sigma` with the operator ``2 A``), as GD's projection
    does with ``A`` its Gram of third derivatives. The time-averaged loss of RMSProp is
    predicted as ``L + 1/2 <Sigma, H> = L + tr(X) / eta``; :attr:`sigma_trace` is
    ``tr(X) = <Sigma, D^{-1}>``, the mean squared oscillation in the metric ``D^{-1}``.
    """

    def __init__(self, objective: Objective, eta: float, w0: torch.Tensor,
                 nu0: torch.Tensor, *, beta2: float, eps: float, make_tracker: Callable,
                 central: bool = True, safety: float = 1.0, max_dt: float = 4.0,
                 hold_tol: float = 1e-5, max_corrections: int = 3) -> None:
        if not (isinstance(beta2, int | float) and 0.0 <= beta2 < 1.0):
            raise ValueError(f"beta2 must lie in [0, 1); got {beta2!r}")
        if not (isinstance(eps, int | float) and math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a finite number > 0; got {eps!r}")
        if nu0.shape != w0.shape or not bool((nu0 > 0).all()) \
                or not bool(torch.isfinite(nu0).all()):
            raise ValueError(f"nu0 must have the shape {tuple(w0.shape)} of w0 and finite "
                             f"entries > 0; got shape {tuple(nu0.shape)}")
        self.beta2 = float(beta2)
        self.eps = float(eps)
        self.nu = nu0.clone()
        self.holds_edge = bool(central)
        tracker = make_tracker(preconditioned_hvp(objective.hvp, self.preconditioner))
        super().__init__(objective, eta, w0, tracker=tracker, safety=safety, max_dt=max_dt,
                         hold_tol=hold_tol, max_corrections=max_corrections)

    def preconditioner(self) -> torch.Tensor:
        """``p = sqrt(nu) + eps`` (``D = diag(1 / p)``)."""
        return self.nu.sqrt() + self.eps

    def _parts(self) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.w, self.nu)

    def _set_parts(self, parts: tuple[torch.Tensor, ...]) -> None:
        self.w, self.nu = parts

    def _rates(self, w: torch.Tensor, nu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.objective.grad(w)
        return -self.eta * g / (nu.sqrt() + self.eps), (1.0 - self.beta2) * (g * g - nu)

    def _stable_step(self, dt: float) -> None:
        """RK4 on ``(w, nu)``, as :func:`rk4_step` on ``w`` alone."""
        w, nu = self._parts()
        k1 = self._rates(w, nu)
        k2 = self._rates(w + 0.5 * dt * k1[0], nu + 0.5 * dt * k1[1])
        k3 = self._rates(w + 0.5 * dt * k2[0], nu + 0.5 * dt * k2[1])
        k4 = self._rates(w + dt * k3[0], nu + dt * k3[1])
        self._set_parts(tuple(x + (dt / 6.0) * (a + 2.0 * b + 2.0 * c + d)
                              for x, a, b, c, d in zip((w, nu), k1, k2, k3, k4, strict=True)))

    def _problem(self, q: torch.Tensor) -> tuple:
        """``p``, the rows ``g_ij`` and ``q_i q_j`` (as tensors), ``A`` and ``svec(B)``."""
        p = self.preconditioner()
        u = q * p.rsqrt()[:, None]
        ghat = _svec_generators(third_pairs(self.objective, self.w, u))
        m = q.shape[1]
        qq = torch.stack([torch.stack([q[:, i] * q[:, j] for j in range(m)]) for i in range(m)])
        qhat = _svec_generators(qq)

        def arr(x: torch.Tensor) -> np.ndarray:
            return x.double().cpu().numpy()

        gram, b = rmsprop_sigma_problem(arr(ghat), arr(qhat), arr(self.objective.grad(self.w)),
                                        arr(self.nu), self.eta, self.beta2, self.eps)
        return p, ghat, qhat, gram, b

    def _correction(self, q: torch.Tensor, lam: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        p, ghat, qhat, gram, _ = self._problem(q)
        z = torch.as_tensor(svec(solve_sigma(2.0 * gram, np.diag(self.edge - lam)).x),
                            dtype=ghat.dtype, device=ghat.device)
        return (-(z @ ghat) / p,
                (1.0 - self.beta2) * (8.0 / self.eta**3) * p * (z @ qhat))


    def _edge_sigma(self, q: torch.Tensor) -> np.ndarray:
        _, _, _, gram, b = self._problem(q)
        return solve_sigma(gram, smat(b, q.shape[1])).x

    def state_dict(self) -> dict:
        """Everything needed to resume."""
        return {**super().state_dict(), "nu": self.nu}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`."""
        super().load_state_dict(state)
        self.nu = state["nu"]


class ConstrainedTrajectory:
    """Projected gradient descent onto the stable set (Damian et al., arXiv 2209.15594).

    Parameters
    ----------
    objective : Objective
        The loss.
    eta : float
        Step size.
    w0 : torch.Tensor
        Starting point (GD's iterate at the onset of the edge of stability).
    tracker : SharpnessTracker
        Top eigenpair (``k = 1`` is enough).

    Notes
    -----
    ``w+ = proj_M(w - eta grad L(w))`` with
    ``M = {S(w) <= 2/eta, grad L(w) . u(w) = 0}``. The projection is one Gauss-Newton
    step on the active constraints, linearised with Jacobians ``S u`` (for
    ``grad L . u``; the rotation of ``u`` is neglected) and ``grad S = nabla^3 L[u, u]``:
    ``Delta = -J^T (J J^T)^{-1} r``.
    """

    def __init__(self, objective: Objective, eta: float, w0: torch.Tensor, *,
                 tracker: SharpnessTracker) -> None:
        self.objective = objective
        self.eta = float(eta)
        self.tracker = tracker
        self.w = w0.clone()
        self.t = 0.0
        self.sharpness = float("nan")
        self.w = self._project(self.w)

    def _project(self, w: torch.Tensor) -> torch.Tensor:
        est = self.tracker.estimate(w)
        lam, u = est.values[0], est.vectors[:, 0]
        self.sharpness = float(lam)
        g = self.objective.grad(w)
        rows, res = [lam * u], [torch.dot(g, u)]
        if float(lam) > 2.0 / self.eta:
            rows.append(self.objective.third(w, u))
            res.append(lam - 2.0 / self.eta)
        jac = torch.stack(rows)
        r = torch.stack(res)
        return w - jac.T @ torch.linalg.solve(jac @ jac.T, r)

    def step(self) -> None:
        """One projected GD step."""
        self.w = self._project(self.w - self.eta * self.objective.grad(self.w))
        self.t += 1.0

    def state_dict(self) -> dict:
        """Everything needed to resume."""
        return {"w": self.w, "t": self.t, "sharpness": self.sharpness,
                "tracker": self.tracker.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`."""
        self.w = state["w"]
        self.t = float(state["t"])
        self.sharpness = float(state["sharpness"])
        self.tracker.load_state_dict(state["tracker"])
