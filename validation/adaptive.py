"""Adam and RMSProp on a real network and their edge: the preconditioned sharpness.

With a frozen diagonal preconditioner ``P``, Adam (momentum ``beta1``) on a quadratic
of Hessian ``H`` is stable iff ``lambda_max(P^{-1} H) < (2 + 2 beta1) / ((1 - beta1)
eta)``, and RMSProp iff ``lambda_max(P^{-1} H) < 2/eta``. During training the
*preconditioned sharpness* ``lambda_max(P^{-1} H) = lambda_max(P^{-1/2} H P^{-1/2})``
rises to that threshold and hovers there (Cohen et al., arXiv 2207.14484); the raw
sharpness need not.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from minimal_eos import optimizers as _minimal


class Adam:
    """torch.optim.Adam (no weight decay, no amsgrad) as an update map.

    Parameters
    ----------
    beta1, beta2 : float
        Decay rates of the first and second moments, in ``[0, 1)``.
    eps : float
        Added to ``sqrt(v_hat)`` in the denominator, ``> 0``.

    Notes
    -----
    State ``(w, m, v, t)``; one step with gradient ``g``::

        t+ = t + 1
        m+ = beta1 m + (1 - beta1) g
        v+ = beta2 v + (1 - beta2) g^2
        w+ = w - eta / (1 - beta1^t+) * m+ / (sqrt(v+) / sqrt(1 - beta2^t+) + eps)

    with the same floating-point operations as torch's single-tensor Adam, so both give
    the same bits. The preconditioner is ``P = diag(sqrt(v_hat)) + eps`` with
    ``v_hat = v / (1 - beta2^t)``.
    """

    name = "adam"

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def init(self, w: torch.Tensor) -> tuple:
        """``(w, 0, 0, 0)``."""
        return (w, torch.zeros_like(w), torch.zeros_like(w), 0)

    def query(self, state: tuple) -> torch.Tensor:
        """The point whose gradient the step needs: ``w``."""
        return state[0]

    def update(self, state: tuple, g: torch.Tensor, eta: float) -> tuple:
        """One Adam step (see Notes)."""
        w, m, v, t = state
        t = t + 1
        m = m.lerp(g, 1 - self.beta1)
        v = v.mul(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        step_size = eta / (1 - self.beta1 ** t)
        denom = (v.sqrt() / (1 - self.beta2 ** t) ** 0.5).add_(self.eps)
        return (w.addcdiv(m, denom, value=-step_size), m, v, t)

    def preconditioner(self, state: tuple) -> torch.Tensor:
        """Diagonal of ``P = diag(sqrt(v_hat)) + eps`` (all ``eps`` before the first step)."""
        _, _, v, t = state
        if t == 0:
            return torch.full_like(v, self.eps)
        return (v.sqrt() / (1 - self.beta2 ** t) ** 0.5).add_(self.eps)

    def critical_sharpness(self, eta: float) -> float:
        """``(2 + 2 beta1) / ((1 - beta1) eta)``: the edge of ``lambda_max(P^{-1} H)``."""
        return _minimal.Adam(beta1=self.beta1).critical_sharpness(eta)


class RMSProp:
    """torch.optim.RMSprop (no momentum, not centred) as an update map.

    Parameters
    ----------
    alpha : float
        Decay rate of the squared-gradient average, in ``[0, 1)`` (``--beta2``).
    eps : float
        Added to ``sqrt(v)``, ``> 0``.

    Notes
    -----
    State ``(w, v)``; one step: ``v+ = alpha v + (1 - alpha) g^2``,
    ``w+ = w - eta g / (sqrt(v+) + eps)``, with torch's operations. No bias correction,
    so the preconditioner is ``P = diag(sqrt(v)) + eps``.
    """

    name = "rmsprop"

    def __init__(self, alpha: float = 0.99, eps: float = 1e-8) -> None:
        self.alpha, self.eps = alpha, eps

    def init(self, w: torch.Tensor) -> tuple:
        """``(w, 0)``."""
        return (w, torch.zeros_like(w))

    def query(self, state: tuple) -> torch.Tensor:
        """The point whose gradient the step needs: ``w``."""
        return state[0]

    def update(self, state: tuple, g: torch.Tensor, eta: float) -> tuple:
        """One RMSProp step (see Notes)."""
        w, v = state
        v = v.mul(self.alpha).addcmul_(g, g, value=1 - self.alpha)
        return (w.addcdiv(g, v.sqrt().add_(self.eps), value=-eta), v)

    def preconditioner(self, state: tuple) -> torch.Tensor:
        """Diagonal of ``P = diag(sqrt(v)) + eps``."""
        return state[1].sqrt().add_(self.eps)

    def critical_sharpness(self, eta: float) -> float:
        """``2/eta``: the edge of ``lambda_max(P^{-1} H)``."""
        return _minimal.RMSProp().critical_sharpness(eta)


def preconditioned_hvp(hvp_block: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                       diag: Callable[[], torch.Tensor]
                       ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The operator ``(w, V) -> P^{-1/2} H(w) P^{-1/2} V`` for a diagonal ``P``.

    Parameters
    ----------
    hvp_block : callable
        ``(w, V) -> H(w) V``.
    diag : callable
        ``() -> p``, the diagonal of the current ``P`` (read at every product, so a
        :class:`~validation.sharpness.SharpnessTracker` built once follows ``P`` along
        the run).

    Notes
    -----
    ``P^{-1} H`` is similar to the symmetric ``P^{-1/2} H P^{-1/2}``: both have the same
    eigenvalues, and the tracker's symmetric solver applies to the latter. Its top
    eigenvector ``z`` gives the generalised eigenvector ``P^{-1/2} z`` of
    ``H x = lambda P x``.
    """
    def op(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        s = diag().rsqrt()
        sv = s[:, None] if v.dim() == 2 else s
        return sv * hvp_block(w, sv * v)

    return op


class PreconditionedProbe:
    """Preconditioned sharpness ``lambda_max(P^{-1} H)`` along an Adam or RMSProp run.

    Parameters
    ----------
    hvp_block : callable
        ``(w, V) -> H(w) V`` of the full training loss.
    make_tracker : callable
        ``(operator) -> SharpnessTracker`` for the operator ``(w, V) -> A V``; the probe
        hands it ``P^{-1/2} H P^{-1/2}`` (:func:`preconditioned_hvp`), so the estimate
        is the sharpness tracker's own warm-started solver.
    """

    def __init__(self, hvp_block: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 make_tracker: Callable) -> None:
        self.diag: torch.Tensor | None = None
        self.tracker = make_tracker(preconditioned_hvp(hvp_block, lambda: self.diag))
        self.records: dict[str, list] = {"t": [], "preconditioned": []}

    def measure(self, w: torch.Tensor, diag: torch.Tensor) -> float:
        """``lambda_max(P^{-1} H(w))`` for ``P = diag(diag)`` (a
        :class:`~validation.sharpness.SharpnessError` when it cannot be estimated)."""
        self.diag = diag
        return float(self.tracker.estimate(w).values[0])

    def record(self, t: int, value: float) -> None:
        """Append the :meth:`measure` ``value`` of step ``t`` to :attr:`records`."""
        self.records["t"].append(t)
        self.records["preconditioned"].append(value)

    def state_dict(self) -> dict:
        """Tracker and records (for checkpoints)."""
        return {"tracker": self.tracker.state_dict(), "records": self.records}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`."""
        self.tracker.load_state_dict(state["tracker"])
        self.records = state["records"]
