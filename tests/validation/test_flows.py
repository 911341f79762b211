import itertools

import numpy as np
import pytest
import torch

from validation.experiment import Config, Experiment
from validation.flows import (
    CentralFlow,
    ConstrainedTrajectory,
    GradientFlow,
    central_flow_sigma,
    rk4_step,
    third_pairs,
)
from validation.sharpness import SharpnessTracker


def _tracker(obj, w, k=1, seed=0):
    # tol is the tracker's relative eigenvalue accuracy (Kato-Temple); the flow's Sigma
    # needs accurate eigenvectors too, whose error is about the square root of it
    return SharpnessTracker(obj.hvp, w.numel(), k=k, tol=1e-12,
                            generator=torch.Generator().manual_seed(seed))


def test_gradient_flow_step_rule_is_accurate(tiny):
    obj, w = tiny
    eta = 0.5
    coarse = GradientFlow(obj, eta, w, tracker=_tracker(obj, w))
    coarse.advance(10)
    fine = w.clone()
    for _ in range(200):  # 10 GD steps of flow time in steps of 0.05
        fine = rk4_step(obj, fine, eta, 0.05)
    # Default step eta S dt = 1: RK4 reproduces exp(-z) on the top mode to 0.7% per step
    # (1 - z + z^2/2 - z^3/6 + z^4/24 vs e^-1) and the slower modes far better.
    assert torch.linalg.vector_norm(coarse.w - fine) <= 1e-2 * torch.linalg.vector_norm(fine - w)
    assert coarse.t == 10.0


def test_single_eigenvalue_sigma_is_two_alpha_over_beta(tiny):
    obj, w = tiny
    tr = _tracker(obj, w)
    u = tr.estimate(w).vectors
    x = central_flow_sigma(obj, w, u)
    grad_s = obj.third(w, u[:, 0])
    g = obj.grad(w)
    expected = max(0.0, float(-2 * torch.dot(g, grad_s) / torch.dot(grad_s, grad_s)))
    assert np.isclose(x[0, 0], expected, rtol=1e-10, atol=1e-14)


def test_central_flow_holds_the_edge_and_is_gradient_flow_below_it(tiny):
    obj, w = tiny
    s0 = float(_tracker(obj, w).estimate(w).values[0])
    # Below the edge: the central flow is gradient flow.
    eta_low = 0.2 / s0
    cf = CentralFlow(obj, eta_low, w, tracker=_tracker(obj, w, k=2))
    gf = GradientFlow(obj, eta_low, w, tracker=_tracker(obj, w))
    cf.advance(5)
    gf.advance(5)
    assert cf.projections == 0 and cf.sigma_trace == 0.0
    assert torch.allclose(cf.w, gf.w, atol=1e-6)
    # Start just above the edge: the projection brings the sharpness to 2/eta.
    eta = 2.0 / (0.97 * s0)
    cf = CentralFlow(obj, eta, w, tracker=_tracker(obj, w, k=2))
    cf.advance(6)
    s = float(_tracker(obj, cf.w, seed=3).estimate(cf.w).values[0])
    # One linearised projection per step leaves an error of second order in the step.
    assert s <= cf.edge * (1 + 1e-3)
    assert cf.projections > 0


def test_constrained_trajectory_lands_on_the_stable_set(tiny):
    obj, w = tiny
    s0 = float(_tracker(obj, w).estimate(w).values[0])
    eta = 2.0 / (0.98 * s0)
    pgd = ConstrainedTrajectory(obj, eta, w, tracker=_tracker(obj, w))
    for _ in range(3):
        pgd.step()
    est = _tracker(obj, pgd.w, seed=5).estimate(pgd.w)
    lam, u = float(est.values[0]), est.vectors[:, 0]
    g = obj.grad(pgd.w)
    assert lam <= (2 / eta) * (1 + 1e-3)
    # grad L . u is driven to (nearly) zero: compare with the gradient's size.
    assert abs(float(torch.dot(g, u))) <= 1e-2 * float(torch.linalg.vector_norm(g))


# -- the central flow's formulas against an independent route ----------------------------
#
# grad S by autograd through a dense eigendecomposition, S(w) = lambda_max(H(w)) with H by
# double reverse mode: no Hessian-vector product, no Objective.third.


