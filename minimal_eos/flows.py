"""Gradient flow and the central flow of gradient descent, for any model of the library.

Time is counted in GD steps: ``dw/dt = -eta grad L`` is gradient flow, and the central flow
of GD with step size ``eta`` is

    dw/dt = -eta [ grad L(w) + 1/2 grad_w < Sigma(t), H(w) > ],

with ``Sigma`` positive semidefinite, supported on the Hessian's eigenvectors at ``2/eta``,
and fixed by a complementarity problem that keeps every eigenvalue at or below ``2/eta``
(:func:`solve_sigma`). Below the edge ``Sigma = 0`` and the central flow is gradient flow;
with one eigenvalue at the edge ``Sigma = sigma^2 u u^T`` with
``sigma^2 = 2 max(0, -grad L . grad S) / |grad S|^2``, and the flow is gradient flow
projected onto ``{grad S . dw = 0}``. GD's time-averaged loss is predicted as
``L(w) + tr(Sigma) / eta``.

References
----------
Cohen, Damian, Talwalkar, Kolter, Lee, "Understanding optimization in deep learning with
central flows", arXiv 2410.24206, section 3 (gradient descent), and section 5 (RMSProp,
below).

The central flow of RMSProp
---------------------------
RMSProp (torch's convention, no momentum) is

    nu_{t+1} = beta2 nu_t + (1 - beta2) g_t^2,   w_{t+1} = w_t - eta D_{t+1} g_t,
    D = diag(1 / (sqrt(nu) + eps)),

preconditioned GD whose preconditioner follows the squared gradient. With D frozen it is
GD on the quadratic model in the metric D^{-1}: stable iff the preconditioned sharpness
S_P = lambda_max(D H) = lambda_max(D^{1/2} H D^{1/2}) is below 2 / eta. At RMSProp's edge
the iterate oscillates along the top generalised eigenvector u of H u = S_P D^{-1} u
(normalised by u^T D^{-1} u = 1): w_t = w(t) + x_t u with x_t flipping sign, E[x] = 0,
E[x^2] = sigma^2, Sigma = E[(w_t - w)(w_t - w)^T] = sigma^2 u u^T (or U X U^T when several
eigenvalues are at the edge). Averaging the expansion

    g(w + x u) = grad L + x H u + x^2 / 2 D^3 L[u, u] + O(x^3)

over the oscillation gives the two averaged quantities the flow needs:

    E[g]   = grad L + 1/2 grad <Sigma, H>            (as for GD),
    E[g^2] = grad L^2 + diag(H Sigma H) + O(x^3)      (the oscillation's own squared gradient).

The paper's RMSProp central flow (2410.24206, section 5, the RMSProp counterpart of its
eq. (4)-(5); time in steps, the EMA's continuous form d nu/dt = (1 - beta2)(E[g^2] - nu))
is then

    dw/dt  = -eta D(nu) [grad L(w) + 1/2 grad_w <Sigma, H(w)>],
    dnu/dt = (1 - beta2) [grad L(w)^2 + diag(H Sigma H) - nu],

with Sigma PSD, supported on the generalised eigenvectors at the edge, and fixed by the
complementarity problem keeping S_P <= 2/eta. Its linear part in Sigma comes from two
routes: the third derivative moves H (as for GD), and the oscillation's squared gradient
raises nu, which shrinks D and so lowers S_P; the second route acts even on a quadratic.
With q_i = D^{-1/2} u_i the orthonormal eigenvectors of K = D^{1/2} H D^{1/2} and U frozen,
the critical block M = Q^T K Q moves as

    dM_ij/dt = g_ij . dw/dt + (lambda_i + lambda_j)/2 sum_m q_im q_jm c_m dnu_m/dt,
    g_ij = D^3 L[u_i, u_j],   c_m = d log D_m / d nu_m = -1 / (2 sqrt(nu_m)(sqrt(nu_m) + eps)),

and, at the edge (lambda_i = 2/eta, H u_i = (2/eta) D^{-1} u_i), dM/dt = -eta (B + 1/2 A(X)):

    B_ij = g_ij . D grad L + (2/eta^2)(1 - beta2) sum_m q_im q_jm w_m (grad L_m^2 - nu_m),
    A(X)_ij = g_ij . D sum_kl X_kl g_kl
              + (16/eta^4)(1 - beta2) sum_m q_im q_jm w_m p_m sum_kl X_kl q_km q_lm,

with w_m = -c_m > 0 and p_m = sqrt(nu_m) + eps. A is a sum of two Gram operators, PSD,
so the problem is :func:`solve_sigma`'s, with the same Baumgarte stiffness as GD's flow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from ._checks import as_float_array, choice, in_interval, positive_float, positive_int
from .models.base import Model
from .optimizers import RMSProp

# ---------------------------------------------------------------------------------------
# the complementarity problem on the critical eigenspace
# ---------------------------------------------------------------------------------------


def _svec_pairs(k: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(k) for j in range(i, k)]


def svec(mat: np.ndarray) -> np.ndarray:
    """Symmetric ``(k, k)`` matrix -> vector of its upper triangle, off-diagonals times sqrt 2.

    With this scaling ``<X, Y> = svec(X) . svec(Y)``.
    """
    k = mat.shape[0]
    return np.array([mat[i, j] * (1.0 if i == j else np.sqrt(2.0)) for i, j in _svec_pairs(k)])


def smat(vec: np.ndarray, k: int) -> np.ndarray:
    """Inverse of :func:`svec`."""
    out = np.empty((k, k))
    for m, (i, j) in enumerate(_svec_pairs(k)):
        v = vec[m] if i == j else vec[m] / np.sqrt(2.0)
        out[i, j] = out[j, i] = v
    return out


@dataclass(frozen=True)
class SigmaSolution:
    """Solution of the complementarity problem (see :func:`solve_sigma`).

    Attributes
    ----------
    x
        The ``(k, k)`` PSD matrix ``X`` (``Sigma = U X U^T``).
    dual
        ``Y = B + 1/2 A(X)``, PSD at the solution, with ``<X, Y> = 0``.
    kkt
        ``max(-lambda_min(X), -lambda_min(Y), |<X, Y>|)`` relative to the problem's scale.
    method
        ``"closed-form"`` (``k = 1``), ``"interior"`` (the unconstrained minimiser is PSD),
        or ``"interior-point+face"`` (the face found by an interior point method, then the
        exact solve on it).
    """

    x: np.ndarray
    dual: np.ndarray
    kkt: float
    method: str


def solve_sigma(
    gram: np.ndarray, b: np.ndarray, *, tol: float = 1e-10, max_iter: int = 100
) -> SigmaSolution:
    """Solve ``X >= 0, Y = b + 1/2 A(X) >= 0, <X, Y> = 0`` for a symmetric ``(k, k)`` matrix ``X``.

    Parameters
    ----------
    gram
        The operator ``A`` in :func:`svec` coordinates, a PSD matrix of shape ``(n, n)``,
        ``n = k (k + 1) / 2``: ``svec(A(X)) = gram @ svec(X)``.
    b
        The symmetric ``(k, k)`` matrix ``B``.
    tol
        Target accuracy of the KKT conditions, relative to the problem's scale.
    max_iter
        Largest number of interior-point iterations.

    Returns
    -------
    SigmaSolution

    Notes
    -----
    These are the optimality conditions of the convex problem
    ``min_{X PSD} f(X) = 1/4 <X, A(X)> + <B, X>`` (its gradient is ``Y``), so the solution
    exists and is unique when ``A`` is positive definite. ``k = 1`` is closed form,
    ``X = max(0, -2 b / A)``. Otherwise: if the unconstrained minimiser
    ``X = -2 A^{-1} B`` is PSD it is the solution (``Y = 0``); else a primal-dual interior
    point method finds the face of the PSD cone holding the solution, the problem restricted
    to that face (``X = V Z V^T``, ``Z`` free) is solved exactly by one linear solve, and
    the result is accepted when it satisfies the KKT conditions to ``tol``. When ``A`` is
    singular ``X`` need not be unique, but the force ``sum X_ij g_ij`` is.
    """
    bmat = as_float_array(b, "b", ndim=2)
    k = bmat.shape[0]
    n = k * (k + 1) // 2
    q = 0.5 * as_float_array(gram, "gram", ndim=2)  # Hessian of f in svec coordinates
    if bmat.shape != (k, k) or q.shape != (n, n):
        raise ValueError(f"b must be (k, k) and gram (n, n) with n = k (k + 1) / 2; got "
                         f"{bmat.shape} and {q.shape}")
    bv = svec(0.5 * (bmat + bmat.T))
    scale = max(np.abs(bv).max(), 1e-300)
    natural_x = scale / max(np.abs(q).max(), 1e-300)  # the size of X that balances B

    def finish(xv: np.ndarray, method: str) -> SigmaSolution:
        xm = smat(xv, k)
        ym = smat(q @ xv + bv, k)
        xs = max(np.abs(xv).max(), natural_x)
        kkt = max(-np.linalg.eigvalsh(xm)[0] / xs, -np.linalg.eigvalsh(ym)[0] / scale,
                  abs(xv @ (q @ xv + bv)) / (scale * xs))
        return SigmaSolution(xm, ym, float(max(kkt, 0.0)), method)

    if np.abs(q).max() == 0.0:
        return finish(np.zeros(n), "closed-form")  # no third derivative: only X = 0 is bounded
    if k == 1:
        a = q[0, 0]
        xv = np.array([max(0.0, -bv[0] / a)]) if a > 0 else np.zeros(1)
        return finish(xv, "closed-form")
    if np.linalg.eigvalsh(smat(bv, k))[0] >= 0:
        return finish(np.zeros(n), "closed-form")  # B PSD: X = 0, Y = B
    x_free = np.linalg.lstsq(q, -bv, rcond=None)[0]
    if np.linalg.eigvalsh(smat(x_free, k))[0] >= 0:
        sol = finish(x_free, "interior")
        if sol.kkt <= tol:
            return sol
    scale_x = max(np.abs(x_free).max(), np.abs(bv).max() / np.abs(q).max())
    best = None
    for start in (10.0, 1000.0):
        xv, polished = _interior_point(q, bv, k, tol, max_iter, start * scale_x)
        sol = finish(polished if polished is not None else xv, "interior-point+face")
        if sol.kkt <= tol:
            return sol
        best = sol if best is None or sol.kkt < best.kkt else best
    return best


def _max_step(m: np.ndarray, dm: np.ndarray) -> float:
    """Largest ``s`` with ``m + s dm`` positive definite (``m`` positive definite)."""
    try:
        lc = np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        return 0.0
    li = np.linalg.inv(lc)
    lam = np.linalg.eigvalsh(li @ dm @ li.T)[0]
    return np.inf if lam >= 0 else -1.0 / lam


def _interior_point(q, bv, k, tol, max_iter, scale_x):
    """Infeasible primal-dual interior point (AHO direction, Mehrotra predictor-corrector).

    Unknowns ``X, Y`` PD with residual ``r = q svec(X) + b - svec(Y)``; the Newton step
    solves ``dY = q dX + r`` and ``sym(X dY + dX Y) = sigma mu I - sym(X Y)`` (plus the
    second-order correction). Starts at ``X = scale_x I``, ``Y = |b| I`` (dominating the
    solution, as infeasible methods need). Once the gap is below ``1e-7`` of the scale it
    tries the exact face solve after every iteration; returns ``(svec X, face solution or
    None)``.
    """
    n = bv.size
    bscale = np.abs(bv).max()
    eye = np.eye(k)
    # a tiny ridge keeps the Newton system regular when the gram matrix is singular; the
    # face solve below uses the exact q
    qr = q + 1e-13 * np.trace(q) / n * np.eye(n)
    xm = scale_x * eye
    ym = 10.0 * bscale * eye
    basis = [smat(e, k) for e in np.eye(n)]
    qbasis = [smat(qr @ e, k) for e in np.eye(n)]
    for _ in range(max_iter):
        xv = svec(xm)
        rp = qr @ xv + bv - svec(ym)
        mu = np.sum(xm * ym) / k
        size = max(np.abs(xv).max(), scale_x * 1e-3)
        if mu <= 1e-7 * bscale * size and np.abs(rp).max() <= 1e-7 * bscale:
            polished = _face_polish(q, bv, k, xv, tol)
            if polished is not None:
                return xv, polished
            if mu <= tol * bscale * size:
                break
        jac = np.array([svec(0.5 * (xm @ qe + qe @ xm + e @ ym + ym @ e))
                        for e, qe in zip(basis, qbasis, strict=True)]).T
        rpm = smat(rp, k)
        base = -0.5 * (xm @ ym + ym @ xm) - 0.5 * (xm @ rpm + rpm @ xm)
        try:
            dxa = smat(np.linalg.solve(jac, svec(base)), k)
        except np.linalg.LinAlgError:
            break
        dya = smat(qr @ svec(dxa) + rp, k)
        a = min(1.0, _max_step(xm, dxa), _max_step(ym, dya))
        sigma = (np.sum((xm + a * dxa) * (ym + a * dya)) / k / mu) ** 3
        rhs = base + sigma * mu * eye - 0.5 * (dxa @ dya + dya @ dxa)
        dx = smat(np.linalg.solve(jac, svec(rhs)), k)
        dy = smat(qr @ svec(dx) + rp, k)
        xm = xm + min(1.0, 0.95 * _max_step(xm, dx)) * dx
        ym = ym + min(1.0, 0.95 * _max_step(ym, dy)) * dy
    return svec(xm), None


def _face_polish(q, bv, k, xv, tol):
    """Exact minimiser of ``f`` on the face ``{V Z V^T}`` spanned by ``X``'s large eigenvectors.

    Accepted only if ``Z`` and ``Y`` are PSD and ``<X, Y> = 0`` to ``tol``; otherwise ``None``.
    """
    vals, vecs = np.linalg.eigh(smat(xv, k))
    for thresh in (1e-6, 1e-4, 1e-8, 1e-2):
        keep = vals > thresh * max(vals[-1], 1e-300)
        r = int(keep.sum())
        if r == 0:
            continue
        v = vecs[:, keep]
        basis = [smat(e, r) for e in np.eye(r * (r + 1) // 2)]
        p = np.array([svec(v @ e @ v.T) for e in basis]).T  # svec(V Z V^T) = p svec(Z)
        z = np.linalg.lstsq(p.T @ q @ p, -(p.T @ bv), rcond=None)[0]
        cand = p @ z
        ok_x = np.linalg.eigvalsh(smat(z, r))[0] >= -tol * max(np.abs(z).max(), 1.0)
        ok_y = np.linalg.eigvalsh(smat(q @ cand + bv, k))[0] >= -tol * np.abs(bv).max()
        ok_c = abs(cand @ (q @ cand + bv)) <= tol * np.abs(bv).max() * max(np.abs(cand).max(), 1.0)
        if ok_x and ok_y and ok_c:
            return cand
    return None


# ---------------------------------------------------------------------------------------
# the central flow's velocity
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CentralVelocity:
    """The central flow's velocity at one point and the ``Sigma`` that produced it.

    Attributes
    ----------
    velocity
        ``dw/dt`` (time in steps).
    sigma
        ``Sigma = U X U^T``, shape ``(dim, dim)``.
    eigenvalues
        The Hessian's eigenvalues in the critical set (descending).
    kkt
        Accuracy of the complementarity solution (0 when no eigenvalue is critical).
    """

    velocity: np.ndarray
    sigma: np.ndarray
    eigenvalues: np.ndarray
    kkt: float

    @property
    def sigma2(self) -> float:
        """``tr(Sigma)``: the predicted mean squared oscillation."""
        return float(np.trace(self.sigma))


class _Evaluator:
    """Calls a model's compiled kernels on one point without the public methods' checks."""

    def __init__(self, model: Model) -> None:
        d = model.dim
        self.kernels = model.kernels()
        self.p = model.param_vector()
        self.col = np.empty((d, 1))
        self.dirn = np.empty((d, 1))
        self.vec = np.empty((d, 1))
        self.mat = np.empty((d, d, 1))
        self.num = np.empty(1)

    def at(self, theta: np.ndarray) -> _Evaluator:
        self.col[:, 0] = theta
        return self

    def loss(self) -> float:
        self.kernels.loss(self.col, 0, 1, self.p, self.num)
        return float(self.num[0])

    def grad(self) -> np.ndarray:
        self.kernels.grad(self.col, 0, 1, self.p, self.vec)
        return self.vec[:, 0].copy()

    def hessian(self) -> np.ndarray:
        self.kernels.hess(self.col, 0, 1, self.p, self.mat)
        return self.mat[:, :, 0].copy()

    def sharpness(self) -> float:
        self.kernels.sharp(self.col, 0, 1, self.p, self.num)
        return float(self.num[0])

    def third(self, u: np.ndarray) -> np.ndarray:
        self.dirn[:, 0] = u
        self.kernels.dir3(self.col, self.dirn, 0, 1, self.p, self.vec)
        return self.vec[:, 0].copy()

    def third_bilinear(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``D^3 L[a, b]`` by polarisation: ``(D^3 L[a+b, a+b] - D^3 L[a-b, a-b]) / 4``."""
        return 0.25 * (self.third(a + b) - self.third(a - b))


