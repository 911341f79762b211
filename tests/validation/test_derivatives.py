"""Finite-difference checks of H v and grad_w (u^T H u): they pass on every architecture and
catch a wrong derivative with a one-line error, before a run measures anything."""

import math

import pytest
import torch
import torch.nn.functional as F

import validation.derivatives as derivatives
import validation.experiment as experiment
import validation.networks as networks
from validation.compare import main as compare_main
from validation.data import load_dataset
from validation.derivatives import (
    TOLERANCE,
    DerivativeError,
    check_derivatives,
    check_network,
    check_run,
)
from validation.experiment import Config, Experiment, run_experiment
from validation.networks import build_network
from validation.objective import Point, make_objective


@pytest.fixture(scope="module")
def signals():
    """16 MNIST-1D examples (shape (1, 40)), float64 numpy."""
    return load_dataset("mnist1d", n=16, seed=0)


@pytest.mark.parametrize(("arch", "activation", "norm", "loss", "parametrization"), [
    ("mlp", "tanh", True, "mse", "standard"),
    ("mlp", "relu", True, "mse", "ntk"),
    ("mlp", "tanh", True, "ce", "standard"),
    ("cnn", "tanh", True, "mse", "standard"),
    ("cnn", "relu", True, "ce", "ntk"),
    ("linear", "tanh", True, "mse", "standard"),
    ("transformer", "gelu", True, "mse", "standard"),
    ("transformer", "relu", True, "ce", "ntk"),
    ("transformer", "tanh", False, "mse", "standard"),
    ("transformer", "gelu", False, "ce", "ntk"),
])
def test_the_derivatives_of_every_architecture_match_finite_differences(
        signals, arch, activation, norm, loss, parametrization):
    net = build_network(arch, signals.input_shape, 10, depth=4 if arch == "linear" else 2,
                        width=8, activation=activation, parametrization=parametrization,
                        norm=norm)
    res = check_network(net, signals, loss)
    assert res.hvp_error <= TOLERANCE and res.third_error <= TOLERANCE, res


def _one_line_refusal(exc_info, arch, what):
    msg = str(exc_info.value)
    assert "\n" not in msg and f"arch {arch!r}" in msg and what in msg, msg
    assert f"relative error of {exc_info.value.error:.3g}" in msg
    assert exc_info.value.error > TOLERANCE


@pytest.mark.parametrize("arch", ["mlp", "cnn", "transformer"])
def test_a_wrong_second_derivative_is_refused(signals, monkeypatch, arch, tanh_without_second):
    monkeypatch.setitem(networks.ACTIVATIONS, "tanh", tanh_without_second)
    net = build_network(arch, signals.input_shape, 10, depth=2, width=8)
    with pytest.raises(DerivativeError) as exc:
        check_network(net, signals, "mse")
    assert exc.value.derivative == "hvp"
    _one_line_refusal(exc, arch, "Hessian-vector product H v")


@pytest.mark.parametrize("arch", ["mlp", "cnn", "transformer"])
def test_a_wrong_third_derivative_is_refused_while_h_v_passes(signals, monkeypatch, arch,
                                                              tanh_without_third):
    monkeypatch.setitem(networks.ACTIVATIONS, "tanh", tanh_without_third)
    net = build_network(arch, signals.input_shape, 10, depth=2, width=8)
    with pytest.raises(DerivativeError) as exc:
        check_network(net, signals, "mse")
    assert exc.value.derivative == "third"
    _one_line_refusal(exc, arch, "third derivative grad_w (u^T H u)")


def test_a_hessian_vector_product_off_by_a_thousandth_is_refused(signals, monkeypatch):
    hvp = Point.hvp
    monkeypatch.setattr(Point, "hvp", lambda self, v: hvp(self, v) * (1 + 1e-3))
    net = build_network("mlp", signals.input_shape, 10, depth=2, width=8)
    with pytest.raises(DerivativeError) as exc:
        check_network(net, signals, "mse")
    assert exc.value.derivative == "hvp"
    assert exc.value.error == pytest.approx(1e-3, rel=1e-2)


