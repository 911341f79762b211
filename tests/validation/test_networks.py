import math

import numpy as np
import pytest
import torch

from validation.compare import main as compare_main
from validation.networks import ACTIVATIONS, HEADS, MLP_RATIO, NORM_EPS, PATCH, build_network


# Parameter counts worked out by hand for depth 3, width 4, 5 outputs:
# mlp (40,): (40*4 + 4) + 2 (4*4 + 4) + (4*5 + 5) = 229; linear: 40*4 + 2 * 4*4 + 4*5 = 212
# (no biases); cnn (1, 40): (4*1*3 + 4) + 2 (4*4*3 + 4) + 25 = 145;
# cnn (3, 8, 8): (4*3*9 + 4) + 2 (4*4*9 + 4) + 25 = 433; transformer (1, 40), 10 tokens
# of 4 samples, MLP ratio 2: embedding 4*4 + 4, positions 10*4, per block two norms 2 (4 + 4),
# attention (12*4 + 12) + (4*4 + 4), MLP (8*4 + 8) + (4*8 + 4), last norm 8, read-out 25:
# 20 + 40 + 3 (16 + 60 + 20 + 40 + 36) + 8 + 25 = 609 (the same with 2 channels of 20: the
# tokens then hold 2 x 4 samples, 5 of them: 36 + 20 + 516 + 8 + 25 = 605).
@pytest.mark.parametrize("arch, shape, count", [("mlp", (40,), 229), ("linear", (1, 40), 212),
                                                ("cnn", (1, 40), 145), ("cnn", (3, 8, 8), 433),
                                                ("transformer", (1, 40), 609),
                                                ("transformer", (2, 20), 605)])
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


@pytest.mark.parametrize("arch", ["mlp", "cnn", "transformer"])
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
    (dict(arch="transformer", input_shape=(1, 8, 8)), "transformer needs signals"),
    (dict(arch="transformer", input_shape=(1, 42)), "L a multiple of 4"),
    (dict(arch="transformer", width=5), "multiple of the 2 heads"),
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


@pytest.mark.parametrize("depth", [1, 2])
def test_transformer_equals_torch_modules_with_the_same_weights(depth):
    """Patches of 4 samples embedded by nn.Linear plus positions, pre-LayerNorm blocks of
    nn.MultiheadAttention and a tanh MLP with residual connections, a last nn.LayerNorm,
    the mean over tokens and an nn.Linear read-out, at a random weight vector (gains and
    biases of the norms too)."""
    c, length, d, out = 2, 24, 6, 3
    tokens = length // PATCH
    net = build_network("transformer", (c, length), out, depth=depth, width=d)
    w = torch.randn(net.num_params, generator=torch.Generator().manual_seed(6),
                    dtype=torch.float64)
    embed = torch.nn.Linear(c * PATCH, d)
    pos = torch.nn.Parameter(torch.empty(tokens, d))
    blocks = [(torch.nn.LayerNorm(d, eps=NORM_EPS),
               torch.nn.MultiheadAttention(d, HEADS, batch_first=True),
               torch.nn.LayerNorm(d, eps=NORM_EPS), torch.nn.Linear(d, MLP_RATIO * d),
               torch.nn.Linear(MLP_RATIO * d, d)) for _ in range(depth)]
    last, readout = torch.nn.LayerNorm(d, eps=NORM_EPS), torch.nn.Linear(d, out)
    params = [embed.weight, embed.bias, pos]
    for ln1, att, ln2, fc1, fc2 in blocks:
        params += [ln1.weight, ln1.bias, att.in_proj_weight, att.in_proj_bias,
                   att.out_proj.weight, att.out_proj.bias, ln2.weight, ln2.bias,
                   fc1.weight, fc1.bias, fc2.weight, fc2.bias]
    params += [last.weight, last.bias, readout.weight, readout.bias]
    k = 0
    with torch.no_grad():
        for p in params:
            p.data = p.data.double()
            value, k = _take(w, k, *p.shape)
            p.copy_(value)
        for mod in (embed, last, readout, *(m for b in blocks for m in b)):
            mod.double()
        x = torch.randn(5, c, length, dtype=torch.float64)
        h = embed(x.unfold(2, PATCH, PATCH).permute(0, 2, 1, 3).reshape(5, tokens, -1)) + pos
        for ln1, att, ln2, fc1, fc2 in blocks:
            a = ln1(h)
            h = h + att(a, a, a, need_weights=False)[0]
            h = h + fc2(torch.tanh(fc1(ln2(h))))
        expected = readout(last(h).mean(dim=1))
    assert k == net.num_params
    torch.testing.assert_close(net.apply(w, x), expected, rtol=1e-10, atol=1e-10)


