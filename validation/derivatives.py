"""Finite-difference checks of the derivatives every prediction is built on.

The sharpness tracker multiplies by the Hessian, ``H(w) v``, and the central flow and
self-stabilization use the third derivative ``grad_w (u^T H(w) u)``. Both come from
repeated reverse-mode passes (:class:`~validation.objective.Objective`), and a wrong
higher derivative of one operation (a normalisation layer, a custom activation) would make
every prediction of a run wrong without any visible sign. :func:`check_derivatives`
compares both with central finite differences of the lower derivative, in float64;
:func:`check_run` does so for the network, loss and data of a run, on a few examples, and
:class:`~validation.experiment.Experiment` calls it before anything is measured, unless it
is handed the passed check of its own configuration (``python -m validation.compare``
checks before any work and hands its check on, so that a run is checked once).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from validation.data import Dataset, load_dataset
from validation.networks import Network, build_network
from validation.objective import Objective, make_objective

if TYPE_CHECKING:
    from validation.experiment import Config

#: Step sizes tried, largest first, along a unit direction.
STEPS = (1e-5, 1e-6, 1e-7)
#: Largest relative error, ``|autograd - finite difference| / |finite difference|``.
TOLERANCE = 1e-6
#: Examples of a run's training set the check uses (the first ones).
EXAMPLES = 32
#: Seed of the check's point and directions (its own generator: a run's draws are untouched).
SEED = 12345


class DerivativeError(RuntimeError):
    """An automatic derivative of a network disagrees with its finite difference.

    Parameters
    ----------
    arch : str
        The architecture checked.
    derivative : str
        ``"hvp"`` or ``"third"``.
    error : float
        The smallest relative error over the steps of :data:`STEPS`.
    tolerance : float
        The tolerance it exceeds.
    """

    def __init__(self, arch: str, derivative: str, error: float, tolerance: float) -> None:
        what = {"hvp": "Hessian-vector product H v",
                "third": "third derivative grad_w (u^T H u)"}[derivative]
        super().__init__(f"arch {arch!r}: the {what} differs from its central finite "
                         f"difference by a relative error of {error:.3g} (tolerance "
                         f"{tolerance:.0e}) at every step of {', '.join(map(str, STEPS))}; "
                         f"refusing to measure a network whose derivatives are wrong")
        self.arch, self.derivative, self.error, self.tolerance = arch, derivative, error, tolerance


@dataclass(frozen=True)
class DerivativeCheck:
    """Result of :func:`check_derivatives`.

    Attributes
    ----------
    hvp_error, third_error : float
        Relative errors of ``H v`` and of ``grad_w (u^T H u)`` at the first step of
        :data:`STEPS` that passed.
    hvp_step, third_step : float
        That step.
    config : Config or None
        The run checked, when the check is :func:`check_run`'s (None otherwise): an
        :class:`~validation.experiment.Experiment` of this configuration handed this check
        does not check again.
    """

    hvp_error: float
    third_error: float
    hvp_step: float
    third_step: float
    config: Config | None = None


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = max(float(torch.linalg.vector_norm(a)), float(torch.linalg.vector_norm(b)))
    return 0.0 if scale == 0.0 else float(torch.linalg.vector_norm(a - b)) / scale


def _compare(exact: torch.Tensor, lower, w: torch.Tensor, v: torch.Tensor,
             tolerance: float) -> tuple[float, float]:
    """``(error, step)`` at the first step whose central difference of ``lower`` along
    ``v`` matches ``exact``; ``(smallest error, nan)`` when none does."""
    errors = []
    for h in STEPS:
        diff = (lower(w + h * v) - lower(w - h * v)) / (2 * h)
        errors.append(_relative(exact, diff))
        if errors[-1] <= tolerance:
            return errors[-1], h
    return min(errors), math.nan


def check_derivatives(objective: Objective, w: torch.Tensor, *, arch: str,
                      generator: torch.Generator, tolerance: float = TOLERANCE
                      ) -> DerivativeCheck:
    """Compare ``H v`` and ``grad_w (u^T H u)`` with central finite differences.

    Parameters
    ----------
    objective : Objective
        A float64 loss (float32 rounding would swamp the differences).
    w : torch.Tensor
        The point, float64.
    arch : str
        Name used in the error message.
    generator : torch.Generator
        Draws the unit directions ``v`` and ``u``.
    tolerance : float
        Largest relative error accepted.

    Returns
    -------
    DerivativeCheck

    Raises
    ------
    DerivativeError
        When a derivative misses ``tolerance`` at every step of :data:`STEPS`.
    ValueError
        When ``w`` or the objective's data are not float64.

    Notes
    -----
    With ``|v| = |u| = 1`` and ``h`` a step of :data:`STEPS`:

    * ``H v`` against ``(grad L(w + h v) - grad L(w - h v)) / (2 h)``;
    * ``grad_w (u^T H u) = nabla^3 L(w)[u, u, .]`` against
      ``(H(w + h u) u - H(w - h u) u) / (2 h)``: by the symmetry of the third derivative
      the difference of Hessian-vector products along ``u`` is the whole vector
      ``nabla^3 L[u, ., u]``. It relies on ``H v``, checked first.

    The error is ``|a - d| / max(|a|, |d|)`` over the whole vector. The central
    difference's truncation error is ``h^2 / 6`` times the next derivative along the
    direction, about ``1e-11`` relative at ``h = 1e-5`` for weights of order one; its
    rounding error is about ``eps |lower| / h`` with ``eps = 2.2e-16``, which grows to
    ``2e-9 |lower| / |a|`` at ``h = 1e-7``. Measured on 32 MNIST-1D examples (tanh and
    ReLU MLPs and CNNs, a 20-layer linear network, transformers with and without
    normalisation; squared loss and cross-entropy; both parametrisations), correct
    derivatives are within ``1.2e-9`` at ``h = 1e-5``, ``9.5e-9`` at ``1e-6`` and
    ``1.0e-7`` at ``1e-7``: :data:`TOLERANCE` ``= 1e-6`` leaves a factor 10 at the
    smallest step and 800 at the first. A derivative that drops one term is off by
    ``0.04`` to ``0.9`` (tanh without its second or third derivative in an MLP, CNN or
    transformer), torch's ``layer_norm`` in the transformer by ``0.05`` to ``0.13``
    (third derivative). A ReLU kink inside ``[w - h v, w + h v]`` makes the gradient
    jump and one difference wrong (at ``h = 1e-4`` the ReLU CNN's ``H v`` was off by
    ``0.17``); a wrong derivative is wrong at every step, so the check passes at the
    first step that matches and fails only when all of :data:`STEPS` miss.

    Examples
    --------
    >>> import torch
    >>> from validation.data import load_dataset
    >>> from validation.networks import build_network
    >>> from validation.objective import make_objective
    >>> data = load_dataset("synthetic", n=8, seed=0)
    >>> net = build_network("mlp", data.input_shape, 1, depth=1, width=4)
    >>> gen = torch.Generator().manual_seed(0)
    >>> res = check_derivatives(make_objective(net, data), net.init(generator=gen),
    ...                         arch="mlp", generator=gen)
    >>> res.hvp_error < TOLERANCE and res.third_error < TOLERANCE
    True
    """
    if w.dtype != torch.float64 or objective.x.dtype != torch.float64:
        raise ValueError(f"w and the objective must be float64; got {w.dtype} and "
                         f"{objective.x.dtype}")
    v, u = torch.randn(w.numel(), 2, generator=generator, dtype=torch.float64).T
    v, u = v / torch.linalg.vector_norm(v), u / torch.linalg.vector_norm(u)
    hvp_error, hvp_step = _compare(objective.hvp(w, v), objective.grad, w, v, tolerance)
    if math.isnan(hvp_step):
        raise DerivativeError(arch, "hvp", hvp_error, tolerance)
    third_error, third_step = _compare(objective.third(w, u),
                                       lambda p: objective.hvp(p, u), w, u, tolerance)
    if math.isnan(third_step):
        raise DerivativeError(arch, "third", third_error, tolerance)
    return DerivativeCheck(hvp_error, third_error, hvp_step, third_step)


def check_network(network: Network, data: Dataset, loss: str, *,
                  examples: int = EXAMPLES) -> DerivativeCheck:
    """:func:`check_derivatives` of ``network`` with ``loss`` on the first ``examples``
    examples of ``data``, in float64, at a draw of the network's initialisation from
    its own generator (seed :data:`SEED`; the read-out is kept, a zero read-out would
    hide the other layers' higher derivatives)."""
    obj = make_objective(network, data, loss=loss, dtype=torch.float64)
    m = min(examples, obj.n)
    small = Objective(network, obj.x[:m], obj.y[:m], loss, chunk_size=m)
    gen = torch.Generator().manual_seed(SEED)
    w = network.init(generator=gen, dtype=torch.float64)
    return check_derivatives(small, w, arch=network.arch, generator=gen)


def check_run(config: Config, data: Dataset | None = None) -> DerivativeCheck:
    """:func:`check_network` for the network, loss and data of a run.

    Parameters
    ----------
    config : Config
        The run.
    data : Dataset, optional
        Its training set when already loaded (default: the first :data:`EXAMPLES`
        examples are loaded, with the run's source, classes, standardisation and seed).

    Returns
    -------
    DerivativeCheck
        With ``config`` set: handed to :class:`~validation.experiment.Experiment` (or
        :func:`~validation.experiment.run_experiment`) as ``checked``, it spares the run a
        second check.

    Raises
    ------
    DerivativeError
        When the network's ``H v`` or ``grad_w (u^T H u)`` is wrong.
    """
    if data is None:
        data = load_dataset(config.dataset, n=min(config.n, EXAMPLES), classes=config.classes,
                            standardize=config.standardize, seed=config.seed,
                            cifar_path=config.cifar_path)
    network = build_network(config.arch, data.input_shape, data.num_outputs,
                            depth=config.depth, width=config.width,
                            activation=config.activation,
                            parametrization=config.parametrization)
    return dataclasses.replace(check_network(network, data, config.loss), config=config)
