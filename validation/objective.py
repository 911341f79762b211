"""Training loss of a network on a full training set, with its derivatives.

Gradients are reverse mode. Hessian-vector products and the third derivative
``grad_w <X, U^T H(w) U>`` come from a :class:`Point`. When the training set is one chunk
(the default runs), the point is one forward and one reverse pass that keeps its graph
(``create_graph``): every product ``H(w) v`` is then one more reverse pass through the
kept gradient graph, the third derivative two more, and the point's value and gradient are
the step's own, so a tracked GD step pays for its gradient once. With several chunks the
graph is rebuilt chunk by chunk for each call (double backward), so memory stays bounded
by the chunk size. ``python -m benchmarks.sharpness_hvps`` times these forms against
forward-over-reverse (``torch.func.jvp`` of ``torch.func.grad``) and ``torch.func.vjp`` of
the gradient function."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from validation.data import Dataset
from validation.networks import Network

LOSSES = ("mse", "ce")


@dataclass
class Objective:
    """Full-batch training loss ``L(w)`` of ``network`` on ``(x, y)``.

    Parameters
    ----------
    network : Network
        The model ``f(w, x)``.
    x, y : torch.Tensor
        Inputs ``(n, *input_shape)``; for ``"mse"`` targets ``(n, num_outputs)``
        (one-hot for classification), for ``"ce"`` class indices ``(n,)``.
    loss : {"mse", "ce"}
        Squared loss ``L = 1/(2n) sum_i |f(w, x_i) - y_i|^2`` or mean cross-entropy.
    chunk_size : int
        Number of examples per chunk in every pass over the training set.

    Notes
    -----
    Derivatives, with ``L_c`` the loss summed over chunk ``c`` and divided by ``n``:

    * ``grad L(w) = sum_c grad L_c(w)``;
    * ``H(w) v = d/dw <sum_c grad L_c(w), v>`` (reverse over reverse, through the
      gradient graph kept by :meth:`at`);
    * ``grad_w <X, U^T H(w) U> = grad_w sum_{ij} X_ij u_i^T H(w) u_j``, the third
      derivative ``nabla^3 L(w)[u_i, u_j, .]`` contracted with a symmetric ``X``
      (reverse over reverse over reverse). With ``U = u`` and ``X = 1`` this is the
      gradient of the sharpness ``grad S = nabla^3 L[u, u]`` (Damian et al.,
      arXiv 2209.15594).

    Every pass holds one chunk's graph at a time; a :class:`Point` of a training set that
    is a single chunk keeps its gradient graph between products.
    """

    network: Network
    x: torch.Tensor
    y: torch.Tensor
    loss: str = "mse"
    chunk_size: int = 4096
    _chunks: list[tuple[torch.Tensor, torch.Tensor]] = field(init=False, repr=False)
    _last: Point | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; accepted: {', '.join(LOSSES)}")
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) \
                or self.chunk_size < 1:
            raise ValueError(f"chunk_size must be an integer >= 1; got {self.chunk_size!r}")
        n = self.x.shape[0]
        self._chunks = [
            (self.x[i: i + self.chunk_size], self.y[i: i + self.chunk_size])
            for i in range(0, n, self.chunk_size)
        ]

    @property
    def n(self) -> int:
        """Number of training examples."""
        return int(self.x.shape[0])

    def _chunk_loss(self, w: torch.Tensor, xc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:
        out = self.network.apply(w, xc)
        if self.loss == "mse":
            return 0.5 * ((out - yc) ** 2).sum() / self.n
        return F.cross_entropy(out, yc, reduction="sum") / self.n

    def value(self, w: torch.Tensor) -> torch.Tensor:
        """Training loss ``L(w)`` (a 0-d tensor)."""
        with torch.no_grad():
            return sum(self._chunk_loss(w, xc, yc) for xc, yc in self._chunks)

    def value_and_grad(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L(w), grad L(w))``."""
        total_g = torch.zeros_like(w)
        total_v = torch.zeros((), dtype=w.dtype, device=w.device)
        for xc, yc in self._chunks:
            with torch.enable_grad():
                p = w.detach().requires_grad_(True)
                v = self._chunk_loss(p, xc, yc)
                (g,) = torch.autograd.grad(v, p)
            total_g += g
            total_v += v.detach()
        return total_v, total_g

    def grad(self, w: torch.Tensor) -> torch.Tensor:
        """``grad L(w)``."""
        return self.value_and_grad(w)[1]

    def at(self, w: torch.Tensor) -> Point:
        """The :class:`Point` at ``w``: loss, gradient and the graph of its derivatives.

        When the training set is one chunk, the point keeps the gradient graph, so that
        the products and third derivatives of a whole sharpness estimate (and the step's
        gradient) share one forward and one reverse pass. With several chunks each
        product call rebuilds the graph chunk by chunk, so memory stays bounded by the
        chunk size. The last point is kept and rebuilt when ``w`` differs from it in any
        entry.
        """
        last = self._last
        if (last is not None and last.w.shape == w.shape and last.w.dtype == w.dtype
                and last.w.device == w.device and torch.equal(last.w, w)):
            return last
        self._last = None
        w = w.detach().clone()
        if len(self._chunks) > 1:
            value, g = self.value_and_grad(w)
            self._last = Point(w, value, g, None, self)
            return self._last
        xc, yc = self._chunks[0]
        with torch.enable_grad():
            leaf = w.clone().requires_grad_(True)
            v = self._chunk_loss(leaf, xc, yc)
            (g,) = torch.autograd.grad(v, leaf, create_graph=True)
        self._last = Point(w, v.detach(), g.detach(), (leaf, g), self)
        return self._last

    def hvp(self, w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Hessian-vector products ``H(w) v`` for ``v`` of shape ``(p,)`` or ``(p, k)``."""
        return self.at(w).hvp(v)

    def third(self, w: torch.Tensor, u: torch.Tensor, x: torch.Tensor | None = None
              ) -> torch.Tensor:
        """``grad_w <X, U^T H(w) U>`` for ``U`` of shape ``(p,)`` or ``(p, k)``.

        With a vector ``u`` (and ``x`` omitted) this is ``grad_w (u^T H(w) u)``, the
        gradient of the curvature along ``u``; see :meth:`Point.third`.
        """
        return self.at(w).third(u, x)


@dataclass(frozen=True)
class Point:
    """The loss at one point ``w`` with the graph of its gradient, for repeated products.

    Attributes
    ----------
    w : torch.Tensor
        The point (a detached copy).
    value : torch.Tensor
        ``L(w)``, 0-d.
    grad : torch.Tensor
        ``grad L(w)``.
    kept : tuple of torch.Tensor, optional
        ``(leaf, g)``: a leaf copy of ``w`` requiring grad and ``g = grad L(leaf)`` as a
        node of the autograd graph (``create_graph``), when the training set is one
        chunk; None otherwise (each call rebuilds the graph chunk by chunk).
    objective : Objective
        The loss the point belongs to.

    Notes
    -----
    With ``g(w) = grad L(w)`` as a graph, ``H(w) v = d/dw <g(w), v>`` is one reverse pass
    through it (``retain_graph``), and the third derivative contracted with a symmetric
    ``X``,

    ``grad_w <X, U^T H(w) U> = d/dw sum_j <(U X)_j, H(w) u_j>``,

    is one reverse pass per column of ``U`` that keeps its graph (``create_graph``) and a
    last reverse pass through the sum (reverse over reverse over reverse). With
    ``U = u`` and ``X = 1`` it is ``grad S = nabla^3 L[u, u]``, the gradient of the
    sharpness along its eigenvector (Damian et al., arXiv 2209.15594).
    """

    w: torch.Tensor
    value: torch.Tensor
    grad: torch.Tensor
    kept: tuple[torch.Tensor, torch.Tensor] | None
    objective: Objective

    def _graphs(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(leaf, grad L_c(leaf))`` per chunk ``c``, with the gradient graph kept."""
        if self.kept is not None:
            yield self.kept
            return
        for xc, yc in self.objective._chunks:
            with torch.enable_grad():
                leaf = self.w.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(self.objective._chunk_loss(leaf, xc, yc), leaf,
                                           create_graph=True)
            yield leaf, g

    def _reverse(self, out: torch.Tensor, leaf: torch.Tensor, cotangent: torch.Tensor | None,
                 *, create_graph: bool = False) -> torch.Tensor:
        if not out.requires_grad:
            return torch.zeros_like(self.w)
        (d,) = torch.autograd.grad(out, leaf, cotangent, retain_graph=True,
                                   create_graph=create_graph, allow_unused=True)
        return torch.zeros_like(self.w) if d is None else d

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """``H(w) v`` for ``v`` of shape ``(p,)`` or ``(p, k)`` (one reverse pass per column)."""
        vs = v[:, None] if v.dim() == 1 else v
        out = torch.zeros_like(vs)
        with torch.enable_grad():
            for leaf, g in self._graphs():
                for j in range(vs.shape[1]):
                    out[:, j] += self._reverse(g, leaf, vs[:, j]).detach()
        return out[:, 0] if v.dim() == 1 else out

    def third(self, u: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """``grad_w <X, U^T H(w) U>`` for ``U`` of shape ``(p,)`` or ``(p, k)``; ``X``
        (symmetric, ``(k, k)``) defaults to the identity."""
        if u.dim() == 1:
            u = u[:, None]
        if x is None:
            x = torch.eye(u.shape[1], dtype=u.dtype, device=u.device)
        ux = u @ x
        out = torch.zeros_like(self.w)
        with torch.enable_grad():
            for leaf, g in self._graphs():
                total = torch.zeros((), dtype=self.w.dtype, device=self.w.device)
                for j in range(u.shape[1]):
                    hu = self._reverse(g, leaf, u[:, j], create_graph=True)
                    total = total + torch.dot(ux[:, j], hu)
                out += self._reverse(total, leaf, None).detach()
        return out


def make_objective(network: Network, data: Dataset, *, loss: str = "mse",
                   dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
                   chunk_size: int = 4096) -> Objective:
    """Build the :class:`Objective` of ``network`` on ``data``.

    For the squared loss on a classification set the targets are one-hot vectors;
    cross-entropy needs a classification set.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; accepted: {', '.join(LOSSES)}")
    x = torch.as_tensor(data.x, dtype=dtype, device=device)
    if data.task == "regression":
        if loss == "ce":
            raise ValueError("loss 'ce' needs a classification dataset; use 'mse'")
        y = torch.as_tensor(data.y, dtype=dtype, device=device)
    elif loss == "mse":
        y = torch.nn.functional.one_hot(torch.as_tensor(data.y), data.num_outputs).to(
            dtype=dtype, device=device)
    else:
        y = torch.as_tensor(data.y, dtype=torch.int64, device=device)
    return Objective(network, x, y, loss, chunk_size)
