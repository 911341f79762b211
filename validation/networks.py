"""Networks as pure functions of one flat parameter vector.

Every network is ``apply(w, x)`` with ``w`` a 1-D tensor, so that gradients,
Hessian-vector products and third derivatives are plain ``torch.func`` transforms of a
function of one vector.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

ARCHITECTURES = ("mlp", "cnn", "linear")
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "elu": F.elu,
    "softplus": F.softplus,
    "gelu": F.gelu,
}
PARAMETRIZATIONS = ("standard", "ntk")


@dataclass(frozen=True)
class _Layer:
    kind: str  # "dense" or "conv"
    weight_shape: tuple[int, ...]
    bias: bool
    fan_in: int


@dataclass(frozen=True)
class Network:
    """A feed-forward network ``f(w, x)`` with all parameters in one flat vector.

    Attributes
    ----------
    arch : {"mlp", "cnn", "linear"}
        Multi-layer perceptron, small convolutional network, or deep linear network.
    input_shape : tuple of int
        Shape of one input example.
    num_outputs : int
        Output width.
    depth : int
        Number of hidden layers (MLP, linear) or convolutional layers (CNN).
    width : int
        Hidden width (MLP, linear) or channels (CNN).
    activation : str
        One of ``ACTIVATIONS`` (ignored by the linear network).
    parametrization : {"standard", "ntk"}
        Standard: ``z = W h + b`` with ``W ~ N(0, 1/fan_in)``. NTK:
        ``z = W h / sqrt(fan_in) + b`` with ``W ~ N(0, 1)``. Both give the same
        function at initialisation; gradients differ by ``fan_in`` per layer.

    Notes
    -----
    The MLP is ``x -> phi(W_1 x + b_1) -> ... -> W_{D+1} h_D + b_{D+1}``. The CNN has
    ``depth`` convolutions (kernel 3, padding 1, stride 1, then activation and average
    pooling by 2 when the spatial size allows), global average pooling and a dense
    read-out; it handles 1-D signals ``(C, L)`` and images ``(C, H, W)``. The deep linear
    network is ``W_{D+1} ... W_1 x`` without biases, the simplest architecture showing
    progressive sharpening (Cohen et al., arXiv 2103.00065). Biases start at zero.
    """

    arch: str
    input_shape: tuple[int, ...]
    num_outputs: int
    depth: int
    width: int
    activation: str
    parametrization: str
    layers: tuple[_Layer, ...]

    @property
    def num_params(self) -> int:
        """Total number of parameters."""
        return sum(math.prod(lay.weight_shape) + (lay.weight_shape[0] if lay.bias else 0)
                   for lay in self.layers)

    def init(self, *, generator: torch.Generator, dtype: torch.dtype = torch.float64,
             device: torch.device | str = "cpu") -> torch.Tensor:
        """Draw initial parameters from ``generator`` (on CPU, then moved to ``device``)."""
        chunks = []
        for lay in self.layers:
            std = 1.0 if self.parametrization == "ntk" else 1.0 / math.sqrt(lay.fan_in)
            w = torch.randn(math.prod(lay.weight_shape), generator=generator,
                            dtype=torch.float64) * std
            chunks.append(w)
            if lay.bias:
                chunks.append(torch.zeros(lay.weight_shape[0], dtype=torch.float64))
        return torch.cat(chunks).to(device=device, dtype=dtype)

    def apply(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Network output for a batch ``x`` of shape ``(B, *input_shape)``: ``(B, num_outputs)``."""
        phi = ACTIVATIONS.get(self.activation, torch.tanh)
        ntk = self.parametrization == "ntk"
        h = x
        offset = 0
        if self.arch != "cnn":
            h = h.reshape(h.shape[0], -1)
        last = len(self.layers) - 1
        for i, lay in enumerate(self.layers):
            size = math.prod(lay.weight_shape)
            weight = w[offset: offset + size].view(lay.weight_shape)
            offset += size
            bias = None
            if lay.bias:
                bias = w[offset: offset + lay.weight_shape[0]]
                offset += lay.weight_shape[0]
            if ntk:
                weight = weight / math.sqrt(lay.fan_in)
            if lay.kind == "conv":
                conv = F.conv1d if h.dim() == 3 else F.conv2d
                h = conv(h, weight, bias, padding=1)
                h = phi(h)
                if min(h.shape[2:]) >= 4:
                    h = (F.avg_pool1d if h.dim() == 3 else F.avg_pool2d)(h, 2)
                if i + 1 <= last and self.layers[i + 1].kind == "dense":
                    h = h.mean(dim=tuple(range(2, h.dim())))
            else:
                h = F.linear(h, weight, bias)
                if i < last and self.arch != "linear":
                    h = phi(h)
        return h


