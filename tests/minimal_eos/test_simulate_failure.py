"""simulate() on input and runs that must not give a silent wrong result."""

import importlib
import math

import numpy as np
import pytest

from minimal_eos import GD, Quadratic, ScalarNetwork, Status, simulate
from minimal_eos.models.scalar import MAX_DEPTH

SIMULATE = importlib.import_module("minimal_eos.simulate")

QUAD = Quadratic((1.0,))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"theta0": "1.0"}, "theta0 must be real numbers, not a string"),
    ({"theta0": ["1.0"]}, "theta0 must be real numbers, not a string"),
    ({"theta0": [True]}, "theta0 must be real numbers, not a bool"),
    ({"eta": True}, "eta must be real numbers, not a bool"),
    ({"eta": "0.5"}, "eta must be real numbers, not a string"),
    ({"eta": [0.5, False]}, "eta must be real numbers, not a bool"),
    ({"eta": 1 + 0j}, "eta must be real numbers, not a complex number"),
    ({"eta": np.array([0.5, True], dtype=object)}, "eta must be real numbers, not a bool"),
    ({"theta0": np.array(["1.0"], dtype=object)}, "theta0 must be real numbers, not a str"),
    ({"theta0": np.empty((0, 1))}, "theta0 must hold at least one initial point"),
    ({"eta": []}, "eta must hold at least one step size"),
    ({"divergence_bound": True}, "divergence_bound must be a real number"),
    ({"tol": "1e-3"}, "tol must be a real number"),
])
def test_bad_values_get_one_line_naming_the_argument(kwargs, match):
    args = {"theta0": [1.0], "eta": 0.5, **kwargs}
    with pytest.raises(ValueError, match=match) as exc:
        simulate(QUAD, GD(), steps=3, **args)
    assert "\n" not in str(exc.value)


def test_a_start_beyond_the_bound_diverges_at_step_zero():
    res = simulate(QUAD, GD(), [[10.0], [0.5]], 5, eta=0.5, divergence_bound=1.0)
    assert list(res.diverged_at) == [0, -1]
    assert res.status[0] == Status.DIVERGED and res.period[0] == 0
    assert res.loss.mask[0].all() and not res.loss.mask[1].any()
    assert "diverged at step 0" in res.describe(0)


def test_a_loss_that_overflows_at_a_finite_point_is_divergence():
    """GD on x^2/2 with eta = 3 from 1e150: x_k = 1e150 (-2)^k stays far inside the bound
    1e200 until k = 167, but L(x_k) = 1e300 4^k / 2 exceeds the largest float64 from the
    first k with 300 + k log10(4) - log10(2) > log10(1.797e308), that is k = 15."""
    top = math.log10(np.finfo(np.float64).max)
    k = math.floor((top - 300 + math.log10(2)) / math.log10(4)) + 1
    assert k == 15
    res = simulate(QUAD, GD(), [[1e150], [1.0]], 30, eta=[3.0, 1.0],
                   divergence_bound=1e200)
    assert res.diverged_at[0] == k and res.status[0] == Status.DIVERGED
    assert res.status[1] == Status.CONVERGED
    assert not res.loss.mask[0, :k].any() and res.loss.mask[0, k:].all()
    assert np.all(np.isfinite(res.loss.data)) and np.all(np.isfinite(res.sharpness.data))
    # a start whose loss already overflows diverged at step 0
    start = simulate(QUAD, GD(), [1e160], 3, eta=0.5, divergence_bound=1e200)
    assert start.diverged_at[0] == 0 and start.loss.mask.all()


def test_memory_guard_counts_more_than_the_records(monkeypatch):
    """save=() keeps no records, but the batch itself (20,000 runs of 2 coordinates,
    about 2.7 MiB by the estimate) is refused under a bound of 1 MiB."""
    monkeypatch.setattr(SIMULATE, "MAX_BYTES", 2**20)
    net = ScalarNetwork(depth=2)
    with pytest.raises(ValueError, match=r"theta0, eta: a batch of 20000 run\(s\).*"
                                         r"estimated 0.0 GiB \(batch 0.00 GiB") as exc:
        simulate(net, GD(), [1.0, 0.5], 5, eta=np.full(20_000, 0.1), save=())
    assert "\n" not in str(exc.value)


def test_memory_estimate_covers_the_result():
    """The estimate against the bytes the returned arrays hold (an independent count): it
    must cover them, and the kernel's own buffers and copies at most triple it."""
    net = ScalarNetwork(depth=2)
    runs, steps, every = 3000, 40, 4
    res = simulate(net, GD(), np.random.default_rng(1).uniform(0.5, 1.5, (runs, 2)), steps,
                   eta=0.2, every=every)
    held = sum(a.nbytes for a in (res.loss.data, res.loss.mask, res.sharpness.data,
                                  res.sharpness.mask, res.theta.data, res.theta.mask,
                                  res.final_theta, res.theta0, res.eta, res.diverged_at,
                                  res.period, res.status))
    est = SIMULATE.memory_estimate(runs, 2, steps, every=every)
    assert held <= est["total"] <= 3 * held
    # no records: 30,000 runs, so that the batch outweighs the chunks' working arrays
    runs = 30_000
    bare = simulate(net, GD(), np.random.default_rng(2).uniform(0.5, 1.5, (runs, 2)), steps,
                    eta=0.2, save=())
    held = sum(a.nbytes for a in (bare.final_theta, bare.theta0, bare.eta, bare.diverged_at,
                                  bare.period, bare.status))
    est = SIMULATE.memory_estimate(runs, 2, steps, save=())
    assert held <= est["total"] <= 3 * held


def test_scalar_network_depth_is_bounded_with_an_estimate():
    ScalarNetwork(depth=MAX_DEPTH)
    with pytest.raises(ValueError, match=r"depth must be <= 12; got 40: building its "
                                         r"kernels would take an estimated [\d.]+ years"):
        ScalarNetwork(depth=40)
