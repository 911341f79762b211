"""Optimizers as update maps.

An optimizer is a small frozen dataclass with three pure rules on a state, a tuple whose
first entry is the position ``x``: ``(x, v)`` (position and velocity) for GD, SGD, the
momentum methods and RMSProp, ``(x, m, v, t)`` for Adam:

- ``init(theta) -> state``;
- ``query(state) -> point``: where the gradient is evaluated;
- ``update(state, grad, eta) -> state``: one step, given ``grad = grad L(query(state))``.

The rules of GD, SGD and the momentum methods use only ``+``, ``-`` and ``*``; the adaptive
methods add a square root and a division. All run on floats, numpy arrays and sympy
symbols alike: :mod:`minimal_eos.thresholds` derives each optimizer's stability threshold
by applying its own ``update`` to symbols (the adaptive methods through their
:class:`FrozenPreconditioner` view, which is linear). The compiled simulation kernels
implement the same rules (tested to agree bit for bit with :func:`reference_run`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import sympy as sp

from ._checks import choice, in_interval, positive_float, positive_int

State = tuple[Any, ...]


@dataclass(frozen=True)
class GD:
    """Gradient descent.

    Notes
    -----
    ``x+ = x - eta grad L(x)``. On ``L = a x^2 / 2`` it is stable iff ``0 < eta a < 2``.
    """

    name: ClassVar[str] = "gd"
    code: ClassVar[int] = 0

    @property
    def beta(self) -> float:
        """Momentum coefficient (zero)."""
        return 0.0

    def init(self, theta) -> State:
        """State ``(theta, 0)``."""
        return theta, theta * 0

    def query(self, state: State):
        """Gradient at ``x``."""
        return state[0]

    def update(self, state: State, grad, eta) -> State:
        """``x+ = x - eta g``."""
        x, v = state
        return x - eta * grad, v

    def critical_sharpness(self, eta: float) -> float:
        """Sharpness above which GD on a quadratic diverges: ``2 / eta``."""
        return 2.0 / eta


@dataclass(frozen=True)
class HeavyBall:
    """Polyak's heavy-ball momentum.

    Parameters
    ----------
    beta
        Momentum coefficient in ``[0, 1)``.

    Notes
    -----
    ``v+ = beta v - eta grad L(x)``, ``x+ = x + v+``. On a quadratic of sharpness ``a`` it
    is stable iff ``eta a < 2 (1 + beta)``.
    Polyak (1964); Cohen et al. (arXiv 2103.00065), appendix on momentum.
    """

    beta: float = 0.9
    name: ClassVar[str] = "heavy_ball"
    code: ClassVar[int] = 1

    def __post_init__(self) -> None:
        _check_beta(self)

    def init(self, theta) -> State:
        """State ``(theta, 0)``."""
        return theta, theta * 0

    def query(self, state: State):
        """Gradient at ``x``."""
        return state[0]

    def update(self, state: State, grad, eta) -> State:
        """``v+ = beta v - eta g``, ``x+ = x + v+``."""
        x, v = state
        v_new = self.beta * v - eta * grad
        return x + v_new, v_new

    def critical_sharpness(self, eta: float) -> float:
        """``2 (1 + beta) / eta``."""
        return 2.0 * (1.0 + self.beta) / eta


@dataclass(frozen=True)
class Nesterov:
    """Nesterov's accelerated gradient.

    Parameters
    ----------
    beta
        Momentum coefficient in ``[0, 1)``.

    Notes
    -----
    ``v+ = beta v - eta grad L(x + beta v)``, ``x+ = x + v+``. On a quadratic of sharpness
    ``a`` it is stable iff ``eta a < (2 + 2 beta) / (1 + 2 beta)``.
    Nesterov (1983); Cohen et al. (arXiv 2103.00065).
    """

    beta: float = 0.9
    name: ClassVar[str] = "nesterov"
    code: ClassVar[int] = 2

    def __post_init__(self) -> None:
        _check_beta(self)

    def init(self, theta) -> State:
        """State ``(theta, 0)``."""
        return theta, theta * 0

    def query(self, state: State):
        """Gradient at the look-ahead point ``x + beta v``."""
        x, v = state
        return x + self.beta * v

    def update(self, state: State, grad, eta) -> State:
        """``v+ = beta v - eta g``, ``x+ = x + v+`` with ``g`` taken at ``x + beta v``."""
        x, v = state
        v_new = self.beta * v - eta * grad
        return x + v_new, v_new

    def critical_sharpness(self, eta: float) -> float:
        """``(2 + 2 beta) / ((1 + 2 beta) eta)``."""
        return (2.0 + 2.0 * self.beta) / ((1.0 + 2.0 * self.beta) * eta)


@dataclass(frozen=True)
class SGD(GD):
    """Mini-batch stochastic gradient descent.

    Parameters
    ----------
    batch_size
        Examples per mini-batch, an integer ``>= 1`` (and at most the number of examples of
        the model it runs on, checked where the data is known).
    replacement
        ``False``: each step draws ``batch_size`` distinct examples uniformly;
        ``True``: ``batch_size`` independent uniform draws (repeats possible).

    Notes
    -----
    ``x+ = x - eta g_B`` with ``g_B = (1/|B|) sum_{i in B} grad l_i(x)`` the mini-batch
    gradient: GD's update map (inherited) on the mini-batch loss, so on a quadratic whose
    examples share the Hessian it is stable iff ``eta a < 2`` (``critical_sharpness``, also
    GD's, bounds the batch sharpness). With different per-example Hessians the
    quantity that settles at ``2 / eta`` is the batch sharpness
    ``E_B[g_B^T H_B g_B / |g_B|^2]``. Batches are drawn independently at every step (no
    epochs), so the gradient noise is stationary.

    References
    ----------
    Andreyev & Beneventano, arXiv 2412.20553 (edge of stochastic stability).
    """

    batch_size: int = 1
    replacement: bool = False
    name: ClassVar[str] = "sgd"
    code: ClassVar[int] = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_size", positive_int(self.batch_size, "batch_size"))
        if not isinstance(self.replacement, bool | np.bool_):
            raise ValueError(f"replacement must be True or False; got {self.replacement!r}")
        object.__setattr__(self, "replacement", bool(self.replacement))

    def check_data(self, n_examples: int) -> None:
        """Raise a ValueError if a batch cannot be drawn from ``n_examples`` examples."""
        if not self.replacement and self.batch_size > n_examples:
            raise ValueError(
                f"batch_size must be at most the number of examples ({n_examples}) when "
                f"drawing without replacement; got {self.batch_size}"
            )


@dataclass(frozen=True)
class FrozenPreconditioner:
    """An adaptive method with its preconditioner frozen: a linear update map.

    Parameters
    ----------
    beta
        Momentum coefficient of the exponential moving average of gradients, in ``[0, 1)``
        (``beta1`` of Adam, 0 for RMSProp).
    p
        The frozen preconditioner: a positive number or array (its diagonal), ``1`` by
        default, in which case the sharpness symbol of :mod:`minimal_eos.thresholds` stands
        for an eigenvalue of ``P^{-1} H``.

    Notes
    -----
    ``m+ = beta m + (1 - beta) g``, ``x+ = x - eta P^{-1} m+``: Adam and RMSProp once the
    second-moment estimate (and Adam's bias corrections) have stopped moving, with
    ``P = sqrt(v_hat) + eps``. On ``f = x^T H x / 2`` the map is linear; along an
    eigenvector of ``P^{-1} H`` of eigenvalue ``a`` it is
    ``[[1 - eta (1 - beta) a, -eta beta], [(1 - beta) a, beta]]``, of trace
    ``1 + beta - eta (1 - beta) a`` and determinant ``beta``. Both roots stay inside the unit
    circle iff ``1 + trace + det > 0``, i.e. ``a < (2 + 2 beta) / ((1 - beta) eta)``
    (``38 / eta`` at ``beta = 0.9``, ``2 / eta`` without momentum).

    References
    ----------
    Cohen et al., "Adaptive gradient methods at the edge of stability", arXiv 2207.14484.
    """

    beta: float = 0.0
    p: Any = 1
    name: ClassVar[str] = "frozen_preconditioner"

    def __post_init__(self) -> None:
        _check_beta(self)
        if not isinstance(self.p, sp.Basic):
            p = np.asarray(self.p, dtype=float)
            if not np.all(np.isfinite(p)) or not np.all(p > 0):
                raise ValueError(f"p must be positive and finite; got {self.p!r}")

    def init(self, theta) -> State:
        """State ``(theta, 0)``: position and gradient average."""
        return theta, theta * 0

    def query(self, state: State):
        """Gradient at ``x``."""
        return state[0]

    def update(self, state: State, grad, eta) -> State:
        """``m+ = beta m + (1 - beta) g``, ``x+ = x - eta m+ / P``."""
        x, m = state
        m_new = self.beta * m + (1 - self.beta) * grad
        return x - eta * m_new / self.p, m_new

    def critical_sharpness(self, eta: float) -> float:
        """Largest stable eigenvalue of ``P^{-1} H``: ``(2 + 2 beta) / ((1 - beta) eta)``."""
        return (2.0 + 2.0 * self.beta) / ((1.0 - self.beta) * eta)


@dataclass(frozen=True)
class RMSProp:
    """RMSProp, with torch.optim.RMSprop's conventions (no momentum, not centred).

    Parameters
    ----------
    beta2
        Decay of the average of squared gradients, in ``[0, 1)`` (torch's ``alpha``).
    eps
        Added to the root of the average, > 0.

    Notes
    -----
    ``v+ = beta2 v + (1 - beta2) g^2``, ``x+ = x - eta g / (sqrt(v+) + eps)``, coordinate
    by coordinate, from ``v_0 = 0``. With ``P = sqrt(v) + eps`` frozen it is preconditioned
    GD, stable on a quadratic iff ``lambda_max(P^{-1} H) < 2 / eta``.

    References
    ----------
    Tieleman & Hinton (2012), lecture 6.5; Cohen et al., arXiv 2207.14484.
    """

    beta2: float = 0.99
    eps: float = 1e-8
    name: ClassVar[str] = "rmsprop"
    code: ClassVar[int] = 4

    def __post_init__(self) -> None:
        _check_beta(self, "beta2")
        _check_eps(self)

    def init(self, theta) -> State:
        """State ``(theta, 0)``: position and average of squared gradients."""
        return theta, theta * 0

    def query(self, state: State):
        """Gradient at ``x``."""
        return state[0]

    def update(self, state: State, grad, eta) -> State:
        """``v+ = beta2 v + (1 - beta2) g^2``, ``x+ = x - eta g / (sqrt(v+) + eps)``."""
        x, v = state
        v_new = self.beta2 * v + (1 - self.beta2) * grad * grad
        return x - eta * grad / (_sqrt(v_new) + self.eps), v_new

    def frozen(self, p=1) -> FrozenPreconditioner:
        """The linear map with the preconditioner frozen at ``p`` (no momentum)."""
        return FrozenPreconditioner(beta=0.0, p=p)

    def critical_sharpness(self, eta: float) -> float:
        """Largest stable preconditioned sharpness ``lambda_max(P^{-1} H)``: ``2 / eta``."""
        return self.frozen().critical_sharpness(eta)


@dataclass(frozen=True)
class Adam:
    """Adam, with torch.optim.Adam's conventions (no weight decay, not AMSGrad).

    Parameters
    ----------
    beta1
        Decay of the gradient average, in ``[0, 1)``.
    beta2
        Decay of the average of squared gradients, in ``[0, 1)``.
    eps
        Added to the root of the (corrected) average, > 0.
    bias_correction
        Divide the averages by ``1 - beta^t`` (torch's behaviour).

    Notes
    -----
    The state is ``(x, m, v, t)``, from ``(theta, 0, 0, 0)``; one step is
    ``t+ = t + 1``, ``m+ = beta1 m + (1 - beta1) g``, ``v+ = beta2 v + (1 - beta2) g^2``,
    ``m_hat = m+ / (1 - beta1^t+)``, ``v_hat = v+ / (1 - beta2^t+)`` (or ``m+``, ``v+``
    without bias correction), ``x+ = x - eta m_hat / (sqrt(v_hat) + eps)``.
    With ``P = sqrt(v_hat) + eps`` frozen (and ``t`` large) it is the linear map of
    :class:`FrozenPreconditioner`, stable on a quadratic iff
    ``lambda_max(P^{-1} H) < (2 + 2 beta1) / ((1 - beta1) eta)``.

    References
    ----------
    Kingma & Ba, arXiv 1412.6980; Cohen et al., arXiv 2207.14484.
    """

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    bias_correction: bool = True
    name: ClassVar[str] = "adam"
    code: ClassVar[int] = 5

    def __post_init__(self) -> None:
        _check_beta(self, "beta1")
        _check_beta(self, "beta2")
        _check_eps(self)
        if not isinstance(self.bias_correction, bool | np.bool_):
            raise ValueError(
                f"bias_correction must be True or False; got {self.bias_correction!r}"
            )
        object.__setattr__(self, "bias_correction", bool(self.bias_correction))

    def init(self, theta) -> State:
        """State ``(theta, 0, 0, 0)``: position, the two averages, the step count."""
        return theta, theta * 0, theta * 0, 0

    def query(self, state: State):
        """Gradient at ``x``."""
        return state[0]

    def update(self, state: State, grad, eta) -> State:
        """One Adam step (see Notes)."""
        x, m, v, t = state
        t_new = t + 1
        m_new = self.beta1 * m + (1 - self.beta1) * grad
        v_new = self.beta2 * v + (1 - self.beta2) * grad * grad
        m_hat, v_hat = m_new, v_new
        if self.bias_correction:
            m_hat = m_new / (1 - self.beta1**t_new)
            v_hat = v_new / (1 - self.beta2**t_new)
        return x - eta * m_hat / (_sqrt(v_hat) + self.eps), m_new, v_new, t_new

    def frozen(self, p=1) -> FrozenPreconditioner:
        """The linear map with the preconditioner frozen at ``p`` and momentum ``beta1``."""
        return FrozenPreconditioner(beta=self.beta1, p=p)

    def critical_sharpness(self, eta: float) -> float:
        """Largest stable ``lambda_max(P^{-1} H)``: ``(2 + 2 beta1) / ((1 - beta1) eta)``."""
        return self.frozen().critical_sharpness(eta)


def _sqrt(value):
    """Square root of a float, an array or a sympy expression."""
    return sp.sqrt(value) if isinstance(value, sp.Basic) else np.sqrt(value)


def _check_eps(opt) -> None:
    """Validate ``eps > 0``; a sympy symbol is kept for symbolic derivations."""
    if not isinstance(opt.eps, sp.Basic) or opt.eps.is_number:
        object.__setattr__(opt, "eps", positive_float(opt.eps, "eps"))


def _check_beta(opt, field: str = "beta") -> None:
    """Validate a numerical momentum; a sympy symbol is kept for symbolic derivations."""
    value = getattr(opt, field)
    if not isinstance(value, sp.Basic) or value.is_number:
        object.__setattr__(opt, field, in_interval(value, field, 0.0, 1.0))


Optimizer = GD | HeavyBall | Nesterov | SGD | RMSProp | Adam
OPTIMIZERS = {cls.name: cls for cls in (GD, HeavyBall, Nesterov, SGD, RMSProp, Adam)}
#: the deterministic, traced update maps of the compiled full-batch kernels
KERNEL_OPTIMIZERS = {cls.name: cls for cls in (GD, HeavyBall, Nesterov)}


def get_optimizer(name: str, **kwargs) -> Optimizer:
    """Build an optimizer by name: ``"gd"``, ``"heavy_ball"``, ``"nesterov"``, ``"sgd"``,
    ``"rmsprop"`` or ``"adam"``.

    Examples
    --------
    >>> get_optimizer("heavy_ball", beta=0.5)
    HeavyBall(beta=0.5)
    """
    choice(name, "optimizer", OPTIMIZERS)
    try:
        return OPTIMIZERS[name](**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad parameters for the {name} optimizer: {exc}") from None


def check_optimizer(optimizer) -> Optimizer:
    """Accept an optimizer instance or a name; raise a ValueError otherwise."""
    if isinstance(optimizer, str):
        return get_optimizer(optimizer)
    if not isinstance(optimizer, tuple(OPTIMIZERS.values())):
        raise ValueError(
            f"optimizer must be GD(), HeavyBall(beta), Nesterov(beta), SGD(batch_size), "
            f"RMSProp(beta2, eps), Adam(beta1, beta2, eps) or one of the names "
            f"{', '.join(map(repr, OPTIMIZERS))}; got {optimizer!r}"
        )
    return optimizer


def reference_run(model, optimizer, theta0, etas, *, seed: int = 0, run: int = 0) -> np.ndarray:
    """Run the update map in plain numpy: the slow, independent route for tests.

    Parameters
    ----------
    model
        A :class:`~minimal_eos.models.Model` (with per-example losses for SGD).
    optimizer
        The update map.
    theta0
        Initial point, shape ``(d,)``.
    etas
        The step size of each step, shape ``(steps,)``.
    seed, run
        For SGD: the keys of the mini-batch draws, as run ``run`` of
        :func:`~minimal_eos.simulate` with this ``seed``.

    Returns
    -------
    numpy.ndarray
        The iterates ``x_0, ..., x_steps``, shape ``(steps + 1, d)``.
    """
    state = optimizer.init(np.asarray(theta0, dtype=float))
    out = [state[0]]
    if isinstance(optimizer, SGD):
        from ._sgd import minibatch_gradient

        optimizer.check_data(len(model.example_params()))
        seed = positive_int(seed, "seed", minimum=0)
        run = positive_int(run, "run", minimum=0)
    for t, eta in enumerate(etas):
        q = optimizer.query(state)
        if isinstance(optimizer, SGD):
            g = minibatch_gradient(model, q, optimizer, seed, run, t)
        else:
            g = model.grad(q)
        state = optimizer.update(state, g, eta)
        out.append(state[0])
    return np.array(out)
