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

ARCHITECTURES = ("mlp", "cnn", "linear", "transformer")
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "elu": F.elu,
    "softplus": F.softplus,
    "gelu": F.gelu,
}
PARAMETRIZATIONS = ("standard", "ntk")
#: Consecutive samples of a 1-D signal that make one token of the transformer (MNIST-1D's
#: 40 samples make 10 tokens).
PATCH = 4
#: Attention heads of every transformer block (``width`` must be a multiple).
HEADS = 2
#: Hidden width of the transformer's MLP, in multiples of ``width``.
MLP_RATIO = 2
#: ``eps`` of the transformer's layer normalisations.
NORM_EPS = 1e-5


@dataclass(frozen=True)
class _Layer:
    kind: str  # "dense", "conv", "position" (a table added to the tokens) or "norm" (gain)
    weight_shape: tuple[int, ...]
    bias: bool
    fan_in: int


@dataclass(frozen=True)
class Network:
    """A feed-forward network ``f(w, x)`` with all parameters in one flat vector.

    Attributes
    ----------
    arch : {"mlp", "cnn", "linear", "transformer"}
        Multi-layer perceptron, small convolutional network, deep linear network, or small
        transformer.
    input_shape : tuple of int
        Shape of one input example.
    num_outputs : int
        Output width.
    depth : int
        Number of hidden layers (MLP, linear), convolutional layers (CNN) or blocks
        (transformer).
    width : int
        Hidden width (MLP, linear), channels (CNN) or token dimension (transformer).
    activation : str
        One of ``ACTIVATIONS`` (ignored by the linear network; the transformer's MLPs).
    parametrization : {"standard", "ntk"}
        Standard: ``z = W h + b`` with ``W ~ N(0, 1/fan_in)``. NTK:
        ``z = W h / sqrt(fan_in) + b`` with ``W ~ N(0, 1)``. Both give the same
        function at initialisation; gradients differ by ``fan_in`` per layer.
    layers : tuple of _Layer
        Every weight array in the order of the flat vector.
    norm : bool
        Whether the transformer has its layer normalisations (True for the others).

    Notes
    -----
    The MLP is ``x -> phi(W_1 x + b_1) -> ... -> W_{D+1} h_D + b_{D+1}``. The CNN has
    ``depth`` convolutions (kernel 3, padding 1, stride 1, then activation and average
    pooling by 2 when the spatial size allows), global average pooling and a dense
    read-out; it handles 1-D signals ``(C, L)`` and images ``(C, H, W)``. The deep linear
    network is ``W_{D+1} ... W_1 x`` without biases, the simplest architecture showing
    progressive sharpening (Cohen et al., arXiv 2103.00065). Biases start at zero.

    The transformer (Vaswani et al., arXiv 1706.03762, with the pre-normalisation of
    Xiong et al., arXiv 2002.04745) reads a signal ``(C, L)`` as ``T = L / PATCH`` tokens,
    each the ``C * PATCH`` samples of one patch. With ``d = width``:

    * ``h_0 = E p_t + e + P_t``, a dense embedding of every patch ``p_t`` plus a learned
      position ``P_t`` (the ``"position"`` layer, drawn ``N(0, 1)``);
    * ``depth`` blocks ``h <- h + A(N_1(h))``, ``h <- h + W_2 phi(W_1 N_2(h) + b_1) + b_2``,
      with ``N(h) = g * (h - mean h) / sqrt(var h + NORM_EPS) + b`` a layer normalisation
      over the ``d`` features (``g = 1``, ``b = 0`` at initialisation; omitted when
      ``norm`` is False), ``W_1`` of ``MLP_RATIO * d`` rows, and ``A`` multi-head
      self-attention with ``HEADS`` heads of dimension ``d_h = d / HEADS``:
      ``[Q, K, V] = W_qkv h + b_qkv``, head ``i`` is
      ``softmax(Q_i K_i^T / sqrt(d_h)) V_i``, and ``A = W_o [head_1, ...] + b_o``;
    * a last normalisation, the mean over tokens and a dense read-out.

    Normalisation gains and positions have ``fan_in = 1``, so both parametrisations use
    them as drawn.
    """

    arch: str
    input_shape: tuple[int, ...]
    num_outputs: int
    depth: int
    width: int
    activation: str
    parametrization: str
    layers: tuple[_Layer, ...]
    norm: bool = True

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
            if lay.kind == "norm":
                w = torch.ones(math.prod(lay.weight_shape), dtype=torch.float64)
            else:
                w = torch.randn(math.prod(lay.weight_shape), generator=generator,
                                dtype=torch.float64) * std
            chunks.append(w)
            if lay.bias:
                chunks.append(torch.zeros(lay.weight_shape[0], dtype=torch.float64))
        return torch.cat(chunks).to(device=device, dtype=dtype)

    def apply(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Network output for a batch ``x`` of shape ``(B, *input_shape)``: ``(B, num_outputs)``."""
        phi = ACTIVATIONS.get(self.activation, torch.tanh)
        if self.arch == "transformer":
            return self._transformer(w, x, phi)
        h = x
        if self.arch != "cnn":
            h = h.reshape(h.shape[0], -1)
        last = len(self.layers) - 1
        for i, (lay, (weight, bias)) in enumerate(zip(self.layers, self._weights(w),
                                                      strict=True)):
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

    def _weights(self, w: torch.Tensor):
        """``(weight, bias)`` of every layer in order, scaled by ``1/sqrt(fan_in)`` (NTK)."""
        offset = 0
        ntk = self.parametrization == "ntk"
        for lay in self.layers:
            size = math.prod(lay.weight_shape)
            weight = w[offset: offset + size].view(lay.weight_shape)
            offset += size
            bias = None
            if lay.bias:
                bias = w[offset: offset + lay.weight_shape[0]]
                offset += lay.weight_shape[0]
            yield (weight / math.sqrt(lay.fan_in) if ntk else weight), bias

    def _transformer(self, w: torch.Tensor, x: torch.Tensor,
                     phi: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The transformer of the class notes on ``x`` of shape ``(B, C, L)``."""
        layers = self._weights(w)
        d = self.width
        b, c, length = x.shape
        tokens = length // PATCH
        patches = x.reshape(b, c, tokens, PATCH).permute(0, 2, 1, 3).reshape(b, tokens,
                                                                              c * PATCH)
        h = F.linear(patches, *next(layers)) + next(layers)[0]

        def norm(z: torch.Tensor) -> torch.Tensor:
            if not self.norm:
                return z
            gain, shift = next(layers)
            return _layer_norm(z, gain, shift)

        dh = d // HEADS
        for _ in range(self.depth):
            q, k, v = F.linear(norm(h), *next(layers)).split(d, dim=-1)
            q, k, v = (z.reshape(b, tokens, HEADS, dh).transpose(1, 2) for z in (q, k, v))
            att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dh), dim=-1)
            heads = (att @ v).transpose(1, 2).reshape(b, tokens, d)
            h = h + F.linear(heads, *next(layers))
            hidden = phi(F.linear(norm(h), *next(layers)))
            h = h + F.linear(hidden, *next(layers))
        return F.linear(norm(h).mean(dim=1), *next(layers))