def _dense_sharpness_grad(obj, w):
    """``S(w)``, ``grad S(w)`` and the top eigenvalues, from the dense Hessian."""
    p = w.detach().clone().requires_grad_(True)
    h = torch.autograd.functional.hessian(lambda q: obj._chunk_loss(q, obj.x, obj.y), p,
                                          create_graph=True)
    vals = torch.linalg.eigvalsh(h)
    (grad_s,) = torch.autograd.grad(vals[-1], p)
    vals = vals.detach()
    return float(vals[-1]), grad_s, vals


@pytest.fixture(scope="module")
def edge_run(tiny):
    """The central flow from just above the edge (it sharpens there), at t = 4 and 8."""
    obj, w = tiny
    eta = 2.0 / (0.97 * _dense_sharpness_grad(obj, w)[0])
    cf = CentralFlow(obj, eta, w, tracker=_tracker(obj, w, k=2))
    out = []
    for t in (4, 8):
        cf.advance(t)
        s, grad_s, vals = _dense_sharpness_grad(obj, cf.w)
        g = obj.grad(cf.w)
        out.append({"w": cf.w.clone(), "eta": eta, "edge": cf.edge, "sharpness": cf.sharpness,
                    "dense": s, "gap": float(vals[-1] - vals[-2]),
                    "alpha": -float(torch.dot(g, grad_s)), "beta": float(torch.dot(grad_s, grad_s)),
                    "sigma_trace": cf.sigma_trace, "predicted": cf.predicted_loss(),
                    "loss": float(obj.value(cf.w))})
    return out


def test_sigma_at_a_sharpening_point_is_two_alpha_over_beta(tiny, edge_run):
    obj, _ = tiny
    for rec in edge_run:
        w = rec["w"]
        # a sharpening point (alpha > 0): sigma^2 is not clamped at zero, and a simple top
        # eigenvalue, so S is differentiable
        assert rec["alpha"] > 0.01 * np.sqrt(rec["beta"]) and rec["gap"] > 0.1
        u = _tracker(obj, w, seed=2).estimate(w).vectors
        x = central_flow_sigma(obj, w, u)
        # the tracker's vector (residual <= 1e-6, gap > 0.1) moves grad S by <= ~1e-5;
        # measured 3e-15 (LOBPCG ends far below its target on 175 parameters)
        assert x.shape == (1, 1)
        assert x[0, 0] == pytest.approx(2 * rec["alpha"] / rec["beta"], rel=1e-5)


@pytest.mark.parametrize("k", [2, 3])
def test_several_eigenvalues_sigma_solves_the_flow_complementarity_problem(tiny, edge_run, k):
    # the svec form handed to minimal_eos.flows.solve_sigma, checked in the original one:
    # X >= 0, G = A + B[X]/2 >= 0, <X, G> = 0 with A_ij = c_ij . grad L and
    # B[X]_ij = c_ij . sum_kl X_kl c_kl, c_ij from third_pairs; at the start (the top
    # eigenvalue falls, X = 0) and on the edge (it rises, X != 0)
    obj, w0 = tiny
    for w in (w0, edge_run[-1]["w"]):
        u = _tracker(obj, w, k=k).estimate(w).vectors
        x = central_flow_sigma(obj, w, u)
        c = third_pairs(obj, w, u)
        a = torch.einsum("ijp,p->ij", c, obj.grad(w)).numpy()
        force = torch.einsum("ij,ijp->p", torch.as_tensor(x), c)
        gmat = a + 0.5 * torch.einsum("ijp,p->ij", c, force).numpy()
        size = np.abs(a).max()
        assert x.shape == (k, k) and np.allclose(x, x.T, rtol=0, atol=1e-14)
        assert np.linalg.eigvalsh(x).min() >= -1e-10 * max(np.abs(x).max(), 1e-300)
        assert np.linalg.eigvalsh(gmat).min() >= -1e-8 * size
        assert abs(np.sum(x * gmat)) <= 1e-8 * size * max(np.abs(x).max(), 1.0)
        assert (np.abs(x).max() > 0) == (np.linalg.eigvalsh(a).min() < 0)


