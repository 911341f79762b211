import math

import pytest
import torch

from validation.networks import ACTIVATIONS, build_network


# Parameter counts worked out by hand for depth 3, width 4, 5 outputs:
# mlp (40,): (40*4 + 4) + 2 (4*4 + 4) + (4*5 + 5) = 229; linear: 40*4 + 2 * 4*4 + 4*5 = 212
# (no biases); cnn (1, 40): (4*1*3 + 4) + 2 (4*4*3 + 4) + 25 = 145;
# cnn (3, 8, 8): (4*3*9 + 4) + 2 (4*4*9 + 4) + 25 = 433.
@pytest.mark.parametrize("arch, shape, count", [("mlp", (40,), 229), ("linear", (1, 40), 212),
                                                ("cnn", (1, 40), 145), ("cnn", (3, 8, 8), 433)])
def test_output_shape_and_parameter_count(arch, shape, count):
    net = build_network(arch, shape, 5, depth=3, width=4)
    w = net.init(generator=torch.Generator().manual_seed(0))
    assert net.num_params == count and w.shape == (count,)
    out = net.apply(w, torch.randn(7, *shape, dtype=torch.float64))
    assert out.shape == (7, 5)


def test_deep_linear_is_linear():
    net = build_network("linear", (6,), 2, depth=20, width=5)
    w = net.init(generator=torch.Generator().manual_seed(1))
    x = torch.randn(4, 6, dtype=torch.float64)
    assert torch.allclose(net.apply(w, 2 * x), 2 * net.apply(w, x))


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_ntk_and_standard_agree_at_init(arch):
    # Same draws: W ~ N(0, 1/fan_in) used directly, or W ~ N(0, 1) scaled by 1/sqrt(fan_in).
    shape = (1, 12)
    std = build_network(arch, shape, 3, width=4, parametrization="standard")
    ntk = build_network(arch, shape, 3, width=4, parametrization="ntk")
    x = torch.randn(5, *shape, dtype=torch.float64)
    ws = std.init(generator=torch.Generator().manual_seed(2))
    wn = ntk.init(generator=torch.Generator().manual_seed(2))
    assert torch.allclose(std.apply(ws, x), ntk.apply(wn, x), atol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(arch="rnn"), "unknown arch"),
    (dict(activation="swish"), "unknown activation"),
    (dict(parametrization="mup"), "unknown parametrization"),
    (dict(depth=0), "depth"),
    (dict(arch="cnn", input_shape=(40,)), "cnn needs"),
])
def test_bad_input(kwargs, match):
    args = dict(arch="mlp", input_shape=(1, 40), num_outputs=3) | kwargs
    with pytest.raises(ValueError, match=match):
        build_network(args.pop("arch"), args.pop("input_shape"), args.pop("num_outputs"), **args)


def test_all_activations_listed():
    assert set(ACTIVATIONS) == {"tanh", "relu", "elu", "softplus", "gelu"}


def _take(w, offset, *shape):
    size = math.prod(shape)
    return w[offset: offset + size].reshape(shape), offset + size


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus"])
def test_mlp_equals_its_layers_written_out(activation):
    """x -> phi(W1 x + b1) -> phi(W2 h + b2) -> W3 h + b3, each W (out, in) then b in the flat
    vector, evaluated with plain matrix products."""
    net = build_network("mlp", (6,), 3, depth=2, width=5, activation=activation)
    w = torch.randn(net.num_params, generator=torch.Generator().manual_seed(3),
                    dtype=torch.float64)
    x = torch.randn(4, 6, dtype=torch.float64)
    phi = {"tanh": torch.tanh, "relu": torch.relu,
           "softplus": lambda z: torch.log1p(torch.exp(z))}[activation]
    h, k = x, 0
    for fan_in, fan_out, last in ((6, 5, False), (5, 5, False), (5, 3, True)):
        weight, k = _take(w, k, fan_out, fan_in)
        bias, k = _take(w, k, fan_out)
        h = h @ weight.T + bias
        h = h if last else phi(h)
    assert k == net.num_params
    torch.testing.assert_close(net.apply(w, x), h, rtol=1e-12, atol=1e-12)


def test_cnn_equals_torch_modules_with_the_same_weights():
    """Conv1d (kernel 3, padding 1) -> tanh -> average pool by 2, twice (40 -> 20 -> 10),
    global mean, dense read-out: the same network assembled from torch.nn modules."""
    net = build_network("cnn", (2, 40), 3, depth=2, width=4)
    w = torch.randn(net.num_params, generator=torch.Generator().manual_seed(4),
                    dtype=torch.float64)
    convs = [torch.nn.Conv1d(2, 4, 3, padding=1), torch.nn.Conv1d(4, 4, 3, padding=1)]
    dense = torch.nn.Linear(4, 3)
    k = 0
    with torch.no_grad():
        for mod in (*convs, dense):
            mod.double()
            weight, k = _take(w, k, *mod.weight.shape)
            bias, k = _take(w, k, *mod.bias.shape)
            mod.weight.copy_(weight)
            mod.bias.copy_(bias)
        x = torch.randn(5, 2, 40, dtype=torch.float64)
        h = x
        for conv in convs:
            h = torch.nn.functional.avg_pool1d(torch.tanh(conv(h)), 2)
        expected = dense(h.mean(dim=2))
    assert k == net.num_params
    torch.testing.assert_close(net.apply(w, x), expected, rtol=1e-12, atol=1e-12)


def test_standard_init_draws_weights_of_variance_one_over_fan_in():
    """W ~ N(0, 1/fan_in), biases 0: over the 200 x 400 first layer the sample variance
    times fan_in is 1 within 5 standard errors (sqrt(2 / 80000) = 0.005)."""
    net = build_network("mlp", (400,), 2, depth=1, width=200)
    w = net.init(generator=torch.Generator().manual_seed(5))
    first, k = _take(w, 0, 200, 400)
    bias, _ = _take(w, k, 200)
    assert float(first.var()) * 400 == pytest.approx(1.0, abs=0.025)
    assert abs(float(first.mean())) < 5 / math.sqrt(80000) / math.sqrt(400)
    assert torch.all(bias == 0)