def build_network(
    arch: str,
    input_shape: tuple[int, ...],
    num_outputs: int,
    *,
    depth: int = 2,
    width: int = 64,
    activation: str = "tanh",
    parametrization: str = "standard",
) -> Network:
    """Build a :class:`Network`, checking every argument.

    Parameters
    ----------
    arch : {"mlp", "cnn", "linear"}
        Architecture.
    input_shape : tuple of int
        Shape of one example; the CNN needs ``(C, L)`` or ``(C, H, W)``.
    num_outputs : int
        Output width (>= 1).
    depth : int
        Hidden layers (>= 1); the deep linear network of Cohen et al. has 20.
    width : int
        Hidden width or channels (>= 1).
    activation : {"tanh", "relu", "elu", "softplus", "gelu"}
        Non-linearity (the linear network has none).
    parametrization : {"standard", "ntk"}
        See :class:`Network`.

    Returns
    -------
    Network

    Examples
    --------
    >>> net = build_network("mlp", (40,), 10, depth=2, width=32)
    >>> net.num_params
    2698
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; accepted: {', '.join(ARCHITECTURES)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; accepted: {', '.join(ACTIVATIONS)}")
    if parametrization not in PARAMETRIZATIONS:
        raise ValueError(
            f"unknown parametrization {parametrization!r}; accepted: {', '.join(PARAMETRIZATIONS)}"
        )
    for value, label in ((depth, "depth"), (width, "width"), (num_outputs, "num_outputs")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be an integer >= 1; got {value!r}")
    input_shape = tuple(int(s) for s in input_shape)
    layers: list[_Layer] = []
    if arch == "cnn":
        if len(input_shape) not in (2, 3):
            raise ValueError(
                f"the cnn needs inputs of shape (C, L) or (C, H, W); got {input_shape}"
            )
        channels = input_shape[0]
        ksize = (3,) * (len(input_shape) - 1)
        for _ in range(depth):
            fan_in = channels * math.prod(ksize)
            layers.append(_Layer("conv", (width, channels, *ksize), True, fan_in))
            channels = width
        layers.append(_Layer("dense", (num_outputs, channels), True, channels))
    else:
        fan_in = math.prod(input_shape)
        bias = arch == "mlp"
        for _ in range(depth):
            layers.append(_Layer("dense", (width, fan_in), bias, fan_in))
            fan_in = width
        layers.append(_Layer("dense", (num_outputs, fan_in), bias, fan_in))
    return Network(arch, input_shape, num_outputs, depth, width, activation, parametrization,
                   tuple(layers))


class NetworkSize(NamedTuple):
    """Size of a network: see :func:`network_size`."""

    params: int
    macs: int
    activations: int


def network_size(arch: str, input_shape: tuple[int, ...], num_outputs: int, *, depth: int,
                 width: int) -> NetworkSize:
    """Parameters, multiply-adds and activations per example of a network, in closed form.

    Cheap for any ``depth`` and ``width`` (nothing is built), so that a run can be
    sized before :func:`build_network` allocates anything.

    Parameters
    ----------
    arch, input_shape, num_outputs, depth, width
        As in :func:`build_network` (not checked here).

    Returns
    -------
    NetworkSize
        ``params``: number of parameters, equal to ``build_network(...).num_params``;
        ``macs``: multiply-adds of one forward pass on one example (weights times the
        positions they are applied at); ``activations``: numbers one forward pass on one
        example produces (layer outputs, and pooled outputs).

    Notes
    -----
    With ``d`` the input size, ``w`` the width, ``D`` the depth and ``o`` the outputs,
    the MLP has ``d w + (D - 1) w^2 + w o`` weights and ``D w + o`` biases (the linear
    network no biases), each weight used once per example. The CNN's layer ``l`` has
    ``w c_l 3^r`` weights (``c_1`` the input channels, ``c_l = w`` after, ``r`` the
    number of spatial axes), used at each of the ``P_l`` positions of its input, where
    ``P_l`` halves along every axis after each layer whose output is at least 4 wide.
    """
    if arch != "cnn":
        d = math.prod(input_shape)
        weights = d * width + (depth - 1) * width * width + width * num_outputs
        biases = depth * width + num_outputs if arch == "mlp" else 0
        return NetworkSize(weights + biases, weights, depth * width + num_outputs)
    channels, spatial = input_shape[0], list(input_shape[1:])
    kernel = 3 ** len(spatial)
    params = width * channels * kernel + width + (depth - 1) * (width * width * kernel + width)
    params += num_outputs * width + num_outputs
    macs = activations = 0
    layer = 0
    while layer < depth:
        fan_in = (channels if layer == 0 else width) * kernel
        positions = math.prod(spatial)
        if layer > 0 and min(spatial) < 4:
            # the size no longer changes: every remaining layer costs the same
            macs += (depth - layer) * width * fan_in * positions
            activations += (depth - layer) * width * positions
            break
        macs += width * fan_in * positions
        activations += width * positions
        if min(spatial) >= 4:
            spatial = [s // 2 for s in spatial]
            activations += width * math.prod(spatial)
        layer += 1
    return NetworkSize(params, macs + num_outputs * width, activations + num_outputs)
