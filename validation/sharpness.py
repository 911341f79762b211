"""Top Hessian eigenpairs from Hessian-vector products: Lanczos and warm-started LOBPCG.

The sharpness ``S(w) = lambda_max(H(w))`` is tracked along a trajectory. A cold estimate
runs Lanczos from a random vector; afterwards each estimate starts LOBPCG from the
previous eigenvectors, which at consecutive steps are already close, so a handful of
Hessian-vector products (HVPs) suffice. Every function counts the HVPs it spends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

HVP = Callable[[torch.Tensor], torch.Tensor]
METHODS = ("lobpcg", "lanczos")


class SharpnessError(ArithmeticError):
    """The top eigenvalue of ``H(w)`` cannot be estimated: a Hessian-vector product or a
    Ritz value at ``w`` is not finite (the point has left the region where the float
    arithmetic of ``H(w) v`` holds, as a diverging iterate does)."""


@dataclass(frozen=True)
class EigResult:
    """Top eigenpairs of a symmetric operator.

    Attributes
    ----------
    values : torch.Tensor
        Eigenvalue estimates (Ritz values), shape ``(k,)``, descending.
    vectors : torch.Tensor
        Orthonormal Ritz vectors, shape ``(p, k)``.
    residuals : torch.Tensor
        Relative residuals ``|H v_i - theta_i v_i| / |theta_i|``, shape ``(k,)``.
    hvps : int
        Hessian-vector products spent (each column of a block product counts once).
    iterations : int
        Iterations run.
    """

    values: torch.Tensor
    vectors: torch.Tensor
    residuals: torch.Tensor
    hvps: int
    iterations: int


def _check_k(k: int, p: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1; got {k!r}")
    if k > p:
        raise ValueError(f"k={k} exceeds the dimension {p}")
    return k


def _orthonormalize(s: torch.Tensor, a_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gram-Schmidt (twice) on the columns of ``s``, applying the same steps to ``a_s``.

    A column whose norm falls below ``drop`` times its original norm once the previous
    ones are removed is dependent and dropped, so the basis never divides by a tiny norm:
    ``drop = max(1e-8, 1000 eps)`` (1.2e-4 in float32), since the images ``a_s`` carry
    rounding errors of relative size ``eps`` that the division would amplify.
    """
    drop = max(1e-8, 1e3 * torch.finfo(s.dtype).eps)
    qs: list[torch.Tensor] = []
    aqs: list[torch.Tensor] = []
    for j in range(s.shape[1]):
        v, av = s[:, j], a_s[:, j]
        n0 = torch.linalg.vector_norm(v)
        if n0 == 0:
            continue
        for _ in range(2):
            if qs:
                q, aq = torch.stack(qs, 1), torch.stack(aqs, 1)
                coef = q.T @ v
                v, av = v - q @ coef, av - aq @ coef
        n = torch.linalg.vector_norm(v)
        if n <= drop * n0:
            continue
        qs.append(v / n)
        aqs.append(av / n)
    return torch.stack(qs, 1), torch.stack(aqs, 1)


