"""SGD, Adam and RMSProp on a real network: torch.optim's steps, batch sharpness and the
preconditioned sharpness against dense linear algebra."""

import numpy as np
import pytest
import scipy.linalg
import torch

from validation.adaptive import Adam, RMSProp, preconditioned_hvp
from validation.sharpness import SharpnessTracker
from validation.stochastic import SGD, MiniBatchSampler, batch_objective, batch_sharpness

SEED = 11


def _torch_steps(opt_cls, kwargs, obj, w0, batches, lr):
    """``w`` after torch.optim's steps on the mini-batch losses ``batches``."""
    p = torch.nn.Parameter(w0.clone())
    opt = opt_cls([p], lr=lr, **kwargs)
    out = []
    for idx in batches:
        opt.zero_grad()
        bobj = batch_objective(obj, idx)
        bobj._chunk_loss(p, bobj.x, bobj.y).backward()
        opt.step()
        out.append(p.detach().clone())
    return out


def _ours(update_map, obj, w0, batches, lr):
    state = update_map.init(w0.clone())
    out = []
    for idx in batches:
        g = batch_objective(obj, idx).grad(update_map.query(state))
        state = update_map.update(state, g, lr)
        out.append(state[0].clone())
    return out


@pytest.mark.parametrize(("ours", "theirs", "kwargs", "lr"), [
    (SGD(), torch.optim.SGD, {}, 0.3),
    (Adam(0.9, 0.999, 1e-8), torch.optim.Adam, {"betas": (0.9, 0.999), "eps": 1e-8}, 1e-2),
    (Adam(0.5, 0.9, 1e-3), torch.optim.Adam, {"betas": (0.5, 0.9), "eps": 1e-3}, 3e-2),
    (RMSProp(0.99, 1e-8), torch.optim.RMSprop, {"alpha": 0.99, "eps": 1e-8}, 1e-3),
    (RMSProp(0.5, 1e-4), torch.optim.RMSprop, {"alpha": 0.5, "eps": 1e-4}, 1e-2),
], ids=["sgd", "adam", "adam-low-betas", "rmsprop", "rmsprop-alpha-0.5"])
def test_update_maps_take_torch_optims_steps(ours, theirs, kwargs, lr, tiny):
    obj, w = tiny
    sampler = MiniBatchSampler(obj.n, 8, seed=SEED)
    batches = [sampler.next() for _ in range(12)]
    a = _ours(ours, obj, w, batches, lr)
    b = _torch_steps(theirs, kwargs, obj, w, batches, lr)
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        assert torch.equal(x, y), (k, float((x - y).abs().max()))
    assert not torch.equal(a[-1], w)


def test_sampler_covers_each_epoch_once_and_repeats_for_a_seed():
    s = MiniBatchSampler(23, 5, seed=SEED)
    epoch = torch.cat([s.next() for _ in range(s.per_epoch)])
    assert epoch.numel() == 20 and len(set(epoch.tolist())) == 20
    second = [s.next() for _ in range(s.per_epoch)]
    assert all(b.numel() == 5 for b in second)
    nxt = torch.cat(second)
    assert len(set(nxt.tolist())) == 20 and not torch.equal(nxt, epoch)  # reshuffled
    again = MiniBatchSampler(23, 5, seed=SEED)
    assert torch.equal(torch.cat([again.next() for _ in range(4)]), epoch)
    state = s.state_dict()
    first = [s.next() for _ in range(7)]
    s.load_state_dict(state)
    assert all(torch.equal(x, s.next()) for x in first)


