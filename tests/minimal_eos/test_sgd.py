"""SGD, RMSProp and Adam in simulate: per-example losses, the compiled loop, its batches."""

import numba
import numpy as np
import pytest

from minimal_eos import (
    GD,
    SGD,
    Adam,
    DiagonalNetwork,
    FiniteSumQuadratic,
    LogisticRegression,
    Quadratic,
    RMSProp,
    TwoLayerNetwork,
    reference_run,
    simulate,
)
from minimal_eos._sgd import batch_counts

RNG = np.random.default_rng(11)
X = RNG.normal(size=(6, 3))
Y = np.where(X[:, 0] + 0.3 * X[:, 1] > 0, 1.0, -1.0)
H = np.array([(lambda a: a @ a.T)(RNG.normal(size=(2, 2))) for _ in range(5)])
B = RNG.normal(size=(5, 2))

LOGISTIC = LogisticRegression(X, Y)
QUADRATIC = FiniteSumQuadratic(H, B)
TWO_LAYER = TwoLayerNetwork.toy(3, "tanh", n_points=5, input_dim=2)
DIAGONAL = DiagonalNetwork(X, X[:, 1] - X[:, 2])


def _sigmoid_loss(w):
    return np.log1p(np.exp(-Y * (X @ w)))


@pytest.mark.parametrize(
    ("model", "theta", "closed_form"),
    [
        (LOGISTIC, np.array([0.3, -0.2, 0.5]), _sigmoid_loss),
        (QUADRATIC, np.array([0.7, -1.1]),
         lambda w: 0.5 * np.einsum("i,nij,j->n", w, H, w) + B @ w),
        (DIAGONAL, np.linspace(-0.5, 0.8, 6),
         lambda t: 0.5 * (X @ (t[:3] * t[3:]) - (X[:, 1] - X[:, 2])) ** 2),
        (TWO_LAYER, np.linspace(-0.6, 0.9, 9),
         lambda t: 0.5 * ((np.tanh(TWO_LAYER.inputs @ t[:6].reshape(3, 2).T) @ t[6:])
                          - TWO_LAYER.targets) ** 2),
    ],
    ids=lambda v: getattr(v, "name", ""),
)
def test_per_example_losses(model, theta, closed_form):
    """Each l_i against its formula in numpy; their mean is L, and the mean of the per-example
    gradients is grad L; each gradient against central finite differences."""
    losses = model.example_losses(theta)
    np.testing.assert_allclose(losses, closed_form(theta), rtol=1e-12, atol=1e-14)
    assert losses.mean() == pytest.approx(model.loss(theta), rel=1e-13)
    grads = model.example_grads(theta)
    np.testing.assert_allclose(grads.mean(axis=0), model.grad(theta), rtol=1e-12, atol=1e-14)
    h = 1e-6
    fd = np.array([(closed_form(theta + h * e) - closed_form(theta - h * e)) / (2 * h)
                   for e in np.eye(model.dim)]).T
    np.testing.assert_allclose(grads, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("replacement", [False, True])
@pytest.mark.parametrize("model", [LOGISTIC, QUADRATIC], ids=lambda m: m.name)
def test_simulate_equals_the_reference_bit_for_bit(model, replacement):
    opt = SGD(3, replacement=replacement)
    etas = [0.05, 0.2, 0.4]
    res = simulate(model, opt, np.full(model.dim, 0.5), 60, eta=etas, seed=7, chunk=2)
    for b, eta in enumerate(etas):
        ref = reference_run(model, opt, np.full(model.dim, 0.5), np.full(60, eta), seed=7, run=b)
        np.testing.assert_array_equal(res.theta[b].data, ref)


@pytest.mark.parametrize(
    "opt", [RMSProp(0.9, 1e-3), Adam(0.8, 0.95, 1e-3), Adam(0.5, 0.9, 1e-2, bias_correction=False)],
    ids=["rmsprop", "adam", "adam-uncorrected"],
)
def test_adaptive_methods_in_simulate_equal_the_reference_bit_for_bit(opt):
    """RMSProp and Adam through the compiled loop against their update maps in numpy, on a
    nonlinear model, for step sizes that converge and that diverge."""
    etas = [0.01, 0.1, 1.0, 30.0]
    res = simulate(LOGISTIC, opt, np.full(3, 0.5), 80, eta=etas, chunk=3,
                   divergence_bound=50.0)
    for b, eta in enumerate(etas):
        ref = reference_run(LOGISTIC, opt, np.full(3, 0.5), np.full(80, eta))
        stop = res.diverged_at[b] if res.diverged_at[b] >= 0 else 81
        np.testing.assert_array_equal(res.theta[b].data[:stop], ref[:stop])
    assert res.diverged_at[3] > 0 and res.diverged_at[0] == -1


def test_the_full_batch_without_replacement_is_gd():
    """Every example once: the mini-batch gradient is the full one up to rounding."""
    etas = [0.05, 0.3]
    sgd = simulate(LOGISTIC, SGD(LOGISTIC.n), np.zeros(3), 80, eta=etas)
    gd = simulate(LOGISTIC, GD(), np.zeros(3), 80, eta=etas)
    np.testing.assert_allclose(sgd.theta.data, gd.theta.data, rtol=1e-12, atol=1e-14)


def test_results_do_not_depend_on_threads_or_chunks():
    etas = np.linspace(0.05, 0.6, 37)
    kwargs = {"eta": etas, "seed": 123, "save": ("theta", "loss")}
    most = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(1)
    try:
        one = simulate(QUADRATIC, SGD(2), [1.0, -1.0], 150, chunk=256, **kwargs)
    finally:
        numba.set_num_threads(most)
    many = simulate(QUADRATIC, SGD(2), [1.0, -1.0], 150, chunk=5, **kwargs)
    np.testing.assert_array_equal(one.theta.data, many.theta.data)
    np.testing.assert_array_equal(one.loss.data, many.loss.data)
    other = simulate(QUADRATIC, SGD(2), [1.0, -1.0], 150, chunk=5,
                     **{**kwargs, "seed": 124})
    assert not np.array_equal(other.theta.data, many.theta.data)


def test_batches_without_replacement_are_distinct_and_uniform():
    """5,000 batches of 3 of 7 examples: distinct members, each example in 3/7 of them
    (within 5 binomial standard deviations)."""
    n, batch, draws = 7, 3, 5000
    hits = np.zeros(n)
    perm = np.empty(n, dtype=np.int64)
    for t in range(draws):
        counts = np.zeros(n)
        batch_counts(n, batch, False, 5, 2, t, perm, counts)
        assert counts.max() == 1.0 and counts.sum() == batch
        hits += counts
    p = batch / n
    assert np.all(np.abs(hits - draws * p) < 5 * np.sqrt(draws * p * (1 - p)))
    counts = np.zeros(n)
    for t in range(draws):
        batch_counts(n, batch, True, 5, 2, t, perm, counts)
    assert counts.sum() == batch * draws
    assert np.all(np.abs(counts - draws * p) < 5 * np.sqrt(draws * batch * (1 / n) * (1 - 1 / n)))


@pytest.mark.parametrize(
    ("call", "match"),
    [(lambda: simulate(LOGISTIC, SGD(7), np.zeros(3), 5, eta=0.1), "batch_size"),
     (lambda: simulate(Quadratic([1.0]), SGD(1), [1.0], 5, eta=0.1), "per-example"),
     (lambda: simulate(LOGISTIC, SGD(2), np.zeros(3), 5, eta=0.1, seed=-1), "seed"),
     (lambda: simulate(LOGISTIC, "adamw", np.zeros(3), 5, eta=0.1), "optimizer"),
     (lambda: FiniteSumQuadratic(np.ones((2, 2, 3))), "hessians"),
     (lambda: FiniteSumQuadratic(np.array([[[1.0, 2.0], [0.0, 1.0]]])), "symmetric"),
     (lambda: FiniteSumQuadratic(H, np.ones((5, 3))), "linears")],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
