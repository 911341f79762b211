"""The torch central flow of RMSProp: against minimal_eos's RMSProp flow on a scalar network
written as a torch objective, against RMSProp itself below the edge, and in a real run."""

import math

import numpy as np
import pytest
import torch

from minimal_eos import RMSProp, ScalarNetwork, reference_run, rmsprop_central_flow
from validation.adaptive import RMSProp as TorchRMSProp
from validation.flows import RMSPropCentralFlow
from validation.sharpness import SharpnessTracker


class _ScalarObjective:
    """``L(w) = 1/(2n) sum_k (x_k w_1 ... w_D - y_k)^2`` (minimal_eos's ScalarNetwork) in torch
    float64, with the interface the flows use: value, grad, hvp and third by autograd."""

    def __init__(self, x, y):
        self.x = torch.tensor(x, dtype=torch.float64)
        self.y = torch.tensor(y, dtype=torch.float64)

    def value(self, w):
        return 0.5 * torch.mean((self.x * torch.prod(w) - self.y) ** 2)

    def _graph(self, w):
        leaf = w.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(self.value(leaf), leaf, create_graph=True)
        return leaf, g

    def grad(self, w):
        return self._graph(w)[1].detach()

    def hvp(self, w, v):
        leaf, g = self._graph(w)
        vs = v[:, None] if v.dim() == 1 else v
        out = torch.stack([torch.autograd.grad(g, leaf, vs[:, j], retain_graph=True)[0]
                           for j in range(vs.shape[1])], 1)
        return out[:, 0] if v.dim() == 1 else out

    def third(self, w, u, x=None):
        u = u[:, None] if u.dim() == 1 else u
        x = torch.eye(u.shape[1], dtype=u.dtype) if x is None else x
        leaf, g = self._graph(w)
        ux = u @ x
        total = sum(torch.dot(ux[:, j], torch.autograd.grad(g, leaf, u[:, j], create_graph=True)[0])
                    for j in range(u.shape[1]))
        return torch.autograd.grad(total, leaf)[0]


def _make_tracker(p, tol=1e-12):
    def make(op):
        return SharpnessTracker(op, p, k=1, tol=tol, generator=torch.Generator().manual_seed(0))
    return make


def test_the_torch_flow_follows_minimal_eos_rmsprop_flow_through_the_edge():
    # README's scalar network: RMSProp's state at step 300 has lambda(D H) = 0.84 * 2/eta;
    # both flows reach the edge within 50 steps and hold it. minimal_eos integrates the
    # flow's ODE (Radau, rtol 1e-8) with X from the velocity's complementarity problem;
    # the torch flow takes RK4 steps of the stable flow, each projected back to the edge
    # in the preconditioned geometry. With its default step (eta lambda dt = 1) it is a
    # first-order splitting: measured at t = 100, w within 6e-5, nu within 3e-4 and the
    # oscillation's share of the loss, tr(X)/eta, within 2%, errors that shrink about
    # fourfold with four times smaller steps (safety 0.25). Tolerances: 5e-4, 2e-3, 5%.
    model = ScalarNetwork(depth=2, x=(1.0, 2.0), y=(1.0, 1.7))
    eta, opt, t0 = 0.01, RMSProp(beta2=0.99, eps=1e-8), 300
    theta = reference_run(model, opt, [2.0, 0.1], np.full(t0, eta))
    nu = np.zeros(2)
    for k in range(t0):
        g = model.grad(theta[k])
        nu = opt.beta2 * nu + (1 - opt.beta2) * g * g
    times = [50.0, 100.0]
    ref = rmsprop_central_flow(model, theta[t0], nu, times[-1], eta=eta, optimizer=opt,
                               t_eval=[0.0, *times])
    flow = RMSPropCentralFlow(_ScalarObjective(model.x, model.y), eta, torch.tensor(theta[t0]),
                              torch.tensor(nu), beta2=opt.beta2, eps=opt.eps,
                              make_tracker=_make_tracker(2))
    for i, t in enumerate(times, start=1):
        flow.advance(t)
        assert flow.sharpness * eta / 2 == pytest.approx(1.0, abs=1e-4)
        np.testing.assert_allclose(flow.w.numpy(), ref.theta[i], rtol=5e-4)
        np.testing.assert_allclose(flow.nu.numpy(), ref.nu[i], rtol=2e-3)
        share = flow.predicted_loss() - float(flow.objective.value(flow.w))
        assert share == pytest.approx(ref.predicted_loss[i] - ref.loss[i], rel=0.05)
    assert ref.preconditioned_sharpness[0] * eta / 2 < 0.9 and flow.projections > 0