class _Quadratic:
    """``L(w) = 1/2 w^T A w - b^T w``: gradient flow has a closed form."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def grad(self, w):
        return self.a @ w - self.b


def test_rk4_step_is_fourth_order():
    gen = torch.Generator().manual_seed(11)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))
    lam = torch.tensor([3.0, 2.0, 1.0, 0.5, 0.1, 0.0], dtype=torch.float64)
    obj = _Quadratic(q @ torch.diag(lam) @ q.T, torch.randn(6, generator=gen, dtype=torch.float64))
    w0 = torch.randn(6, generator=gen, dtype=torch.float64)
    eta = 0.4
    g0 = obj.grad(w0)

    def exact(t):
        # w(t) = w0 - Q diag((1 - exp(-eta lam t)) / lam) Q^T g0 (eta t on the null mode)
        z = eta * lam * t
        phi = torch.where(lam > 0, -torch.expm1(-z) / torch.clamp(lam, min=1e-300), eta * t)
        return w0 - q @ (phi * (q.T @ g0))

    errors = [float(torch.linalg.vector_norm(rk4_step(obj, w0, eta, dt) - exact(dt)))
              for dt in (0.4, 0.2, 0.1)]
    # one-step error C dt^5 (1 + O(dt)): halving dt divides it by ~32 (measured 30.8, 31.4);
    # a third-order step would give 16, a second-order one 8
    for coarse, fine in itertools.pairwise(errors):
        assert 28 < coarse / fine < 34
    assert errors[-1] > 1e-12  # far above rounding


def test_central_flow_holds_the_edge_and_records_after_projecting(edge_run):
    for rec in edge_run:
        # the recorded sharpness is the top eigenvalue at the point the flow is at (the
        # dense one; measured within 2e-12), held within 1e-4 of 2/eta (hold_tol 1e-5
        # relative: 2.3e-5; measured 2.5e-8)
        assert rec["sigma_trace"] > 0
        assert abs(rec["dense"] - rec["edge"]) <= 1e-4
        assert abs(rec["sharpness"] - rec["dense"]) <= 1e-6


def test_central_flow_sigma_and_predicted_loss(edge_run):
    for rec in edge_run:
        alpha, beta = rec["alpha"], rec["beta"]
        assert alpha > 0
        # one eigenvalue at the edge: tr Sigma = sigma^2 = 2 alpha / beta at the flow's
        # point (measured within 2.2e-7 relative, tracker at tol 1e-6)
        assert rec["sigma_trace"] == pytest.approx(2 * alpha / beta, rel=1e-5)
        # GD's predicted time-averaged loss: L(w) + tr(Sigma) / eta (measured 7e-8)
        assert rec["predicted"] == pytest.approx(rec["loss"] + 2 * alpha / beta / rec["eta"],
                                                 rel=1e-5)
        assert rec["predicted"] - rec["loss"] > 0.1 * rec["loss"]  # 25-50 % of L here


def test_default_tracking_tolerance_does_not_let_the_run_creep_above_the_edge():
    # A small run that reaches the edge at t ~ 3 and keeps sharpening: projected with
    # eigenvalues at the run's tracking tolerance 1e-2 the flow's true top eigenvalue
    # creeps above 2/eta (measured +2.1e-4 at t = 20, while the recorded Ritz value stays at
    # 2/eta); the run's central flow projects with EDGE_TOL (3e-4: measured +4.1e-8).
    cfg = Config(dataset="synthetic", n=24, width=6, depth=2, dtype="float64", eta=1.5,
                 steps=20, record_every=5, checks=("central-flow",))
    exp = Experiment(cfg, torch.device("cpu"))
    while exp.t <= cfg.steps:
        exp.step()
    rec = exp.records
    assert min(rec["cf_sigma"][1:]) > 0  # at the edge from the second record on
    h = torch.autograd.functional.hessian(
        lambda q: exp.objective._chunk_loss(q, exp.objective.x, exp.objective.y), exp.cf.w)
    top = float(torch.linalg.eigvalsh(h)[-1])
    assert abs(top - exp.cf.edge) <= 1e-4
    assert abs(rec["cf_sharpness"][-1] - top) <= 1e-4
    assert exp.cf_edge_gap() <= 1e-4


def test_central_flow_rejects_bad_tolerances(tiny):
    obj, w = tiny
    for kwargs, name in (({"hold_tol": 0.0}, "hold_tol"), ({"hold_tol": 0.5}, "hold_tol"),
                         ({"max_corrections": -1}, "max_corrections"),
                         ({"max_corrections": 1.5}, "max_corrections"),
                         ({"safety": 3.0}, "safety")):
        with pytest.raises(ValueError, match=name):
            CentralFlow(obj, 0.5, w, tracker=_tracker(obj, w), **kwargs)
