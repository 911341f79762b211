"""The torch central flow stops at once, with a reason, when its projection fails."""

import math

import pytest
import torch

from validation.flows import CentralFlow, FlowRunaway
from validation.sharpness import SharpnessTracker


def _tracker(obj, w, k=1):
    return SharpnessTracker(obj.hvp, w.numel(), k=k, tol=1e-12,
                            generator=torch.Generator().manual_seed(0))


def test_a_projection_that_pushes_up_stops_the_flow(tiny, projection_pushes_up):
    """The correction taken with the wrong sign (a sign error in the stabilising term)
    raises the eigenvalues it should hold at 2/eta; the flow stops once the sharpness is
    10% above the edge, instead of shrinking its steps as the sharpness runs away."""
    obj, w = tiny
    s0 = float(_tracker(obj, w).estimate(w).values[0])
    eta = 2.0 / (0.97 * s0)  # start 3% above the edge
    cf = CentralFlow(obj, eta, w, tracker=_tracker(obj, w, k=2))
    with pytest.raises(FlowRunaway, match="projection does not hold the edge"):
        cf.advance(200)
    assert cf.t < 200


def test_a_run_whose_central_flow_runs_away_reports_it(projection_pushes_up):
    """In a run, the flow's stop is recorded, not raised: GD finishes, the flow's records
    after the stop are NaN, and the central-flow rows fail with the reason."""
    from validation.experiment import Config, run_experiment
    from validation.predictions import evaluate
    from validation.report import format_table

    cfg = Config(n=300, width=32, eta=0.4, steps=320, track_every=3, window=60,
                 checks=("edge", "central-flow", "flow-distance"))
    res = run_experiment(cfg, device="cpu")
    assert res["cf_stopped"] and "does not hold the edge" in res["cf_stopped"]
    assert len(res["runs"]["main"]["loss"]) == cfg.steps + 1
    assert any(math.isnan(v) for v in res["records"]["cf_pred_loss"])
    rows = evaluate(res, cfg)
    flow = [r for r in rows if r["check"] in ("central-flow", "flow-distance")]
    assert flow and all(r["status"] in ("fails", "not applicable") for r in flow)
    assert any(r["status"] == "fails" and r["reason"] == res["cf_stopped"] for r in flow)
    assert "fails d.loss: the central flow stopped" in format_table(rows)