def test_below_the_edge_the_flow_is_what_rmsprop_does_with_small_steps(tiny):
    # Below the edge Sigma = 0: the flow is preconditioned gradient flow with the
    # average's ODE, which RMSProp's steps follow to first order in eta lambda(D H)
    # (0.26 here) and in 1 - beta2 for the average.
    obj, w = tiny
    beta2, eps, eta = 0.99, 0.1, 0.01
    opt = TorchRMSProp(alpha=beta2, eps=eps)
    state = opt.init(w.clone())
    for _ in range(20):  # fill the average first: the flow needs nu > 0
        state = opt.update(state, obj.grad(state[0]), eta)
    w0, nu0 = state
    make = _make_tracker(w.numel(), tol=1e-8)
    flows = [RMSPropCentralFlow(obj, eta, w0, nu0, beta2=beta2, eps=eps, make_tracker=make,
                                central=central) for central in (True, False)]
    steps = 200
    for _ in range(steps):
        state = opt.update(state, obj.grad(state[0]), eta)
    for f in flows:
        f.advance(steps)
    cf, sf = flows
    assert cf.sharpness * eta / 2 < 0.2 and cf.projections == 0 and cf.sigma_trace == 0.0
    assert torch.equal(cf.w, sf.w) and torch.equal(cf.nu, sf.nu)
    moved = float(torch.linalg.vector_norm(state[0] - w0))
    err_w = float(torch.linalg.vector_norm(cf.w - state[0])) / moved
    err_nu = float(torch.linalg.vector_norm(cf.nu - state[1]) / torch.linalg.vector_norm(state[1]))
    print(f"moved {moved:.4g}; flow vs RMSProp: w {err_w:.3g} of it, nu {err_nu:.3g}")
    assert moved > 0.1
    assert err_w < 1e-2
    assert err_nu < 5e-2
    assert cf.predicted_loss() == float(obj.value(cf.w))


@pytest.mark.parametrize("kwargs, match", [
    ({"beta2": 1.0}, "beta2"), ({"eps": 0.0}, "eps"), ({"eps": math.inf}, "eps"),
    ({"nu0": "zero"}, "nu0"), ({"nu0": "short"}, "nu0")])
def test_bad_input_is_rejected(tiny, kwargs, match):
    obj, w = tiny
    nu0 = {"zero": torch.zeros_like(w), "short": torch.ones(3, dtype=w.dtype)}.get(
        kwargs.pop("nu0", None), torch.ones_like(w))
    args = {"beta2": 0.99, "eps": 1e-8, **kwargs}
    with pytest.raises(ValueError, match=match):
        RMSPropCentralFlow(obj, 0.1, w, nu0, make_tracker=_make_tracker(w.numel()), **args)


def test_a_resumed_run_has_the_flows_of_an_uninterrupted_one(tmp_path, same):
    from validation.experiment import Config, run_experiment

    cfg = Config(dataset="synthetic", n=60, width=16, steps=40, window=10, track_every=4,
                 seed=5, optimizer="rmsprop", eta=1e-2, eps=1e-2, beta2=0.99,
                 checks=("rmsprop-central-flow",), checkpoint_every=10)
    a = run_experiment(cfg)
    assert all(math.isnan(v) for t, v in zip(a["records"]["t"], a["records"]["rf_loss"],
                                              strict=True) if t < 20)
    assert all(math.isfinite(v) for t, v in zip(a["records"]["t"], a["records"]["rf_loss"],
                                                strict=True) if t >= 20)
    run_experiment(cfg, out_dir=tmp_path, stop_after=35)
    c = run_experiment(cfg, out_dir=tmp_path, resume=True)
    assert c["resumed_from"] == 30
    assert same(a["records"], c["records"]) and same(a["rmsprop_flow"], c["rmsprop_flow"])


@pytest.mark.slow
def test_a_bounded_real_run_follows_its_central_flow(full):
    # MNIST-1D, 300 examples, tanh MLP of width 32, eps = 3e-3 (eta / eps = 1): lambda(D H)
    # starts at 0.79 * 2/eta at step 20, where the flows start, and reaches 2/eta near step
    # 55 (the 300-step run of --full is in README). The central flow holds the edge; the
    # stable flow (Sigma = 0) runs past it, and RMSProp stays with the central flow.
    from validation.experiment import Config, run_experiment
    from validation.predictions import evaluate

    cfg = Config(n=300, width=32, optimizer="rmsprop", eta=3e-3, eps=3e-3, beta2=0.99,
                 steps=300 if full else 120, checks=("rmsprop-central-flow",))
    res = run_experiment(cfg)
    rows = evaluate(res, cfg)
    assert [r["name"] for r in rows] == ["j.loss_path", "j.edge", "j.distance"]
    assert all(r["status"] == "holds" for r in rows), rows
    rec, edge = res["records"], res["runs"]["main"]["edge"]
    assert res["rmsprop_flow"]["stopped"] is None and res["rmsprop_flow"]["projections"] > 0
    assert max(s for s in rec["rf_sharpness"] if math.isfinite(s)) < edge * (1 + 1e-3)
    assert rec["sf_sharpness"][-1] > 1.2 * edge


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"optimizer": "rmsprop", "steps": 20}, "steps must exceed it"),
    ({"optimizer": "adam"}, "needs optimizer 'rmsprop'"),
    ({"optimizer": "gd"}, "needs optimizer 'rmsprop'")])
def test_the_check_refuses_runs_it_cannot_apply_to(kwargs, match):
    from validation.experiment import Config
    from validation.preflight import ConfigError

    with pytest.raises(ConfigError, match=match):
        Config(checks=("rmsprop-central-flow",), **kwargs)
