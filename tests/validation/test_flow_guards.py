"""The torch central flow stops at once, with a reason, when its projection fails."""

import pytest
import torch

from validation.flows import CentralFlow
from validation.sharpness import SharpnessTracker


def _tracker(obj, w, k=1):
    return SharpnessTracker(obj.hvp, w.numel(), k=k, tol=1e-12,
                            generator=torch.Generator().manual_seed(0))


def test_a_projection_that_pushes_up_stops_the_flow(tiny, monkeypatch):
    """The correction taken with the wrong sign (a sign error in the stabilising term)
    raises the eigenvalues it should hold at 2/eta; the flow stops once the sharpness is
    10% above the edge, instead of shrinking its steps as the sharpness runs away."""
    obj, w = tiny
    s0 = float(_tracker(obj, w).estimate(w).values[0])
    eta = 2.0 / (0.97 * s0)  # start 3% above the edge
    project = CentralFlow._project

    def pushes_up(self, est, step):
        before = self.w
        project(self, est, step)
        self.w = before - (self.w - before)

    monkeypatch.setattr(CentralFlow, "_project", pushes_up)
    cf = CentralFlow(obj, eta, w, tracker=_tracker(obj, w, k=2))
    with pytest.raises(RuntimeError, match="projection does not hold the edge"):
        cf.advance(200)
    assert cf.t < 200
