import itertools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from validation.data import load_dataset
from validation.networks import build_network
from validation.objective import make_objective
from validation.sharpness import SharpnessTracker, lanczos, lobpcg


def test_lanczos_and_lobpcg_match_dense_eigendecomposition(tiny, dense_hessian):
    obj, w = tiny
    hess = dense_hessian(obj, w)
    exact = torch.linalg.eigvalsh(hess).flip(0)
    gen = torch.Generator().manual_seed(0)
    lz = lanczos(lambda v: obj.hvp(w, v), w.numel(), k=3, iterations=w.numel(), generator=gen)
    # A Krylov space of full dimension holds the exact eigenpairs (up to rounding).
    assert torch.allclose(lz.values, exact[:3], rtol=1e-8)
    x0 = torch.randn(w.numel(), 2, dtype=torch.float64, generator=gen)
    lo = lobpcg(lambda v: obj.hvp(w, v), x0, tol=1e-8, max_iterations=500)
    assert torch.allclose(lo.values, exact[:2], rtol=1e-8)
    assert bool((lo.residuals <= 1e-8).all())
    # Eigenvectors: H v = lambda v.
    assert torch.allclose(hess @ lo.vectors, lo.vectors * lo.values, atol=1e-6)


def test_tracker_is_warm_started_and_counts_hvps(tiny, dense_hessian):
    obj, w = tiny
    tracker = SharpnessTracker(obj.hvp, w.numel(), k=1, tol=1e-6,
                               generator=torch.Generator().manual_seed(1))
    first = tracker.estimate(w)
    step = w - 0.01 * obj.grad(w)
    warm = tracker.estimate(step)
    exact = float(torch.linalg.eigvalsh(dense_hessian(obj, step))[-1])
    assert abs(float(warm.values[0]) - exact) <= 1e-5 * exact
    # The cold estimate runs Lanczos first; the warm one starts next to the answer.
    assert warm.hvps < first.hvps
    assert tracker.total_hvps == first.hvps + warm.hvps and tracker.estimates == 2
    state = tracker.state_dict()
    again = SharpnessTracker(obj.hvp, w.numel(), k=1, tol=1e-6)
    again.load_state_dict(state)
    assert torch.equal(again.vectors, tracker.vectors)


@given(st.integers(min_value=3, max_value=30), st.integers(min_value=0, max_value=2**31 - 1))
def test_lobpcg_top_eigenvalue_on_random_symmetric_matrices(n, seed):
    rng = np.random.default_rng(seed)
    q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    spectrum = np.sort(rng.uniform(-1.0, 1.0, n))
    spectrum[-1] = 2.0  # a gap of at least 1 above the rest
    a = torch.as_tensor((q * spectrum) @ q.T)
    x0 = torch.as_tensor(rng.standard_normal((n, 1)))
    res = lobpcg(lambda v: a @ v, x0, tol=1e-10, max_iterations=200)
    # Residual 1e-10 and gap >= 1: the Ritz value is within |r|^2 / gap of 2.
    assert abs(float(res.values[0]) - 2.0) <= 1e-9


def test_bad_k():
    with pytest.raises(ValueError, match="k must"):
        lanczos(lambda v: v, 4, k=0)


