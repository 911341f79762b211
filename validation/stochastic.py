"""Mini-batch SGD on a real network and what it is measured by: batch sharpness.

With mini-batch SGD the quantity that rises to ``2/eta`` and hovers there is the *batch
sharpness* (Andreyev & Beneventano, arXiv 2412.20553),

    BS(w) = E_B[ g_B^T H_B g_B / |g_B|^2 ],

the curvature of each mini-batch's Hessian ``H_B`` along that batch's own gradient
``g_B``; the full-batch sharpness ``lambda_max(H)`` sits below it. The gap between
``2/eta`` and ``lambda_max`` is predicted by stochastic self-stabilization (Liao,
Kolomvaki, Kyrillidis, arXiv 2604.21016): ``Delta S = eta beta sigma_u^2 / (4 alpha)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from validation.objective import Objective
from validation.sharpness import SharpnessError, SharpnessTracker


class SGD:
    """Plain mini-batch SGD as an update map: ``w+ = w - eta g_B``.

    The state is ``(w,)``; :meth:`update` takes the mini-batch gradient ``g_B``. The
    step is torch.optim.SGD's (no momentum, no weight decay),
    ``param.add_(grad, alpha=-lr)``, so both give the same bits.
    """

    def init(self, w: torch.Tensor) -> tuple:
        """``(w,)``."""
        return (w,)

    def query(self, state: tuple) -> torch.Tensor:
        """The point whose gradient the step needs: ``w``."""
        return state[0]

    def update(self, state: tuple, g: torch.Tensor, eta: float) -> tuple:
        """``(w - eta g,)``."""
        return (state[0].add(g, alpha=-eta),)

    def critical_sharpness(self, eta: float) -> float:
        """``2/eta``: the edge of the batch sharpness."""
        return 2.0 / eta


class MiniBatchSampler:
    """Mini-batches without replacement, each epoch a fresh permutation.

    Parameters
    ----------
    n : int
        Training examples.
    batch_size : int
        Examples per batch, ``1 <= batch_size <= n``. An epoch is
        ``floor(n / batch_size)`` batches; the ``n mod batch_size`` examples left over by
        a permutation are not used in that epoch, so every batch has the same size (and
        the same noise level).
    seed : int
        Seed of the :class:`torch.Generator` that draws the permutations (on the CPU, so
        the batches are bit-identical for a seed on every device).
    """

    def __init__(self, n: int, batch_size: int, *, seed: int) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) \
                or not 1 <= batch_size <= n:
            raise ValueError(f"batch_size must be an integer in [1, n={n}]; got {batch_size!r}")
        self.n = n
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.perm: torch.Tensor | None = None
        self.pos = 0

    @property
    def per_epoch(self) -> int:
        """Batches per epoch, ``floor(n / batch_size)``."""
        return self.n // self.batch_size

    def next(self) -> torch.Tensor:
        """Indices of the next batch (int64, on the CPU)."""
        if self.perm is None or self.pos >= self.per_epoch:
            self.perm = torch.randperm(self.n, generator=self.generator)
            self.pos = 0
        b = self.batch_size
        idx = self.perm[self.pos * b: (self.pos + 1) * b]
        self.pos += 1
        return idx

    def state_dict(self) -> dict:
        """Generator state, current permutation and position (for checkpoints)."""
        return {"generator": self.generator.get_state(), "perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`."""
        self.generator.set_state(state["generator"])
        self.perm = state["perm"]
        self.pos = int(state["pos"])


def batch_objective(objective: Objective, idx: torch.Tensor) -> Objective:
    """The mean loss ``L_B`` of the examples ``idx`` of ``objective``'s training set."""
    idx = idx.to(objective.x.device)
    return Objective(objective.network, objective.x[idx], objective.y[idx], objective.loss,
                     objective.chunk_size)


@dataclass(frozen=True)
class BatchSharpness:
    """Mini-batch curvature at one point, averaged over sampled batches.

    Attributes
    ----------
    batch_sharpness : float
        ``mean_B g_B^T H_B g_B / |g_B|^2``.
    batch_lambda : float
        ``mean_B lambda_max(H_B)`` (NaN when not measured).
    sigma_u2 : float
        ``var_B (u . g_B)``, the sample variance (divisor ``M - 1``) of the mini-batch
        gradients projected on ``u`` (NaN without ``u`` or with one batch).
    batches : int
        Batches ``M`` sampled.
    hvps : int
        Hessian-vector products spent.
    """

    batch_sharpness: float
    batch_lambda: float
    sigma_u2: float
    batches: int
    hvps: int