def central_velocity(
    model: Model,
    theta,
    eta: float,
    *,
    stiffness: float = 0.5,
    window: float = 0.1,
    max_critical: int = 3,
) -> CentralVelocity:
    """The central flow's velocity ``-eta [grad L + 1/2 grad <Sigma, H>]`` at ``theta``.

    Parameters
    ----------
    model, theta
        Any model and one point.
    eta
        GD's step size.
    stiffness
        ``kappa`` (per step) of the constraint stabilisation below; 0 gives the exact
        complementarity problem (then use a tiny ``window``: with ``kappa = 0`` a critical
        eigenvalue below the edge is held where it is).
    window
        Eigenvalues above ``(1 - window) 2/eta`` are critical candidates. With
        ``kappa > 0`` one outside the window may rise at most at rate
        ``kappa window 2/eta`` per step without being missed.
    max_critical
        At most this many (the largest) enter the complementarity problem.

    Notes
    -----
    Let ``U = (u_1 .. u_k)`` be the critical eigenvectors, ``g_ij = D^3 L[u_i, u_j]``
    (``= grad_w (u_i^T H u_j)``) and ``Sigma = U X U^T``. Then
    ``grad <Sigma, H> = sum_ij X_ij g_ij`` and, with ``U`` frozen, the critical block
    ``M = U^T H U`` moves as ``dM/dt = -eta (B + 1/2 A(X))``, ``B_ij = g_ij . grad L``,
    ``A(X)_ij = g_ij . sum_kl X_kl g_kl``. The central flow asks
    ``X >= 0``, ``dM/dt <= -kappa (M - 2/eta I)``, and complementarity
    (:func:`solve_sigma` with ``B - (kappa/eta) (M - 2/eta I)``). With ``kappa = 0`` this is
    the paper's condition ``dM/dt <= 0`` on the edge; ``kappa > 0`` (Baumgarte
    stabilisation) vanishes on the exact flow, keeps the numerically integrated eigenvalues
    on ``2/eta`` instead of drifting, and lets a critical eigenvalue approach the edge from
    below at most at rate ``kappa`` gap (no overshoot). It is the continuous form of the
    discrete rule "choose Sigma so that the eigenvalues after a step of length ``1/kappa``
    stay <= 2/eta". With one critical eigenvalue, ``X = sigma^2 = 2 max(0, alpha') / beta``,
    ``alpha' = -grad L . grad S + (kappa/eta)(2/eta - S)``.
    Cohen, Damian, Talwalkar, Kolter, Lee, arXiv 2410.24206, section 3.
    """
    _check_model(model)
    theta = model.check_theta(theta)
    eta = positive_float(eta, "eta")
    stiffness = positive_float(stiffness, "stiffness", allow_zero=True)
    window = in_interval(window, "window", 0.0, 1.0)
    max_critical = positive_int(max_critical, "max_critical")
    return _central_velocity(_Evaluator(model).at(theta), eta, stiffness, window, max_critical)