@pytest.fixture(scope="module")
def crossing_run():
    """GD on a 490-parameter tanh MLP (MNIST-1D, 64 examples, eta = 0.5): the top Hessian
    eigenvectors swap several times in 150 steps. Returns the objective, the parameters at
    every 5th step and their dense spectra."""
    data = load_dataset("mnist1d", n=64, seed=0)
    net = build_network("mlp", data.input_shape, data.num_outputs, depth=2, width=8)
    obj = make_objective(net, data, dtype=torch.float64)
    w = net.init(generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ws, spectra = [], []
    for t in range(151):
        if t % 5 == 0:
            ws.append(w)
            # Dense Hessian by torch.func.hessian of the loss: not the tracker's HVPs.
            hess = torch.func.hessian(lambda p: obj._chunk_loss(p, obj.x, obj.y))(w)
            spectra.append(torch.linalg.eigh(hess))
        w = w - 0.5 * obj.grad(w)
    return obj, ws, spectra


def test_default_tracker_is_within_1e_3_of_dense_at_every_step_across_crossings(crossing_run):
    obj, ws, spectra = crossing_run
    tops = [vecs[:, -1] for _, vecs in spectra]
    swaps = sum(abs(float(a @ b)) < 0.5 for a, b in itertools.pairwise(tops))
    assert swaps >= 5  # the run does cross eigenvalues
    tracker = SharpnessTracker(obj.hvp, ws[0].numel(),
                               generator=torch.Generator().manual_seed(0))
    errors, hvps = [], []
    for w, (vals, _) in zip(ws, spectra, strict=True):
        est = tracker.estimate(w)
        errors.append(abs(float(est.values[0]) - float(vals[-1])))
        hvps.append(est.hvps)
    warm = np.mean(hvps[1:])
    print(f"{len(ws)} tracked steps, {swaps} top-eigenvector swaps: worst error "
          f"{max(errors):.1e}, {warm:.2f} HVPs per warm step (cold start {hvps[0]})")
    assert max(errors) <= 1e-3
    # This small run moves faster between tracked steps than the default run of
    # validation.compare (about 4 HVPs there, benchmarks.sharpness_accuracy).
    assert warm <= 8.0


def test_tracker_refreshes_its_warm_block(crossing_run):
    # Every estimate starts from the block the previous one ended with. From the fourth
    # tracked step on, a refreshed block converges in at most 5 HVPs per step; a block
    # kept stale since the first step costs 6 to 9 there.
    obj, ws, spectra = crossing_run
    tracker = SharpnessTracker(obj.hvp, ws[0].numel(),
                               generator=torch.Generator().manual_seed(0))
    for w in ws[:3]:
        tracker.estimate(w)
    for w, (vals, vecs) in zip(ws[3:9], spectra[3:9], strict=True):
        est = tracker.estimate(w)
        assert est.hvps <= 5
        assert torch.equal(tracker.vectors[:, :1], est.vectors)
        # Unless the top two nearly coincide, the tracked vector is the top eigenvector.
        if float(vals[-1] - vals[-2]) > 1e-2:
            assert abs(float(vecs[:, -1] @ est.vectors[:, 0])) >= 0.99


def test_a_stale_second_eigenvector_is_replaced_at_the_next_refresh(crossing_run):
    obj, ws, spectra = crossing_run
    w, (vals, vecs) = ws[-1], spectra[-1]
    tracker = SharpnessTracker(obj.hvp, w.numel(), refresh_every=3,
                               generator=torch.Generator().manual_seed(0))
    # A block of exact eigenvectors 2 and 3: converged, and blind to the top one.
    tracker.load_state_dict({"vectors": vecs[:, [-2, -3]].clone(), "total_hvps": 0,
                             "estimates": 2, "generator": tracker.generator.get_state()})
    found = [float(tracker.estimate(w).values[0]) for _ in range(2)]
    assert found[0] == pytest.approx(float(vals[-2]), abs=1e-6)  # stale, as designed
    assert found[1] == pytest.approx(float(vals[-1]), abs=1e-3)  # the third estimate: cold


def test_bad_tracker_and_lobpcg_input():
    with pytest.raises(ValueError, match="guard must"):
        SharpnessTracker(lambda w, v: v, 5, guard=-1)
    with pytest.raises(ValueError, match="tol must"):
        SharpnessTracker(lambda w, v: v, 5, tol=0.0)
    with pytest.raises(ValueError, match="criterion must"):
        lobpcg(lambda v: v, torch.ones(4, 1, dtype=torch.float64), criterion="gap")
    with pytest.raises(ValueError, match="k=3 exceeds"):
        lobpcg(lambda v: v, torch.ones(4, 2, dtype=torch.float64), k=3)