def test_transformer_size_at_the_atlas_sizes():
    """Width 32 on MNIST-1D: 9418 parameters with one block, 17962 with two (each block
    8544 = (4 + 2 r) 32^2 + (9 + r) 32 with r = 2), well under the 50k that keeps a dense
    Hessian tractable."""
    sizes = [build_network("transformer", (1, 40), 10, depth=k, width=32).num_params
             for k in (1, 2)]
    assert sizes == [9418, 17962]


def test_transformer_without_norm_drops_only_the_gains_and_shifts():
    """norm=False removes the 2 (2 depth + 1) width numbers of the normalisations."""
    with_norm = build_network("transformer", (1, 40), 10, depth=2, width=8)
    without = build_network("transformer", (1, 40), 10, depth=2, width=8, norm=False)
    assert with_norm.num_params - without.num_params == 2 * 5 * 8
    w = without.init(generator=torch.Generator().manual_seed(7))
    assert without.apply(w, torch.randn(3, 1, 40, dtype=torch.float64)).shape == (3, 10)


def test_transformer_on_images_is_refused_on_the_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        compare_main(["--arch", "transformer", "--dataset", "digits", "--out",
                      str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "argument --arch: arch 'transformer' reads signals (C, L)" in err, err
    assert "(1, 8, 8)" in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("shape", "depth", "width"), [((1, 40), 1, 32), ((2, 12), 3, 4),
                                                       ((3, 16), 2, 6)])
def test_transformer_size_counts_what_it_holds_and_computes(shape, depth, width):
    from torch.utils.flop_counter import FlopCounterMode

    from validation.networks import network_size

    net = build_network("transformer", shape, 7, depth=depth, width=width)
    size = network_size("transformer", shape, 7, depth=depth, width=width)
    assert size.params == net.num_params
    w = net.init(generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        net.apply(w, torch.zeros(1, *shape, dtype=torch.float64))
    assert counter.get_total_flops() == 2 * size.macs


@pytest.mark.parametrize(("arch", "shape"), [("transformer", (1, 8)), ("cnn", (1, 12))])
def test_tracked_sharpness_equals_the_dense_hessians_top_eigenvalue(arch, shape):
    """On a tiny instance (12 random examples, width 4, 3 outputs, float64): the tracker's
    warm LOBPCG estimate (residual 1e-8) against numpy's eigvalsh of the Hessian that
    torch.func.hessian builds (forward over reverse, not the tracker's products), at
    initialisation and after 20 GD steps."""
    from validation.data import Dataset
    from validation.objective import make_objective
    from validation.sharpness import SharpnessTracker

    gen = torch.Generator().manual_seed(8)
    x = torch.randn(12, *shape, generator=gen, dtype=torch.float64).numpy()
    y = torch.randint(0, 3, (12,), generator=gen).numpy()
    data = Dataset("synthetic", x, y, 3, shape, "classification")
    net = build_network(arch, shape, 3, depth=1, width=4)
    obj = make_objective(net, data)
    w = net.init(generator=gen)
    tracker = SharpnessTracker(obj.hvp, net.num_params, k=1, tol=1e-8,
                               generator=torch.Generator().manual_seed(9))
    for step in range(21):
        if step % 20 == 0:
            hess = torch.func.hessian(lambda p: obj._chunk_loss(p, obj.x, obj.y))(w)
            exact = float(np.linalg.eigvalsh(hess.numpy())[-1])
            assert float(tracker.estimate(w).values[0]) == pytest.approx(exact, rel=1e-7)
        w = w - 0.5 * obj.grad(w)