def _central_velocity(ev: _Evaluator, eta, stiffness, window, max_critical) -> CentralVelocity:
    h = ev.hessian()
    vals, vecs = np.linalg.eigh(h)
    edge = 2.0 / eta
    gl = ev.grad()
    d = gl.size
    crit = [i for i in range(d - 1, max(d - 1 - max_critical, -1), -1)
            if vals[i] >= (1.0 - window) * edge]
    if not crit:
        return CentralVelocity(-eta * gl, np.zeros((d, d)), np.zeros(0), 0.0)
    u = vecs[:, crit]
    k = len(crit)
    shift = (stiffness / eta) * (vals[crit] - edge)
    if k == 1:
        g = ev.third(u[:, 0])
        gg = g @ g
        x = max(0.0, -2.0 * (g @ gl - shift[0]) / gg) if gg > 0 else 0.0
        sigma = x * np.outer(u[:, 0], u[:, 0])
        return CentralVelocity(-eta * (gl + 0.5 * x * g), sigma, vals[crit], 0.0)
    pairs = _svec_pairs(k)
    ghat = np.array([ev.third(u[:, i]) if i == j
                     else np.sqrt(2.0) * ev.third_bilinear(u[:, i], u[:, j]) for i, j in pairs])
    bmat = np.zeros((k, k))
    for m, (i, j) in enumerate(pairs):
        bmat[i, j] = bmat[j, i] = ghat[m] @ gl / (1.0 if i == j else np.sqrt(2.0))
    bmat -= np.diag(shift)
    sol = solve_sigma(ghat @ ghat.T, bmat)
    force = svec(sol.x) @ ghat
    return CentralVelocity(-eta * (gl + 0.5 * force), u @ sol.x @ u.T, vals[crit], sol.kkt)


