"""simulate(): against the numpy update maps, its own pure-Python kernel, closed forms."""

import numpy as np
import pytest
import sympy as sp

from minimal_eos import (
    GD,
    Adaptive,
    Drop,
    HeavyBall,
    Nesterov,
    Quadratic,
    ScalarNetwork,
    Status,
    SymbolicModel,
    Warmup,
    reference_run,
    simulate,
)
from minimal_eos._kernels import simulation_kernel

OPTIMIZERS = [GD(), HeavyBall(0.7), Nesterov(0.6)]
NET = ScalarNetwork(depth=2, x=(1.0, 0.7), y=(1.0, 0.4))
QUAD = Quadratic((2.0, 0.5, -0.1), linear=(0.2, 0.1, 0.0))
xs = sp.Symbol("x")
QUARTIC_1D = SymbolicModel((xs**2 - 1) ** 2 / 4, (xs,))


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: o.name)
@pytest.mark.parametrize("model", [NET, QUAD], ids=["net", "quad"])
def test_kernel_equals_numpy_update_map_bit_for_bit(model, opt, rng):
    theta0 = rng.uniform(-1, 1, size=(3, model.dim))
    etas = np.array([0.1, 0.3, 0.45])
    res = simulate(model, opt, theta0, 40, eta=etas, save=("theta", "loss", "sharpness"))
    for b in range(3):
        ref = reference_run(model, opt, theta0[b], np.full(40, etas[b]))
        np.testing.assert_array_equal(res.theta[b].data, ref)
        np.testing.assert_array_equal(res.loss[b].data, [model.loss(p) for p in ref])
        # the recorded sharpness against a dense eigendecomposition of the Hessian
        dense = [np.linalg.eigvalsh(model.hessian(p))[-1] for p in ref]
        np.testing.assert_allclose(res.sharpness[b].data, dense, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "schedule", [Drop(at=7, factor=0.3), Warmup(steps=11)], ids=lambda s: s.name
)
def test_schedules_match_their_python_rule(schedule, rng):
    theta0 = rng.uniform(-1, 1, size=2)
    res = simulate(NET, HeavyBall(0.5), theta0, 30, eta=0.4, schedule=schedule)
    etas = [schedule.step(0.4, t) for t in range(30)]
    ref = reference_run(NET, HeavyBall(0.5), theta0, etas)
    np.testing.assert_array_equal(res.theta[0].data, ref)


def test_adaptive_schedule_matches_python_loop():
    theta0 = np.array([1.3, 0.4])
    res = simulate(NET, GD(), theta0, 25, eta=1.5, schedule=Adaptive(floor=1e-3))
    x = theta0.copy()
    for t in range(25):
        x = x - 1.5 / max(NET.sharpness(x), 1e-3) * NET.grad(x)
        np.testing.assert_allclose(res.theta[0, t + 1].data, x, rtol=1e-14)


def _kernel_args(model, theta0, etas, steps, opt, max_period, every=3):
    d, nb = model.dim, len(etas)
    n_rec = steps // every + 1 + (1 if steps % every else 0)
    return [
        np.ascontiguousarray(theta0.T), etas, opt.beta, opt.code, steps, 0, np.zeros(4),
        model.param_vector(), every, True, True, True, 1e8, 1e-10, max_period, 2,
        np.empty((d, nb)), np.empty(nb, dtype=np.int64), np.zeros((n_rec, nb)),
        np.zeros((n_rec, nb)), np.zeros((n_rec, d, nb)), np.zeros(nb, dtype=np.int64),
    ]


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: o.name)
def test_compiled_loop_equals_its_py_func(opt, rng):
    theta0 = rng.uniform(-1.5, 1.5, size=(5, 2))
    etas = np.array([0.2, 0.8, 1.6, 3.0, 9.0])  # some runs diverge
    kern = simulation_kernel(NET.kernels())
    a = _kernel_args(NET, theta0, etas, 20, opt, 3)
    b = _kernel_args(NET, theta0, etas, 20, opt, 3)
    kern(*a)
    kern.py_func(*b)
    for u, v in zip(a[16:], b[16:], strict=True):
        np.testing.assert_array_equal(u, v)


def test_divergence_step_and_masks_follow_closed_form():
    """GD on x^2/2 with eta=2.5 gives x_k = (-1.5)^k: it leaves 1e8 at k = 46."""
    res = simulate(Quadratic((1.0,)), GD(), [1.0], 100, eta=2.5)
    k = int(np.ceil(np.log(1e8) / np.log(1.5)))
    assert res.status[0] == Status.DIVERGED and res.diverged_at[0] == k
    # 3^45 needs more than 53 bits: equal up to the rounding of 45 products
    assert res.final_theta[0, 0] == pytest.approx((-1.5) ** (k - 1), rel=1e-13)
    assert not res.loss.mask[0, :k].any() and res.loss.mask[0, k:].all()
    assert np.all(np.isfinite(res.loss.data)) and np.all(np.isfinite(res.theta.data))
    assert f"step {k}" in res.describe(0)


def test_overflowing_runs_never_produce_nan(recwarn):
    """A quartic with a huge step overflows within a few steps: no NaN, no warning."""
    res = simulate(QUARTIC_1D, GD(), [[1.5], [0.5]], 300, eta=[50.0, 0.5])
    assert list(res.status) == [Status.DIVERGED, Status.CONVERGED]
    for arr in (res.loss, res.sharpness, res.theta, res.final_theta):
        assert np.all(np.isfinite(np.ma.getdata(arr)))
    assert len(recwarn) == 0