def test_batch_sharpness_matches_dense_per_batch_hessians(tiny):
    """Batch sharpness, mean lambda_max(H_B) and var(u . g_B) against torch.func.hessian
    of each batch's loss (an independent route: dense matrices, numpy)."""
    obj, w = tiny
    sampler = MiniBatchSampler(obj.n, 6, seed=SEED)
    batches = [sampler.next() for _ in range(5)]
    u = torch.randn(w.numel(), generator=torch.Generator().manual_seed(SEED), dtype=w.dtype)
    u = u / torch.linalg.vector_norm(u)
    tracker = SharpnessTracker(None, w.numel(), tol=1e-12, max_iterations=500,
                               generator=torch.Generator().manual_seed(SEED))
    got = batch_sharpness(obj, w, batches, u=u, tracker=tracker)
    quot, lam, proj = [], [], []
    for idx in batches:
        b = batch_objective(obj, idx)

        def loss(p, b=b):
            return b._chunk_loss(p, b.x, b.y)

        h = torch.func.hessian(loss)(w).numpy()
        g = torch.func.grad(loss)(w).numpy()
        quot.append(g @ h @ g / (g @ g))
        lam.append(np.linalg.eigvalsh(h)[-1])
        proj.append(u.numpy() @ g)
    assert got.batches == 5
    assert got.batch_sharpness == pytest.approx(np.mean(quot), rel=1e-10)
    assert got.batch_lambda == pytest.approx(np.mean(lam), rel=1e-8)
    assert got.sigma_u2 == pytest.approx(np.var(proj, ddof=1), rel=1e-10)
    # the curvature along the batch gradient is below the batch's top eigenvalue
    assert got.batch_sharpness < got.batch_lambda


@pytest.mark.parametrize("eps", [1e-8, 1e-2])
def test_preconditioned_sharpness_matches_generalised_eigenvalues(eps, tiny, dense_hessian):
    """lambda_max(P^{-1} H) from the tracker on P^{-1/2} H P^{-1/2} against
    scipy.linalg.eigh(H, P), with P the preconditioner Adam holds after a few steps."""
    obj, w = tiny
    adam = Adam(0.9, 0.999, eps)
    state = adam.init(w.clone())
    for _ in range(5):
        state = adam.update(state, obj.grad(state[0]), 1e-2)
    diag = adam.preconditioner(state)
    h = dense_hessian(obj, state[0]).numpy()
    expected = scipy.linalg.eigh(h, np.diag(diag.numpy()), eigvals_only=True)[-1]
    tracker = SharpnessTracker(preconditioned_hvp(obj.hvp, lambda: diag), w.numel(), tol=1e-12,
                               max_iterations=500, generator=torch.Generator().manual_seed(SEED))
    got = float(tracker.estimate(state[0]).values[0])
    assert got == pytest.approx(expected, rel=1e-8)
    raw = np.linalg.eigvalsh(h)[-1]
    assert abs(got / raw - 1) > 0.5  # the preconditioner matters here


@pytest.mark.parametrize(("ours", "theirs", "kwargs", "bias"), [
    (Adam(0.9, 0.99, 1e-3), torch.optim.Adam, {"betas": (0.9, 0.99), "eps": 1e-3}, True),
    (RMSProp(0.9, 1e-3), torch.optim.RMSprop, {"alpha": 0.9, "eps": 1e-3}, False),
], ids=["adam", "rmsprop"])
def test_the_preconditioner_is_the_denominator_torch_divides_by(ours, theirs, kwargs, bias,
                                                                  tiny):
    """P read off torch.optim's own state: sqrt(v / (1 - beta2^t)) + eps for Adam,
    sqrt(v) + eps for RMSProp."""
    obj, w = tiny
    sampler = MiniBatchSampler(obj.n, 8, seed=SEED)
    batches = [sampler.next() for _ in range(6)]
    state = ours.init(w.clone())
    p = torch.nn.Parameter(w.clone())
    opt = theirs([p], lr=1e-2, **kwargs)
    for idx in batches:
        b = batch_objective(obj, idx)
        state = ours.update(state, b.grad(state[0]), 1e-2)
        opt.zero_grad()
        b._chunk_loss(p, b.x, b.y).backward()
        opt.step()
    st = opt.state[p]
    v = st["exp_avg_sq"] if bias else st["square_avg"]
    scale = 1 - kwargs["betas"][1] ** float(st["step"]) if bias else 1.0
    expected = (v / scale).sqrt() + kwargs["eps"]
    torch.testing.assert_close(ours.preconditioner(state), expected, rtol=1e-12, atol=0)


def test_thresholds_of_the_frozen_preconditioner():
    assert Adam(0.9).critical_sharpness(0.01) == pytest.approx(38 / 0.01)
    assert Adam(0.0).critical_sharpness(0.5) == pytest.approx(4.0)
    assert RMSProp(0.99).critical_sharpness(0.5) == pytest.approx(4.0)