# ---------------------------------------------------------------------------------------
# integration
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowResult:
    """A flow integrated over ``[0, steps]`` (time in GD steps).

    Attributes
    ----------
    eta
        GD's step size.
    t
        Record times, shape ``(R,)``.
    theta
        The flow at those times, shape ``(R, dim)``.
    loss, sharpness
        ``L(w(t))`` and ``S(w(t))``, shape ``(R,)``.
    sigma2
        ``tr(Sigma(t))`` (zeros for gradient flow).
    predicted_loss
        GD's predicted time-averaged loss ``L(w) + tr(Sigma) / eta``.
    n_critical
        Rank of ``Sigma`` (number of eigenvalues held at the edge).
    kkt
        Largest complementarity residual met at the records.
    success, message, nfev
        From :func:`scipy.integrate.solve_ivp`.
    """

    eta: float
    t: np.ndarray
    theta: np.ndarray
    loss: np.ndarray
    sharpness: np.ndarray
    sigma2: np.ndarray
    predicted_loss: np.ndarray
    n_critical: np.ndarray
    kkt: float
    success: bool
    message: str
    nfev: int


def _record_times(steps: float, records: int | None, t_eval) -> np.ndarray:
    if t_eval is not None:
        t = as_float_array(t_eval, "t_eval", ndim=1)
        if t.size == 0 or np.any(np.diff(t) <= 0) or t[0] < 0 or t[-1] > steps:
            raise ValueError(f"t_eval must be increasing times in [0, {steps}]")
        return t
    records = positive_int(records if records is not None else 201, "records", minimum=2)
    return np.linspace(0.0, steps, records)