def test_status_and_period_detection():
    """On x^2/2: eta < 2 converges, eta = 2 is a period-2 orbit, eta > 2 diverges."""
    res = simulate(Quadratic((1.0,)), GD(), [1.0], 300, eta=[0.5, 2.0, 2.1, 1e-4])
    assert [str(s) for s in res.status] == ["converged", "periodic", "diverged", "running"]
    assert list(res.period) == [1, 2, 0, 0]
    assert "1 converged" in res.message and "period 2: 1" in res.message


def test_detected_cycles_are_cycles_of_the_map():
    """Just above the threshold eta = 1 of (x^2 - 1)^2 / 4, GD settles on a cycle."""
    etas = np.linspace(1.02, 1.3, 8)
    res = simulate(QUARTIC_1D, GD(), [0.9], 3000, eta=etas)
    assert np.all(res.status == Status.PERIODIC)
    for b in range(len(etas)):
        p = int(res.period[b])
        x = res.final_theta[b]
        orbit = reference_run(QUARTIC_1D, GD(), x, np.full(p, etas[b]))
        # the detection tolerance is 1e-10 (1 + |x|): the orbit closes to that precision
        assert abs(orbit[-1, 0] - x[0]) <= 1e-9
        assert np.all(np.abs(orbit[1:-1, 0] - x[0]) > 1e-6)


def test_results_do_not_depend_on_chunking(rng):
    theta0 = rng.uniform(-1, 1, size=(37, 2))
    etas = rng.uniform(0.1, 2.5, size=37)
    runs = [simulate(NET, Nesterov(0.5), theta0, 200, eta=etas, chunk=c) for c in (1, 7, 256)]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.theta.data, runs[0].theta.data)
        np.testing.assert_array_equal(r.diverged_at, runs[0].diverged_at)


def test_records_are_taken_every_k_steps_and_at_the_end():
    res = simulate(NET, GD(), [1.0, 0.5], 10, eta=0.1, every=4)
    assert list(res.t) == [0, 4, 8, 10]
    assert res.loss.shape == (1, 4) and res.theta.shape == (1, 4, 2)
    res = simulate(NET, GD(), [1.0, 0.5], 10, eta=0.1, save=())
    assert res.loss is None and res.theta is None and res.sharpness is None


def test_broadcasting_of_points_and_step_sizes():
    res = simulate(NET, GD(), [1.0, 0.5], 5, eta=[0.1, 0.2, 0.3])
    assert res.theta0.shape == (3, 2) and len(res) == 3
    res = simulate(NET, GD(), [[1.0, 0.5], [0.2, 0.1]], 5, eta=0.1)
    assert len(res) == 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eta": -0.1}, "eta must be > 0"),
        ({"eta": 0.0}, "eta must be > 0"),
        ({"eta": np.nan}, "eta must be finite"),
        ({"eta": [0.1, np.inf]}, "eta must be finite"),
        ({"eta": 0.1, "theta0": [np.nan, 1.0]}, "theta0 must be finite"),
        ({"eta": 0.1, "theta0": [1.0, 2.0, 3.0]}, r"theta0 must have shape \(2,\)"),
        ({"eta": [0.1, 0.2], "theta0": np.ones((3, 2))}, "batch size"),
        ({"eta": 0.1, "optimizer": "adamw"}, "unknown optimizer 'adamw'.*'gd'"),
        ({"eta": 0.1, "schedule": "cosine"}, "unknown schedule 'cosine'.*'drop'"),
        ({"eta": 0.1, "save": ("loss", "grad")}, "save accepts"),
        ({"eta": 0.1, "steps": -1}, "steps must be an integer >= 0"),
        ({"eta": 0.1, "every": 0}, "every must be an integer >= 1"),
        ({"eta": np.full(10**6, 0.1), "steps": 10**4}, "GiB"),
    ],
)
def test_bad_input_raises_before_compiled_code(kwargs, match):
    args = {"model": NET, "optimizer": GD(), "theta0": [1.0, 0.5], "steps": 10}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        simulate(**args)


def test_bad_optimizer_and_schedule_parameters():
    with pytest.raises(ValueError, match=r"beta must lie in \[0.0, 1.0\)"):
        HeavyBall(beta=1.0)
    with pytest.raises(ValueError, match="factor must be finite and > 0"):
        Drop(at=3, factor=-1)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        Warmup(steps=0)
    with pytest.raises(ValueError, match="model must be a minimal_eos Model"):
        simulate("net", GD(), [1.0], 3, eta=0.1)


def test_same_input_same_output_bit_for_bit(rng):
    theta0 = rng.uniform(-1, 1, size=(64, 2))
    a = simulate(NET, HeavyBall(0.9), theta0, 500, eta=0.3)
    b = simulate(NET, HeavyBall(0.9), theta0, 500, eta=0.3)
    np.testing.assert_array_equal(a.theta.data, b.theta.data)
    np.testing.assert_array_equal(a.sharpness.data, b.sharpness.data)


def test_factories_reject_bad_parameters():
    from minimal_eos import get_optimizer, get_schedule

    with pytest.raises(ValueError, match="bad parameters for the heavy_ball optimizer"):
        get_optimizer("heavy_ball", bta=0.5)
    with pytest.raises(ValueError, match="bad parameters for the drop schedule"):
        get_schedule("drop")
    assert get_schedule("drop", at=3).at == 3
