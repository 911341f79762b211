"""Models: frozen dataclasses of parameters with compiled loss, gradient, Hessian, sharpness."""

from .base import Model, SymbolicModel
from .cubic import CubicModel
from .diagonal import DiagonalNetwork, DLNRun, dln_gd
from .logistic import LogisticRegression, LogisticRun, logistic_gd
from .product import ProductModel
from .quadratic import FiniteSumQuadratic, Quadratic
from .scalar import ScalarNetwork
from .sharpening import SharpeningValley
from .two_layer import TwoLayerNetwork
from .uv import UVModel

__all__ = ["CubicModel", "DLNRun", "DiagonalNetwork", "FiniteSumQuadratic", "LogisticRegression",
           "LogisticRun",
           "Model", "ProductModel", "Quadratic", "ScalarNetwork",
           "SharpeningValley", "SymbolicModel", "TwoLayerNetwork", "UVModel", "dln_gd",
           "logistic_gd"]
