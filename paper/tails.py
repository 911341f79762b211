"""The fate of a run read from its last iterates: converged, converging slowly, periodic, or none.

A run of GD near a flip bifurcation (multiplier of the fixed point close to -1) converges
with an oscillation that shrinks by a factor ``|m|`` per step only. Tested after too few
steps it passes the period-2 test (``x_T = x_{T-2}`` to the tolerance) while it fails the
period-1 test, and is counted as periodic although it is converging. :func:`classify_tail`
tells the two apart by the trend of the step-to-step amplitude over the kept iterates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The statuses of :func:`classify_tail`.
STATUSES = ("converged", "converging", "periodic", "running")


@dataclass(frozen=True)
class TailClass:
    """What :func:`classify_tail` returns.

    Attributes
    ----------
    status : str
        One of :data:`STATUSES`.
    period : int
        1 for converged and converging runs, the period of a periodic run, 0 otherwise.
    rate : float
        The geometric rate ``rho`` of the amplitude over the kept iterates (1 for a cycle,
        ``|m|`` for a fixed point approached with multiplier ``m``; NaN when the amplitude
        is zero).
    steps_left : float
        For a converging run, the further steps until the amplitude reaches the tolerance
        at that rate; 0 when converged, NaN otherwise.
    """

    status: str
    period: int
    rate: float
    steps_left: float


def _period(x: np.ndarray, bound: float, max_period: int) -> int:
    """Smallest ``p`` with ``max_{j < p} |x_{T-j} - x_{T-j-p}| <= bound``, or 0."""
    k = len(x)
    for p in range(1, min(max_period, k // 2) + 1):
        if np.max(np.abs(x[k - p:] - x[k - 2 * p:k - p])) <= bound:
            return p
    return 0


def classify_tail(points, *, tol: float = 1e-9, max_period: int = 64,
                  min_shrink: float = 1e-3) -> TailClass:
    """Classify a run from its last ``K`` consecutive iterates.

    Parameters
    ----------
    points : array_like, shape (K,) or (K, d)
        The last iterates, oldest first (``K >= 4``).
    tol : float
        Relative tolerance of the period test.
    max_period : int
        Largest period looked for.
    min_shrink : float
        Smallest relative decrease of the amplitude over the kept iterates that counts a
        period-``p`` run as converging.

    Returns
    -------
    TailClass

    Notes
    -----
    With ``x_T`` the last iterate and ``epsilon = tol (1 + max_k |x_{T,k}|)``, the run has
    period ``p`` (the smallest ``p <= max_period`` with ``2p <= K``) when
    ``max_{j < p} |x_{T-j} - x_{T-j-p}| <= epsilon``. Period 1 is *converged*. For
    ``p > 1`` let ``a_t = max_k |x_{t,k} - x_{t-1,k}|`` and ``A_0``, ``A_1`` its largest
    value over the first and the last ``p`` amplitudes, ``W`` steps apart. When
    ``A_1 < (1 - min_shrink) A_0`` the oscillation is dying out: the run is *converging*
    to a fixed point at the rate ``rho = (A_1 / A_0)^(1/W)``, and reaches the tolerance
    after ``ln(epsilon / A_1) / ln(rho)`` more steps. Otherwise it is *periodic*. A run with
    no period is *running*.

    Examples
    --------
    >>> t = np.arange(200)
    >>> classify_tail(1e-3 * (-0.99) ** t).status
    'converging'
    >>> classify_tail(np.where(t % 2 == 0, 1.0, -1.0)).status
    'periodic'
    """
    x = np.asarray(points, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or len(x) < 4:
        raise ValueError(f"points must have shape (K,) or (K, d) with K >= 4; got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("points must be finite (a diverged run has no tail to classify)")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number; got {tol}")
    if not (0 < min_shrink < 1):
        raise ValueError(f"min_shrink must lie in (0, 1); got {min_shrink}")
    if int(max_period) < 1:
        raise ValueError(f"max_period must be >= 1; got {max_period}")
    bound = tol * (1.0 + float(np.max(np.abs(x[-1]))))
    p = _period(x, bound, int(max_period))
    amp = np.max(np.abs(np.diff(x, axis=0)), axis=1)
    if p == 0:
        return TailClass("running", 0, float("nan"), float("nan"))
    if p == 1:
        return TailClass("converged", 1, float("nan"), 0.0)
    a0, a1 = float(np.max(amp[:p])), float(np.max(amp[-p:]))
    width = len(amp) - p
    if a0 == 0.0 or width < 1:
        return TailClass("periodic", p, float("nan"), float("nan"))
    rate = (a1 / a0) ** (1.0 / width)
    if a1 < (1.0 - min_shrink) * a0:
        left = max(0.0, float(np.log(bound / a1) / np.log(rate))) if a1 > 0 else 0.0
        return TailClass("converging", 1, float(rate), left)
    return TailClass("periodic", p, float(rate), float("nan"))


def settled_step(points, *, tol: float = 1e-9) -> int | None:
    """First index ``t`` from which every step moves by at most ``tol (1 + max_k |x_{T,k}|)``.

    ``points`` has shape ``(T + 1,)`` or ``(T + 1, d)`` (every iterate of a run, finite).
    Returns None when the last step itself is larger.

    Examples
    --------
    >>> settled_step(np.array([0.0, 1.0, 1.0, 1.0]))
    1
    """
    x = np.asarray(points, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or len(x) < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"points must be finite with shape (T+1,) or (T+1, d), T >= 1; "
                         f"got shape {x.shape}")
    bound = tol * (1.0 + float(np.max(np.abs(x[-1]))))
    big = np.flatnonzero(np.max(np.abs(np.diff(x, axis=0)), axis=1) > bound)
    if big.size and big[-1] == len(x) - 2:
        return None
    return int(big[-1] + 1) if big.size else 0