def _integrate(theta0, steps, rhs, t, rtol, atol, method, max_step, bound, ceiling=None):
    """``solve_ivp`` with a terminal event when a coordinate leaves ``[-bound, bound]``.

    ``ceiling = (sharpness, s_max)`` adds a terminal event when ``sharpness(w)`` rises past
    ``s_max``.
    """

    def escape(_t, w):
        return bound - np.max(np.abs(w))

    escape.terminal = True
    events = [escape]
    if ceiling is not None:
        sharpness, s_max = ceiling

        def above(_t, w):
            return s_max - sharpness(w)

        above.terminal = True
        above.direction = -1
        events.append(above)
    sol = solve_ivp(rhs, (0.0, float(steps)), theta0, method=method, t_eval=t, rtol=rtol,
                    atol=atol, max_step=max_step, events=events)
    if sol.status == 1:
        sol.success = False
        if sol.t_events[0].size:
            sol.message = (f"the flow left |w| <= {bound:g} at t = {sol.t_events[0][0]:.6g} "
                           f"(records stop there)")
        else:
            sol.message = (f"the sharpness rose past {s_max:.6g} = (1 + edge_tol) 2/eta at "
                           f"t = {sol.t_events[1][0]:.6g}: the central flow holds it at or "
                           f"below 2/eta, so this is not the central flow (records stop there)")
    return sol


def gradient_flow(
    model: Model,
    theta0,
    steps: float,
    *,
    eta: float,
    records: int | None = None,
    t_eval=None,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    method: str = "Radau",
    divergence_bound: float = 1e8,
) -> FlowResult:
    """Gradient flow ``dw/dt = -eta grad L(w)`` over ``steps`` GD steps of time.

    Parameters
    ----------
    model, theta0
        Any model and the initial point.
    steps
        Length of time, in GD steps (``t = k`` compares with GD's ``k``-th iterate).
    eta
        GD's step size (sets the time scale).
    records, t_eval
        Number of evenly spaced records (default 201), or the record times themselves.
    rtol, atol, method
        Passed to :func:`scipy.integrate.solve_ivp` (the flow is stiff when ``eta S`` is of
        order one, hence the implicit Radau default).
    divergence_bound
        Integration stops (``success = False``, records end there) when a coordinate
        leaves ``[-bound, bound]``, e.g. at a cubic loss's finite-time blow-up.
    """
    _check_model(model)
    th = model.check_theta(theta0, "theta0")
    steps = positive_float(steps, "steps")
    eta = positive_float(eta, "eta")
    method = choice(method, "method", ("Radau", "BDF", "LSODA", "RK45", "DOP853"))
    t = _record_times(steps, records, t_eval)
    ev = _Evaluator(model)
    bound = positive_float(divergence_bound, "divergence_bound")
    sol = _integrate(th, steps, lambda _t, w: -eta * ev.at(w).grad(), t, rtol, atol, method,
                     np.inf, bound)
    ths = sol.y.T
    loss = np.array([ev.at(w).loss() for w in ths])
    sharp = np.array([ev.at(w).sharpness() for w in ths])
    return FlowResult(eta, sol.t, ths, loss, sharp, np.zeros(len(ths)), loss.copy(),
                      np.zeros(len(ths), dtype=np.int64), 0.0, bool(sol.success), sol.message,
                      int(sol.nfev))