def test_torch_layer_norm_has_a_wrong_third_derivative(signals, monkeypatch):
    """Why the transformer writes its normalisation out: with torch 2.13's
    ``layer_norm`` in its place, H v is right and grad_w (u^T H u) is refused."""
    def torch_layer_norm(z, gain, shift):
        return F.layer_norm(z, (z.shape[-1],), gain, shift, networks.NORM_EPS)

    x = torch.randn(3, 5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    gain, shift = torch.rand(8, dtype=torch.float64) + 0.5, torch.rand(8, dtype=torch.float64)
    torch.testing.assert_close(networks._layer_norm(x, gain, shift),
                               torch_layer_norm(x, gain, shift), rtol=1e-12, atol=1e-12)
    monkeypatch.setattr(networks, "_layer_norm", torch_layer_norm)
    net = build_network("transformer", signals.input_shape, 10, depth=1, width=8)
    with pytest.raises(DerivativeError) as exc:
        check_network(net, signals, "mse")
    assert exc.value.derivative == "third" and exc.value.error > 1e-2


def test_bad_precision_is_refused(signals):
    net = build_network("mlp", signals.input_shape, 10, depth=1, width=4)
    obj = make_objective(net, signals, dtype=torch.float32)
    w = net.init(generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    with pytest.raises(ValueError, match="must be float64"):
        check_derivatives(obj, w, arch="mlp", generator=torch.Generator())


def test_a_run_is_refused_before_anything_is_measured(monkeypatch, tanh_without_third):
    monkeypatch.setitem(networks.ACTIVATIONS, "tanh", tanh_without_third)
    config = Config(n=40, steps=10, window=4, checks=("edge",))
    with pytest.raises(DerivativeError, match="arch 'mlp': the third derivative"):
        Experiment(config, torch.device("cpu"))
    with pytest.raises(DerivativeError):
        check_run(config)


def test_the_command_line_refuses_with_one_line_and_exit_2(monkeypatch, tmp_path, capsys,
                                                           tanh_without_second):
    monkeypatch.setitem(networks.ACTIVATIONS, "tanh", tanh_without_second)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        compare_main(["--n", "40", "--steps", "10", "--window", "4", "--checks", "edge",
                      "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "argument --arch: arch 'mlp': the Hessian-vector product" in err, err
    assert not out.exists()


def test_the_check_leaves_the_run_bit_identical(monkeypatch):
    """The check draws from its own generator and copies the data: a run with it equals,
    bit for bit, the same run with the check removed."""
    config = Config(n=60, steps=12, track_every=3, window=4, checks=("edge",))
    checked = run_experiment(config, device="cpu")
    monkeypatch.setattr(experiment, "check_network", lambda *args: None)
    unchecked = run_experiment(config, device="cpu")
    main, bare = checked["runs"]["main"], unchecked["runs"]["main"]
    assert main["loss"] == bare["loss"] and main["sharpness"] == bare["sharpness"]
    assert all(math.isfinite(s) for _, s in main["sharpness"])


def test_a_compare_run_checks_once_and_an_experiment_built_alone_checks_itself(
        monkeypatch, tmp_path):
    """``python -m validation.compare`` checks before any work and hands its check to the
    run; an Experiment built without it (sweep, atlas, paper jobs), or with the check of
    another configuration, checks itself."""
    calls = []
    check = derivatives.check_derivatives

    def counted(*args, **kwargs):
        calls.append(kwargs["arch"])
        return check(*args, **kwargs)

    monkeypatch.setattr(derivatives, "check_derivatives", counted)
    assert compare_main(["--n", "40", "--steps", "4", "--window", "2", "--checks", "edge",
                         "--out", str(tmp_path / "out"), "--no-progress",
                         "--no-figures"]) == 0
    assert calls == ["mlp"]
    config = Config(n=40, steps=4, window=2, checks=("edge",))
    Experiment(config, torch.device("cpu"))
    assert len(calls) == 2
    passed = check_run(config)
    Experiment(config, torch.device("cpu"), checked=passed)
    assert len(calls) == 3
    Experiment(Config(n=40, steps=4, window=2, width=8, checks=("edge",)),
               torch.device("cpu"), checked=passed)
    assert len(calls) == 4