def lanczos(hvp: HVP, p: int, *, k: int = 1, iterations: int = 20,
            v0: torch.Tensor | None = None, generator: torch.Generator | None = None,
            dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> EigResult:
    """Top-``k`` eigenpairs by ``iterations`` steps of Lanczos with full reorthogonalisation.

    Parameters
    ----------
    hvp : callable
        ``v -> H v`` for ``v`` of shape ``(p,)``.
    p : int
        Dimension.
    k : int
        Number of eigenpairs returned.
    iterations : int
        Krylov dimension ``m`` (``m`` HVPs are spent, plus ``k`` to report residuals).
    v0 : torch.Tensor, optional
        Start vector (a warm start); default a Gaussian vector from ``generator``.
    generator : torch.Generator, optional
        Source of the random start vector.

    Returns
    -------
    EigResult

    Notes
    -----
    Builds an orthonormal basis ``Q_m`` of the Krylov space
    ``span{v0, H v0, ..., H^{m-1} v0}`` and returns the top Ritz pairs of
    ``T_m = Q_m^T H Q_m``. Residual norms come from the last Lanczos coefficient,
    ``|H y - theta y| = beta_m |e_m^T s|`` for a Ritz pair ``(theta, Q_m s)``; they cost
    no further HVP.
    """
    k = _check_k(k, p)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < k:
        raise ValueError(f"iterations must be an integer >= k={k}; got {iterations!r}")
    m = min(iterations, p)
    if v0 is None:
        v0 = torch.randn(p, generator=generator, dtype=torch.float64).to(device=device)
    q = (v0 / torch.linalg.vector_norm(v0)).to(dtype)
    basis = torch.zeros((p, m), dtype=dtype, device=q.device)
    alphas, betas = [], []
    beta = 0.0
    for j in range(m):
        basis[:, j] = q
        z = hvp(q)
        alpha = torch.dot(q, z)
        # Full reorthogonalisation (twice is enough) keeps the basis orthonormal.
        for _ in range(2):
            z = z - basis[:, : j + 1] @ (basis[:, : j + 1].T @ z)
        alphas.append(alpha)
        beta = torch.linalg.vector_norm(z)
        if j == m - 1 or beta <= 1e-12 * abs(float(alpha)):
            m = j + 1
            break
        betas.append(beta)
        q = z / beta
    tri = torch.diag(torch.stack(alphas))
    if m > 1:
        off = torch.stack(betas[: m - 1])
        tri = tri + torch.diag(off, 1) + torch.diag(off, -1)
    theta, s = torch.linalg.eigh(tri)
    order = torch.argsort(theta, descending=True)[:k]
    theta, s = theta[order], s[:, order]
    vectors = basis[:, :m] @ s
    residuals = torch.abs(beta * s[-1, :]) / torch.clamp(theta.abs(), min=1e-300)
    return EigResult(theta, vectors, residuals, m, m)


def _errors(theta: torch.Tensor, rnorm: torch.Tensor, criterion: str) -> torch.Tensor:
    """Relative error estimates of the Ritz values ``theta`` from residual norms ``rnorm``.

    ``"residual"``: ``|r_i| / |theta_i|``. ``"eigenvalue"``:
    ``min(|r_i|, |r_i|^2 / (theta_i - theta_{i+1})) / |theta_i|``, the last column
    (no Ritz value below it) keeping ``|r_i| / |theta_i|``.
    """
    scale = torch.clamp(theta.abs(), min=1e-300)
    if criterion == "residual":
        return rnorm / scale
    gap = torch.full_like(theta, float("inf"))
    gap[:-1] = theta[:-1] - theta[1:]
    quadratic = rnorm ** 2 / torch.clamp(gap, min=1e-300)
    return torch.minimum(rnorm, quadratic) / scale


def lobpcg(hvp_block: HVP, x0: torch.Tensor, *, k: int | None = None, tol: float = 1e-3,
           max_iterations: int = 50, criterion: str = "residual") -> EigResult:
    """Top eigenpairs by LOBPCG started from the block ``x0`` (a warm start).

    Parameters
    ----------
    hvp_block : callable
        ``V -> H V`` for ``V`` of shape ``(p, j)``.
    x0 : torch.Tensor
        Start block, shape ``(p, b)``; the previous eigenvectors when tracking.
    k : int, optional
        Number of leading pairs that must converge (default all ``b``). The other
        ``b - k`` columns are guard vectors: they take part in every Rayleigh-Ritz step,
        so an eigenvalue that overtakes the leading ones is caught, but cost no HVP
        beyond their first product.
    tol : float
        Stop when the error estimate of each of the ``k`` leading Ritz values is at most
        ``tol`` (see ``criterion``).
    max_iterations : int
        Iteration cap.
    criterion : {"residual", "eigenvalue"}
        ``"residual"``: the relative residual ``|H x_i - theta_i x_i| / |theta_i|``; by
        Weyl's bound an eigenvalue of ``H`` lies within it of ``theta_i``.
        ``"eigenvalue"``: the relative eigenvalue error estimate
        ``min(|r_i|, |r_i|^2 / (theta_i - theta_{i+1})) / |theta_i|``.

    Returns
    -------
    EigResult
        All ``b`` Ritz pairs of the block, descending.

    Notes
    -----
    Locally optimal block preconditioned conjugate gradient (Knyazev, 2001) without a
    preconditioner: each iteration does Rayleigh-Ritz on ``span{X, R, P}`` with
    residuals ``R = H X - X Theta`` and the previous update directions ``P``. Only the
    residual columns of the ``k`` leading pairs that have not converged are multiplied
    by ``H``.

    The ``"eigenvalue"`` criterion is the Kato-Temple estimate: a unit vector ``x`` with
    Rayleigh quotient ``theta`` and residual ``r`` has an eigenvalue ``lambda`` with
    ``0 <= lambda - theta <= |r|^2 / delta`` when the rest of the spectrum lies at least
    ``delta`` below ``theta``. Here ``delta`` is estimated by the gap to the next Ritz
    value of the block, so the guard columns are what makes the estimate meaningful;
    with a tight cluster the estimate falls back to the residual.
    """
    if not (tol > 0):
        raise ValueError(f"tol must be > 0; got {tol!r}")
    if criterion not in ("residual", "eigenvalue"):
        raise ValueError(f"criterion must be 'residual' or 'eigenvalue'; got {criterion!r}")
    b = x0.shape[1]
    k = b if k is None else _check_k(k, b)
    x, _ = torch.linalg.qr(x0)
    ax = hvp_block(x)
    hvps = b
    theta, c = torch.linalg.eigh(0.5 * (x.T @ ax + ax.T @ x))
    c = c.flip(1)
    theta = theta.flip(0)
    x, ax = x @ c, ax @ c
    p_dir = ap_dir = None
    it = 0
    while True:
        r = ax - x * theta
        rnorm = torch.linalg.vector_norm(r, dim=0)
        active = _errors(theta, rnorm, criterion) > tol
        active[k:] = False
        if not bool(active.any()) or it >= max_iterations:
            res = rnorm / torch.clamp(theta.abs(), min=1e-300)
            return EigResult(theta, x, res, hvps, it)
        it += 1
        w = r[:, active]
        w = w - x @ (x.T @ w)
        aw = hvp_block(w)
        hvps += int(w.shape[1])
        blocks, images = [x, w], [ax, aw]
        if p_dir is not None:
            blocks.append(p_dir)
            images.append(ap_dir)
        s, a_s = _orthonormalize(torch.cat(blocks, 1), torch.cat(images, 1))
        gram = s.T @ a_s
        evals, evecs = torch.linalg.eigh(0.5 * (gram + gram.T))
        evals, evecs = evals.flip(0)[:b], evecs.flip(1)[:, :b]
        x_new, ax_new = s @ evecs, a_s @ evecs
        # The update directions: the part of X_new outside the old X. The first b
        # columns of the basis are X itself, so P is read off the Ritz coefficients of
        # the other columns (computing X_new - X X^T X_new instead loses all accuracy
        # once X has converged).
        p_dir = s[:, b:] @ evecs[b:]
        ap_dir = a_s[:, b:] @ evecs[b:]
        x, ax, theta = x_new, ax_new, evals


class SharpnessTracker:
    """Top-``k`` Hessian eigenpairs along a trajectory, warm-started from the last estimate.

    Parameters
    ----------
    hvp_block : callable
        ``(w, V) -> H(w) V``.
    p : int
        Number of parameters.
    k : int
        Number of eigenpairs tracked (and returned).
    tol : float
        Relative accuracy of the ``k`` eigenvalues: the ``"eigenvalue"`` criterion of
        :func:`lobpcg`, ``min(|r|, |r|^2 / gap) <= tol |theta|``.
    guard : int
        Guard vectors kept in the block beside the ``k`` tracked ones (block size
        ``k + guard``); they follow the next eigenvalues, so one that overtakes a tracked
        eigenvalue is in the block when it does, and they give the gap of the criterion.
    cold_iterations : int
        Lanczos iterations of the first (cold) estimate.
    refresh_every : int
        Every this many estimates, a cold Lanczos estimate replaces the warm start, so
        an eigenvalue that overtakes the whole block is not missed for longer than that
        (0 disables).
    generator : torch.Generator
        Source of the cold start vectors.
    max_iterations : int
        LOBPCG iteration cap per estimate.

    Notes
    -----
    ``estimate(w)`` returns an :class:`EigResult` of the ``k`` tracked pairs;
    ``total_hvps`` and ``estimates`` give the mean HVPs per estimate. The warm block
    (``vectors``, ``k + guard`` columns) is the state of the tracker (``state_dict``)
    and is saved in checkpoints; a block of another width (set by hand, or from a
    tracker with another ``k``) is cut, or completed with random columns.

    The defaults (one guard vector, ``tol = 1e-4``) hold every tracked step of the
    default ``python -m validation.compare`` run within 1e-3 of the top eigenvalue at
    about 4 HVPs per step (``python -m benchmarks.sharpness_accuracy``). A single warm
    vector with a relative-residual test accepts a converged second eigenvector after
    one product when the eigenvalues cross.
    """

    def __init__(self, hvp_block: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], p: int,
                 *, k: int = 1, tol: float = 1e-4, guard: int = 1, cold_iterations: int = 30,
                 refresh_every: int = 0, generator: torch.Generator | None = None,
                 max_iterations: int = 50) -> None:
        if not (isinstance(tol, int | float) and tol > 0):
            raise ValueError(f"tol must be a number > 0; got {tol!r}")
        if isinstance(guard, bool) or not isinstance(guard, int) or guard < 0:
            raise ValueError(f"guard must be an integer >= 0; got {guard!r}")
        self.hvp_block = hvp_block
        self.p = p
        self.k = _check_k(k, p)
        self.block = min(self.k + guard, p)
        self.tol = tol
        self.cold_iterations = max(cold_iterations, self.block + 2)
        self.refresh_every = refresh_every
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.max_iterations = max_iterations
        self.vectors: torch.Tensor | None = None
        self.total_hvps = 0
        self.estimates = 0

    def _warm_block(self, w: torch.Tensor) -> torch.Tensor:
        x = self.vectors.to(dtype=w.dtype, device=w.device)[:, : self.block]
        missing = self.block - x.shape[1]
        if missing > 0:
            extra = torch.randn(self.p, missing, generator=self.generator, dtype=torch.float64)
            x = torch.cat([x, extra.to(dtype=w.dtype, device=w.device)], 1)
        return x

    def estimate(self, w: torch.Tensor) -> EigResult:
        """Top-``k`` eigenpairs of ``H(w)``, warm-started from the previous call.

        Raises
        ------
        SharpnessError
            When a Hessian-vector product or an eigenvalue estimate at ``w`` is not
            finite; the warm start is left as it was.
        """
        cold = self.vectors is None or (
            self.refresh_every > 0 and self.estimates > 0
            and self.estimates % self.refresh_every == 0)
        spent = 0

        def product(v: torch.Tensor) -> torch.Tensor:
            hv = self.hvp_block(w, v)
            if not bool(torch.isfinite(hv).all()):
                raise SharpnessError("a Hessian-vector product is not finite")
            return hv

        try:
            if cold:
                first = lanczos(lambda v: product(v[:, None])[:, 0], self.p,
                                k=self.block, iterations=min(self.cold_iterations, self.p),
                                generator=self.generator, dtype=w.dtype, device=w.device)
                spent += first.hvps
                start = first.vectors
            else:
                start = self._warm_block(w)
            res = lobpcg(product, start, k=self.k, tol=self.tol,
                         max_iterations=self.max_iterations, criterion="eigenvalue")
        except torch.linalg.LinAlgError as err:
            # Finite products can still overflow in the small dense eigenproblem.
            raise SharpnessError(f"the eigensolver failed ({err})") from err
        if not bool(torch.isfinite(res.values).all()):
            raise SharpnessError("an eigenvalue estimate is not finite")
        spent += res.hvps
        self.vectors = res.vectors.detach().clone()
        self.total_hvps += spent
        self.estimates += 1
        k = self.k
        return EigResult(res.values[:k], res.vectors[:, :k], res.residuals[:k], spent,
                         res.iterations)

    @property
    def mean_hvps(self) -> float:
        """Mean HVPs per estimate so far."""
        return self.total_hvps / max(self.estimates, 1)

    def state_dict(self) -> dict:
        """Warm start, counters and generator state (for checkpoints)."""
        return {"vectors": self.vectors, "total_hvps": self.total_hvps,
                "estimates": self.estimates, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`."""
        self.vectors = state["vectors"]
        self.total_hvps = int(state["total_hvps"])
        self.estimates = int(state["estimates"])
        self.generator.set_state(state["generator"])
