"""minimal-eos: gradient descent at the edge of stability, made runnable.

Models are frozen dataclasses whose loss is written once in sympy; optimizers are update
maps; :func:`simulate` runs a compiled batch of runs; :mod:`minimal_eos.thresholds`
derives stability thresholds from any linear update map.
"""

from .flows import central_flow, gradient_flow, rmsprop_central_flow
from .models import (
    CubicModel,
    DiagonalNetwork,
    FiniteSumQuadratic,
    LogisticRegression,
    Model,
    ProductModel,
    Quadratic,
    ScalarNetwork,
    SharpeningValley,
    SymbolicModel,
    TwoLayerNetwork,
    UVModel,
    dln_gd,
    logistic_gd,
)
from .optimizers import (
    GD,
    SGD,
    Adam,
    FrozenPreconditioner,
    HeavyBall,
    Nesterov,
    RMSProp,
    get_optimizer,
    reference_run,
)
from .schedules import Adaptive, Constant, Drop, Warmup, get_schedule
from .simulate import SimulationResult, Status, simulate
from .stabilization import (
    ReducedMap,
    constrained_trajectory,
    detect_phases,
    stabilization_constants,
)
from .symbolic import SymbolicLoss

__all__ = [
    "GD",
    "SGD",
    "Adam",
    "Adaptive",
    "Constant",
    "CubicModel",
    "DiagonalNetwork",
    "Drop",
    "FiniteSumQuadratic",
    "FrozenPreconditioner",
    "HeavyBall",
    "LogisticRegression",
    "Model",
    "Nesterov",
    "ProductModel",
    "Quadratic",
    "RMSProp",
    "ReducedMap",
    "ScalarNetwork",
    "SharpeningValley",
    "SimulationResult",
    "Status",
    "SymbolicLoss",
    "SymbolicModel",
    "TwoLayerNetwork",
    "UVModel",
    "Warmup",
    "central_flow",
    "constrained_trajectory",
    "detect_phases",
    "dln_gd",
    "get_optimizer",
    "get_schedule",
    "gradient_flow",
    "logistic_gd",
    "reference_run",
    "rmsprop_central_flow",
    "simulate",
    "stabilization_constants",
]