def central_flow(
    model: Model,
    theta0,
    steps: float,
    *,
    eta: float,
    records: int | None = None,
    t_eval=None,
    stiffness: float = 0.5,
    window: float = 0.1,
    max_critical: int = 3,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    method: str = "Radau",
    max_step: float | None = None,
    divergence_bound: float = 1e8,
    edge_tol: float = 1e-3,
) -> FlowResult:
    """The central flow of GD with step size ``eta``, over ``steps`` GD steps of time.

    Parameters
    ----------
    model, theta0
        Any model and the initial point.
    steps
        Length of time, in GD steps.
    eta
        GD's step size.
    records, t_eval
        Number of evenly spaced records (default 201), or the record times themselves.
    stiffness, window, max_critical
        See :func:`central_velocity`. ``max_critical`` eigenvalues at most are held at
        the edge at once.
    rtol, atol, method
        Passed to :func:`scipy.integrate.solve_ivp`. The flow is stiff (along the edge
        direction it relaxes at rate ``eta S = 2`` per step), hence the implicit Radau
        default. The right-hand side has kinks where an eigenvalue joins or leaves the
        edge; adaptive step control resolves them.
    max_step
        Largest integration step (default: unbounded).
    divergence_bound
        Integration stops (``success = False``, records end there) when a coordinate
        leaves ``[-bound, bound]``.
    edge_tol
        Integration also stops when the sharpness rises past ``(1 + edge_tol) 2/eta``.
        The flow holds every eigenvalue at or below ``2/eta`` (to about ``rtol``), so a
        sharpness above it means the right-hand side is wrong or ``rtol`` far too loose;
        stopping there reports it at once instead of integrating a runaway.

    Returns
    -------
    FlowResult
        With ``sigma2 = tr(Sigma)`` and ``predicted_loss = L + tr(Sigma) / eta``, GD's
        predicted time-averaged loss.

    Notes
    -----
    ``dw/dt = -eta [grad L(w) + 1/2 grad_w <Sigma, H(w)>]``, ``Sigma`` from
    :func:`central_velocity`. Below the edge this is gradient flow. With one eigenvalue at
    the edge, ``sigma^2 = 2 alpha / beta`` with ``alpha = -grad L . grad S`` and
    ``beta = |grad S|^2``. Time-averaged GD: ``E[L] ~ L(w) + tr(Sigma) / eta`` (the
    quadratic term ``1/2 <H, Sigma>`` with ``H = 2/eta`` on the support of ``Sigma``).
    Cohen, Damian, Talwalkar, Kolter, Lee, arXiv 2410.24206.

    Examples
    --------
    >>> from minimal_eos.models import CubicModel
    >>> m = CubicModel.at_edge(eta=0.1, alpha=1.0, beta=4.0)
    >>> res = central_flow(m, m.center, 50.0, eta=0.1, records=3)
    >>> [round(float(s), 6) for s in res.sigma2]   # 2 alpha / beta
    [0.5, 0.5, 0.5]
    """
    _check_model(model)
    th = model.check_theta(theta0, "theta0")
    steps = positive_float(steps, "steps")
    eta = positive_float(eta, "eta")
    stiffness = positive_float(stiffness, "stiffness", allow_zero=True)
    window = in_interval(window, "window", 0.0, 1.0)
    max_critical = positive_int(max_critical, "max_critical")
    method = choice(method, "method", ("Radau", "BDF", "LSODA", "RK45", "DOP853"))
    t = _record_times(steps, records, t_eval)
    max_step = np.inf if max_step is None else positive_float(max_step, "max_step")
    ev = _Evaluator(model)

    def rhs(_t, w):
        return _central_velocity(ev.at(w), eta, stiffness, window, max_critical).velocity

    bound = positive_float(divergence_bound, "divergence_bound")
    s_max = (1.0 + positive_float(edge_tol, "edge_tol")) * 2.0 / eta
    sol = _integrate(th, steps, rhs, t, rtol, atol, method, max_step, bound,
                     ceiling=(lambda w: ev.at(w).sharpness(), s_max))
    ths = sol.y.T
    info = [_central_velocity(ev.at(w), eta, stiffness, window, max_critical) for w in ths]
    loss = np.array([ev.at(w).loss() for w in ths])
    sharp = np.array([ev.at(w).sharpness() for w in ths])
    sigma2 = np.array([v.sigma2 for v in info])
    rank = np.array([int(np.sum(np.linalg.eigvalsh(v.sigma) > 1e-12 * max(v.sigma2, 1e-300)))
                     if v.sigma2 > 0 else 0 for v in info], dtype=np.int64)
    kkt = max((v.kkt for v in info), default=0.0)
    return FlowResult(eta, sol.t, ths, loss, sharp, sigma2, loss + sigma2 / eta, rank,
                      float(kkt), bool(sol.success), sol.message, int(sol.nfev))


def _check_model(model) -> None:
    if not isinstance(model, Model):
        raise ValueError(f"model must be a minimal_eos Model; got {type(model).__name__}")


# ---------------------------------------------------------------------------------------
# the central flow of RMSProp
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RMSPropVelocity:
    """The RMSProp central flow's velocity at one state ``(w, nu)``.

    Attributes
    ----------
    velocity
        ``dw/dt`` (time in steps).
    nu_rate
        ``dnu/dt``.
    sigma
        ``Sigma = U X U^T`` in weight space, shape ``(dim, dim)``.
    eigenvalues
        The critical eigenvalues of ``D H`` (descending).
    kkt
        Accuracy of the complementarity solution (0 when no eigenvalue is critical).
    """

    velocity: np.ndarray
    nu_rate: np.ndarray
    sigma: np.ndarray
    eigenvalues: np.ndarray
    kkt: float


def _rmsprop_velocity(ev: _Evaluator, nu, eta, beta2, eps, stiffness, window, max_critical):
    h = ev.hessian()
    gl = ev.grad()
    d = gl.size
    p = np.sqrt(nu) + eps
    s = 1.0 / np.sqrt(p)
    vals, vecs = np.linalg.eigh(h * np.outer(s, s))
    edge = 2.0 / eta
    crit = [i for i in range(d - 1, max(d - 1 - max_critical, -1), -1)
            if vals[i] >= (1.0 - window) * edge]
    free_nu = (1.0 - beta2) * (gl * gl - nu)
    if not crit:
        return RMSPropVelocity(-eta * gl / p, free_nu, np.zeros((d, d)), np.zeros(0), 0.0)
    q = vecs[:, crit]
    u = q * s[:, None]
    k = len(crit)
    pairs = _svec_pairs(k)
    root2 = [1.0 if i == j else np.sqrt(2.0) for i, j in pairs]
    ghat = np.array([ev.third(u[:, i]) if i == j
                     else r * ev.third_bilinear(u[:, i], u[:, j])
                     for (i, j), r in zip(pairs, root2, strict=True)])
    qhat = np.array([r * q[:, i] * q[:, j] for (i, j), r in zip(pairs, root2, strict=True)])
    gram, bvec = rmsprop_sigma_problem(ghat, qhat, gl, nu, eta, beta2, eps)
    bmat = smat(bvec, k) - np.diag((stiffness / eta) * (vals[crit] - edge))
    sol = solve_sigma(gram, bmat)
    force = svec(sol.x) @ ghat
    sigma = u @ sol.x @ u.T
    hsh = np.einsum("ij,jk,ik->i", h, sigma, h)
    return RMSPropVelocity(-eta * (gl + 0.5 * force) / p, free_nu + (1.0 - beta2) * hsh, sigma,
                           vals[crit], sol.kkt)