def batch_sharpness(objective: Objective, w: torch.Tensor, batches: list[torch.Tensor], *,
                    u: torch.Tensor | None = None,
                    tracker: SharpnessTracker | None = None) -> BatchSharpness:
    """Batch sharpness, mean batch ``lambda_max`` and projected gradient noise at ``w``.

    Parameters
    ----------
    objective : Objective
        The full training loss; each batch is a subset of its examples.
    w : torch.Tensor
        The point.
    batches : list of torch.Tensor
        Index sets ``B_1 .. B_M`` (from a seeded sampler).
    u : torch.Tensor, optional
        Unit top eigenvector of the full Hessian; gives ``sigma_u2``.
    tracker : SharpnessTracker, optional
        Solver of ``lambda_max(H_B)`` (warm-started from batch to batch); None skips it.

    Returns
    -------
    BatchSharpness

    Raises
    ------
    SharpnessError
        When a batch's curvature along its gradient is not finite (or, from the
        tracker, its top eigenvalue).

    Notes
    -----
    For each batch, ``g_B = grad L_B(w)`` and one product ``H_B g_B`` give the Rayleigh
    quotient ``g_B^T H_B g_B / |g_B|^2``; the estimate is its mean over the ``M``
    batches, an unbiased estimate of ``E_B[...]`` for batches drawn uniformly. A batch
    whose gradient is exactly zero contributes nothing (its quotient is undefined).
    """
    quotients, lambdas, proj = [], [], []
    hvps = 0
    for idx in batches:
        obj = batch_objective(objective, idx)
        point = obj.at(w)
        g = point.grad
        gg = float(torch.dot(g, g))
        if gg > 0:
            hg = point.hvp(g)
            hvps += 1
            q = float(torch.dot(g, hg)) / gg
            if not math.isfinite(q):
                raise SharpnessError("a batch's curvature along its gradient is not finite")
            quotients.append(q)
        if u is not None:
            proj.append(float(torch.dot(u, g)))
        if tracker is not None:
            tracker.hvp_block = lambda _w, v, _p=point: _p.hvp(v)
            est = tracker.estimate(w)
            hvps += est.hvps
            lambdas.append(float(est.values[0]))
    if len(proj) > 1:
        m = _mean(proj)
        sigma = sum((p - m) ** 2 for p in proj) / (len(proj) - 1)
    else:
        sigma = math.nan
    return BatchSharpness(_mean(quotients), _mean(lambdas), sigma, len(batches), hvps)


def _mean(xs: list) -> float:
    return sum(xs) / len(xs) if xs else math.nan


class BatchSharpnessProbe:
    """The mini-batches of an SGD run and its measurements at tracked steps.

    Parameters
    ----------
    objective : Objective
        The full training loss.
    batch_size : int
        Examples per batch.
    batches : int
        Batches ``M`` sampled for each estimate of the batch sharpness.
    seed : int
        Seed of the training batches; the measurement batches come from a second,
        independent sampler (seed ``seed + 1``), so measuring changes no training step.
    tracker : SharpnessTracker
        Solver of ``lambda_max(H_B)`` for each sampled batch (its ``hvp_block`` is set
        per batch; warm-started from the previous batch).

    Notes
    -----
    :meth:`measure` measures, and :meth:`record` records, at a point ``w`` with
    full-batch top eigenpair ``(lambda_max, u)``: the batch sharpness, ``mean_B lambda_max(H_B)``,
    ``sigma_u^2 = var_B(u . g_B)``, and the constants of self-stabilization (Damian et
    al., arXiv 2209.15594) ``alpha = -grad L . grad S`` and ``beta = |grad S|^2`` with
    ``grad S = nabla^3 L[u, u]``.
    """

    FIELDS = ("t", "batch_sharpness", "batch_lambda", "lambda_max", "sigma_u2", "alpha", "beta")

    def __init__(self, objective: Objective, batch_size: int, *, batches: int, seed: int,
                 tracker: SharpnessTracker) -> None:
        self.objective = objective
        self.sampler = MiniBatchSampler(objective.n, batch_size, seed=seed)
        self.measure_sampler = MiniBatchSampler(objective.n, batch_size, seed=seed + 1)
        self.batches = batches
        self.tracker = tracker
        self.records: dict[str, list] = {k: [] for k in self.FIELDS}

    def gradient(self, w: torch.Tensor) -> torch.Tensor:
        """``g_B = grad L_B(w)`` on the next training batch."""
        return batch_objective(self.objective, self.sampler.next()).grad(w)

    def measure(self, w: torch.Tensor, lambda_max: float, u: torch.Tensor) -> dict:
        """The measurements at ``w`` (see Notes), keyed as :attr:`FIELDS` without ``t``.

        Raises :class:`~validation.sharpness.SharpnessError` when a batch's curvature
        cannot be estimated.
        """
        batches = [self.measure_sampler.next() for _ in range(self.batches)]
        est = batch_sharpness(self.objective, w, batches, u=u, tracker=self.tracker)
        point = self.objective.at(w)
        grad_s = point.third(u)
        return {"batch_sharpness": est.batch_sharpness, "batch_lambda": est.batch_lambda,
                "lambda_max": lambda_max, "sigma_u2": est.sigma_u2,
                "alpha": -float(torch.dot(point.grad, grad_s)),
                "beta": float(torch.dot(grad_s, grad_s))}

    def record(self, t: int, values: dict) -> None:
        """Append the :meth:`measure` ``values`` of step ``t`` to :attr:`records`."""
        self.records["t"].append(t)
        for key in self.FIELDS[1:]:
            self.records[key].append(values[key])

    def state_dict(self) -> dict:
        """Samplers, batch tracker and records (for checkpoints)."""
        return {"sampler": self.sampler.state_dict(),
                "measure_sampler": self.measure_sampler.state_dict(),
                "tracker": self.tracker.state_dict(), "records": self.records}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`."""
        self.sampler.load_state_dict(state["sampler"])
        self.measure_sampler.load_state_dict(state["measure_sampler"])
        self.tracker.load_state_dict(state["tracker"])
        self.records = state["records"]
