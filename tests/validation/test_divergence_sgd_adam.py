"""A run whose curvature blows up before its loss does is reported as diverged, not raised."""

import math

import pytest
import torch

from validation.experiment import SHARPNESS_DIVERGENCE_FACTOR, Config, run_experiment
from validation.objective import Objective
from validation.predictions import evaluate
from validation.report import divergences, format_table
from validation.sharpness import SharpnessError, SharpnessTracker

SEED = 0
TINY = dict(dataset="synthetic", n=60, width=16, steps=40, window=10, seed=SEED)
CHECKS = {"sgd": ("batch-sharpness",), "adam": ("preconditioned-edge",), "gd": ("edge",)}


@pytest.mark.parametrize("scale", [math.inf, math.nan, 1e30])
def test_the_tracker_raises_a_sharpness_error_on_products_it_cannot_use(scale):
    """Infinite products made lobpcg's eigh raise LinAlgError, and products that overflow
    the Gram matrix (1e30 squared in float32) gave a NaN eigenvalue; both are now one
    SharpnessError."""
    a = torch.diag(torch.arange(1.0, 9.0))
    tracker = SharpnessTracker(lambda w, v: scale * (a @ v), 8,
                               generator=torch.Generator().manual_seed(SEED))
    with pytest.raises(SharpnessError):
        tracker.estimate(torch.zeros(8))
    assert tracker.vectors is None and tracker.estimates == 0


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "gd"])
def test_a_run_whose_products_stop_being_finite_reports_divergence(optimizer, monkeypatch):
    """After the 60th Hessian-vector product, the products are infinite while the loss
    stays finite (an iterate whose curvature overflows first). The run used to stop with
    the eigensolver's LinAlgError; now it diverges at the tracked step, its records end
    the step before, and its rows are not applicable."""
    calls = []
    hvp = Objective.hvp

    def overflowing(self, w, v):
        calls.append(1)
        out = hvp(self, w, v)
        return out * math.inf if len(calls) > 60 else out

    monkeypatch.setattr(Objective, "hvp", overflowing)
    cfg = Config(optimizer=optimizer, eta=0.05 if optimizer != "adam" else 1e-2,
                 batch_size=10, checks=CHECKS[optimizer], track_every=4, **TINY)
    res = run_experiment(cfg)
    main = res["runs"]["main"]
    at = main["diverged_at"]
    assert at is not None and at % 4 == 0 and 0 < at <= 40
    assert main["diverged_reason"] == ("the sharpness cannot be estimated (a Hessian-vector "
                                       "product is not finite)")
    assert math.isfinite(main["diverged_loss"])
    assert len(main["loss"]) == at and max(t for t, _ in main["sharpness"]) < at
    rows = evaluate(res, cfg)
    assert rows and all(r["status"] == "not applicable" for r in rows)
    table = format_table(rows, diverged=divergences(res))
    assert f"diverged: main at step {at}: the sharpness cannot be estimated" in table


def test_sgd_whose_sharpness_explodes_before_its_loss_diverges_there():
    """SGD with eta = 2, batches of 10 of 60 synthetic examples, tracked every step:
    lambda_max reaches 2.5e5, above 1e3 times 2/eta = 1, at step 9 while the loss
    (4.2e4) is still below 1e6 times its start (measured); the loss bound alone would
    stop the run one step later. The run diverges at step 9 and says why."""
    cfg = Config(optimizer="sgd", eta=2.0, batch_size=10, checks=("batch-sharpness",),
                 track_every=1, **TINY)
    res = run_experiment(cfg)
    main = res["runs"]["main"]
    assert main["diverged_at"] == 9
    assert main["diverged_loss"] < 1e6 * main["loss"][0]
    reason = main["diverged_reason"]
    assert reason.startswith("the sharpness ") and reason.endswith(
        f"exceeds {SHARPNESS_DIVERGENCE_FACTOR:.0e} times its edge 1")
    sto = res["stochastic"]
    assert sto["t"] == list(range(9)) and len(main["loss"]) == 9
    assert all(s <= SHARPNESS_DIVERGENCE_FACTOR for _, s in main["sharpness"])
    assert all(r["status"] == "not applicable" for r in evaluate(res, cfg))