def rmsprop_sigma_problem(
    ghat: np.ndarray,
    qhat: np.ndarray,
    grad: np.ndarray,
    nu: np.ndarray,
    eta: float,
    beta2: float,
    eps: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The operator ``A`` and the vector ``B`` of the RMSProp central flow's Sigma problem.

    Parameters
    ----------
    ghat
        Rows ``g_ij = D^3 L[u_i, u_j]`` for ``i <= j`` (off-diagonal rows times ``sqrt 2``),
        shape ``(k (k + 1) / 2, dim)``, with ``u_i = D^{1/2} q_i`` the generalised
        eigenvectors at the edge.
    qhat
        Rows ``q_i * q_j`` (elementwise) in the same order and scaling, ``q_i`` the
        orthonormal eigenvectors of ``D^{1/2} H D^{1/2}``.
    grad, nu
        ``grad L(w)`` and the average of squared gradients, shape ``(dim,)``.
    eta, beta2, eps
        RMSProp's hyperparameters.

    Returns
    -------
    gram : numpy.ndarray
        ``A`` in :func:`svec` coordinates, shape ``(m, m)``, PSD.
    b : numpy.ndarray
        ``svec(B)``, shape ``(m,)``.

    Notes
    -----
    At the edge the critical block of ``D H`` moves as ``dM/dt = -eta (B + 1/2 A(X))``
    (this module's docstring), with ``p = sqrt(nu) + eps``, ``D = 1 / p`` and
    ``w_m = 1 / (2 sqrt(nu_m) p_m)``::

        B_ij = g_ij . D grad L + (2/eta^2)(1 - beta2) sum_m q_im q_jm w_m (grad L_m^2 - nu_m),
        A(X)_ij = g_ij . D sum_kl X_kl g_kl
                  + (16/eta^4)(1 - beta2) sum_m q_im q_jm w_m p_m sum_kl X_kl q_km q_lm.
    """
    edge = 2.0 / eta
    p = np.sqrt(nu) + eps
    wgt = 1.0 / (2.0 * np.sqrt(nu) * p)
    coupling = (1.0 - beta2) * edge / eta
    bvec = ghat @ (grad / p) + coupling * qhat @ (wgt * (grad * grad - nu))
    gram = (ghat / p) @ ghat.T + 2.0 * coupling * edge**2 * (qhat * (wgt * p)) @ qhat.T
    return gram, bvec


def _check_rmsprop(optimizer):
    if not isinstance(optimizer, RMSProp):
        raise ValueError(f"optimizer must be a minimal_eos RMSProp; got {type(optimizer).__name__}")
    return optimizer


def _check_nu(model: Model, nu, name: str) -> np.ndarray:
    arr = as_float_array(nu, name, ndim=1)
    if arr.shape != (model.dim,) or np.any(arr <= 0):
        raise ValueError(f"{name} must be {model.dim} positive numbers; got shape {arr.shape}, "
                         f"smallest {arr.min() if arr.size else 'none'}")
    return arr


def rmsprop_central_velocity(
    model: Model,
    theta,
    nu,
    eta: float,
    *,
    optimizer=None,
    stiffness: float = 0.5,
    window: float = 0.1,
    max_critical: int = 3,
) -> RMSPropVelocity:
    """The RMSProp central flow's velocity ``(dw/dt, dnu/dt)`` at the state ``(theta, nu)``.

    Parameters
    ----------
    model, theta
        Any model and one point.
    nu
        The average of squared gradients, shape ``(dim,)``, every entry > 0.
    eta
        RMSProp's step size.
    optimizer
        A :class:`~minimal_eos.optimizers.RMSProp` (its ``beta2`` and ``eps``); default
        ``RMSProp()``.
    stiffness, window, max_critical
        As in :func:`central_velocity`, for the eigenvalues of ``D H``.

    Returns
    -------
    RMSPropVelocity

    Notes
    -----
    ``dw/dt = -eta D [grad L + 1/2 grad <Sigma, H>]``,
    ``dnu/dt = (1 - beta2) [grad L^2 + diag(H Sigma H) - nu]``,
    ``D = diag(1 / (sqrt(nu) + eps))``, with ``Sigma = U X U^T`` on the generalised
    eigenvectors of ``H u = lambda D^{-1} u`` at the edge ``2/eta`` and ``X`` from
    :func:`solve_sigma`; the derivation is in this module's docstring. The coefficients
    of ``X`` are taken at the edge (``lambda_i = 2/eta``), exact on the flow; ``stiffness`` as in
    :func:`central_velocity`. Cohen, Damian, Talwalkar, Kolter, Lee, arXiv 2410.24206,
    section 5 (RMSProp).
    """
    _check_model(model)
    theta = model.check_theta(theta)
    nu = _check_nu(model, nu, "nu")
    opt = _check_rmsprop(RMSProp() if optimizer is None else optimizer)
    eta = positive_float(eta, "eta")
    stiffness = positive_float(stiffness, "stiffness", allow_zero=True)
    window = in_interval(window, "window", 0.0, 1.0)
    max_critical = positive_int(max_critical, "max_critical")
    return _rmsprop_velocity(_Evaluator(model).at(theta), nu, eta, opt.beta2, opt.eps, stiffness,
                             window, max_critical)


@dataclass(frozen=True)
class RMSPropFlowResult:
    """The RMSProp central flow integrated over ``[0, steps]`` (time in RMSProp steps).

    Attributes
    ----------
    eta, beta2, eps
        RMSProp's hyperparameters.
    t
        Record times, shape ``(R,)``.
    theta, nu
        The flow's ``w(t)`` and ``nu(t)``, shape ``(R, dim)``.
    loss, sharpness
        ``L(w(t))`` and the raw sharpness ``lambda_max(H)``.
    preconditioned_sharpness
        ``lambda_max(D H)``, ``D = diag(1 / (sqrt(nu) + eps))``; at most ``2/eta`` (up to
        the integration error) on the flow.
    sigma2
        ``tr(Sigma(t))``, the predicted mean squared oscillation in weight space.
    predicted_loss
        RMSProp's predicted time-averaged loss ``L(w) + 1/2 <Sigma, H(w)>``.
    n_critical
        Rank of ``Sigma``.
    kkt
        Largest complementarity residual met at the records.
    success, message, nfev
        From :func:`scipy.integrate.solve_ivp`.
    """

    eta: float
    beta2: float
    eps: float
    t: np.ndarray
    theta: np.ndarray
    nu: np.ndarray
    loss: np.ndarray
    sharpness: np.ndarray
    preconditioned_sharpness: np.ndarray
    sigma2: np.ndarray
    predicted_loss: np.ndarray
    n_critical: np.ndarray
    kkt: float
    success: bool
    message: str
    nfev: int


def rmsprop_central_flow(
    model: Model,
    theta0,
    nu0,
    steps: float,
    *,
    eta: float,
    optimizer=None,
    records: int | None = None,
    t_eval=None,
    stiffness: float = 0.5,
    window: float = 0.1,
    max_critical: int = 3,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    method: str = "Radau",
    max_step: float | None = None,
    divergence_bound: float = 1e8,
) -> RMSPropFlowResult:
    """The central flow of RMSProp with step size ``eta``, over ``steps`` steps of time.

    Parameters
    ----------
    model, theta0
        Any model and the initial point.
    nu0
        The initial average of squared gradients, shape ``(dim,)``, entries > 0 (RMSProp's
        own ``v = 0`` start is a transient of a few steps the flow does not describe: start
        the flow from RMSProp's state after it).
    steps
        Length of time, in RMSProp steps.
    eta
        RMSProp's step size.
    optimizer
        A :class:`~minimal_eos.optimizers.RMSProp`; default ``RMSProp()``.
    records, t_eval
        Number of evenly spaced records (default 201), or the record times themselves.
    stiffness, window, max_critical
        See :func:`rmsprop_central_velocity`.
    rtol, atol, method, max_step, divergence_bound
        As in :func:`central_flow`. The integrated state is ``(w, log nu)``, which keeps
        ``nu`` positive; ``divergence_bound`` applies to ``w``.

    Returns
    -------
    RMSPropFlowResult

    Notes
    -----
    ``dw/dt = -eta D [grad L + 1/2 grad <Sigma, H>]``,
    ``dnu/dt = (1 - beta2) [grad L^2 + diag(H Sigma H) - nu]``, with ``Sigma`` from
    :func:`rmsprop_central_velocity`. Below the edge (``Sigma = 0``) it is preconditioned
    gradient flow with the EMA's ODE. At the edge the preconditioned sharpness is held at
    ``2/eta``, and RMSProp's time-averaged loss is predicted as
    ``L(w) + 1/2 <Sigma, H>``. Cohen, Damian, Talwalkar, Kolter, Lee, arXiv 2410.24206,
    section 5.

    Examples
    --------
    >>> from minimal_eos import Quadratic, RMSProp
    >>> res = rmsprop_central_flow(Quadratic([1.0]), [0.0], [0.04], 1.0, eta=0.4,
    ...                            optimizer=RMSProp(0.99, 1e-12), records=2, stiffness=0.0)
    >>> [round(float(s), 6) for s in res.sigma2]   # nu / a^2 - w^2
    [0.04, 0.04]
    """
    _check_model(model)
    th = model.check_theta(theta0, "theta0")
    nu0 = _check_nu(model, nu0, "nu0")
    opt = _check_rmsprop(RMSProp() if optimizer is None else optimizer)
    steps = positive_float(steps, "steps")
    eta = positive_float(eta, "eta")
    stiffness = positive_float(stiffness, "stiffness", allow_zero=True)
    window = in_interval(window, "window", 0.0, 1.0)
    max_critical = positive_int(max_critical, "max_critical")
    method = choice(method, "method", ("Radau", "BDF", "LSODA", "RK45", "DOP853"))
    t = _record_times(steps, records, t_eval)
    max_step = np.inf if max_step is None else positive_float(max_step, "max_step")
    bound = positive_float(divergence_bound, "divergence_bound")
    ev = _Evaluator(model)
    d = model.dim

    def velocity(y):
        return _rmsprop_velocity(ev.at(y[:d]), np.exp(y[d:]), eta, opt.beta2, opt.eps,
                                 stiffness, window, max_critical)

    def rhs(_t, y):
        v = velocity(y)
        return np.concatenate([v.velocity, v.nu_rate / np.exp(y[d:])])

    def escape(_t, y):
        return bound - np.max(np.abs(y[:d]))

    escape.terminal = True
    sol = solve_ivp(rhs, (0.0, float(steps)), np.concatenate([th, np.log(nu0)]), method=method,
                    t_eval=t, rtol=rtol, atol=atol, max_step=max_step, events=escape)
    if sol.status == 1:
        sol.success = False
        sol.message = (f"the flow left |w| <= {bound:g} at t = {sol.t_events[0][0]:.6g} "
                       f"(records stop there)")
    ys = sol.y.T
    ths, nus = ys[:, :d], np.exp(ys[:, d:])
    info = [velocity(y) for y in ys]
    loss = np.array([ev.at(w).loss() for w in ths])
    sharp = np.array([ev.at(w).sharpness() for w in ths])
    hess = [ev.at(w).hessian() for w in ths]
    psharp = np.array([_preconditioned_sharpness(hm, nu, opt.eps)
                       for hm, nu in zip(hess, nus, strict=True)])
    sigma2 = np.array([np.trace(v.sigma) for v in info])
    quad = np.array([0.5 * np.sum(v.sigma * hm) for v, hm in zip(info, hess, strict=True)])
    rank = np.array([int(np.sum(np.linalg.eigvalsh(v.sigma) > 1e-12 * max(s2, 1e-300)))
                     if s2 > 0 else 0 for v, s2 in zip(info, sigma2, strict=True)],
                    dtype=np.int64)
    kkt = max((v.kkt for v in info), default=0.0)
    return RMSPropFlowResult(eta, opt.beta2, opt.eps, sol.t, ths, nus, loss, sharp, psharp,
                             sigma2, loss + quad, rank, float(kkt), bool(sol.success),
                             sol.message, int(sol.nfev))


def _preconditioned_sharpness(h: np.ndarray, nu: np.ndarray, eps: float) -> float:
    s = 1.0 / np.sqrt(np.sqrt(nu) + eps)
    return float(np.linalg.eigvalsh(h * np.outer(s, s))[-1])