def _layer_norm(z: torch.Tensor, gain: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``g * (z - mean z) / sqrt(var z + NORM_EPS) + b`` over the last axis, written with
    elementary operations: the third derivative of ``torch.nn.functional.layer_norm``
    (reverse and forward mode) disagrees with finite differences in torch 2.13 (README,
    "Derivative checks"), and the central flow needs it."""
    centred = z - z.mean(dim=-1, keepdim=True)
    var = (centred * centred).mean(dim=-1, keepdim=True)
    return centred * torch.rsqrt(var + NORM_EPS) * gain + shift


def build_network(
    arch: str,
    input_shape: tuple[int, ...],
    num_outputs: int,
    *,
    depth: int = 2,
    width: int = 64,
    activation: str = "tanh",
    parametrization: str = "standard",
    norm: bool = True,
) -> Network:
    """Build a :class:`Network`, checking every argument.

    Parameters
    ----------
    arch : {"mlp", "cnn", "linear", "transformer"}
        Architecture.
    input_shape : tuple of int
        Shape of one example; the CNN needs ``(C, L)`` or ``(C, H, W)``, the transformer
        ``(C, L)`` with ``L`` a multiple of ``PATCH``.
    num_outputs : int
        Output width (>= 1).
    depth : int
        Hidden layers or blocks (>= 1); the deep linear network of Cohen et al. has 20.
    width : int
        Hidden width, channels or token dimension (>= 1; the transformer's a multiple of
        ``HEADS``).
    activation : {"tanh", "relu", "elu", "softplus", "gelu"}
        Non-linearity (the linear network has none).
    parametrization : {"standard", "ntk"}
        See :class:`Network`.
    norm : bool
        The transformer's layer normalisations (ignored by the other architectures).

    Returns
    -------
    Network

    Examples
    --------
    >>> net = build_network("mlp", (40,), 10, depth=2, width=32)
    >>> net.num_params
    2698
    >>> build_network("transformer", (1, 40), 10, depth=1, width=32).num_params
    9418
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
    elif arch == "transformer":
        if len(input_shape) != 2 or input_shape[1] % PATCH:
            raise ValueError(f"the transformer needs signals (C, L) with L a multiple of "
                             f"{PATCH}; got {input_shape}")
        if width % HEADS:
            raise ValueError(f"width must be a multiple of the {HEADS} heads; got {width}")
        layers += _transformer_layers(input_shape, num_outputs, depth, width, norm)
    else:
        fan_in = math.prod(input_shape)
        bias = arch == "mlp"
        for _ in range(depth):
            layers.append(_Layer("dense", (width, fan_in), bias, fan_in))
            fan_in = width
        layers.append(_Layer("dense", (num_outputs, fan_in), bias, fan_in))
    return Network(arch, input_shape, num_outputs, depth, width, activation, parametrization,
                   tuple(layers), bool(norm) if arch == "transformer" else True)


def _transformer_layers(input_shape: tuple[int, ...], num_outputs: int, depth: int, width: int,
                        norm: bool) -> list[_Layer]:
    """The transformer's layers in the order :meth:`Network._transformer` reads them."""
    channels, length = input_shape
    d, hidden = width, MLP_RATIO * width
    gain = [_Layer("norm", (d,), True, 1)] if norm else []
    layers = [_Layer("dense", (d, channels * PATCH), True, channels * PATCH),
              _Layer("position", (length // PATCH, d), False, 1)]
    for _ in range(depth):
        layers += [*gain, _Layer("dense", (3 * d, d), True, d), _Layer("dense", (d, d), True, d)]
        layers += [*gain, _Layer("dense", (hidden, d), True, d),
                   _Layer("dense", (d, hidden), True, hidden)]
    return [*layers, *gain, _Layer("dense", (num_outputs, d), True, d)]


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
    The transformer (with its normalisations) on ``T`` tokens of ``e = C * PATCH`` samples,
    with ``r = MLP_RATIO``, has ``e w + w + T w`` embedding parameters,
    ``(4 + 2 r) w^2 + (9 + r) w`` per block (attention ``3 w^2 + 3 w`` and ``w^2 + w``,
    MLP ``2 r w^2 + r w + w``, two normalisations ``4 w``), a last normalisation ``2 w``
    and the read-out ``w o + o``; one example costs ``T e w`` multiply-adds to embed,
    ``T (4 + 2 r) w^2 + 2 T^2 w`` per block (the projections, then the attention scores
    and their weighted sum of values over all heads) and ``w o`` to read out.
    """
    if arch == "transformer":
        return _transformer_size(input_shape, num_outputs, depth, width)
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


def _transformer_size(input_shape: tuple[int, ...], num_outputs: int, depth: int,
                      width: int) -> NetworkSize:
    """:func:`network_size` of the transformer (with its normalisations)."""
    tokens, embed, r, w = input_shape[-1] // PATCH, input_shape[0] * PATCH, MLP_RATIO, width
    params = embed * w + w + tokens * w + 2 * w + w * num_outputs + num_outputs
    params += depth * ((4 + 2 * r) * w * w + (9 + r) * w)
    macs = tokens * embed * w + depth * (tokens * (4 + 2 * r) * w * w + 2 * tokens ** 2 * w)
    # per block: two normalisations, Q K V, heads, projection, MLP output, two residual
    # sums (9 T w), the scores and their softmax (2 HEADS T^2), the MLP hidden layer before
    # and after the activation (2 r T w)
    per_block = 9 * tokens * w + 2 * HEADS * tokens ** 2 + 2 * r * tokens * w
    # the embedding, the positions added, the last normalisation, the mean, the read-out
    activations = 3 * tokens * w + depth * per_block + w + num_outputs
    return NetworkSize(params, macs + w * num_outputs, activations)
