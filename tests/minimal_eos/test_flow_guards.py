"""The central flow stops at once, with a reason, when what it integrates is not the flow."""

import numpy as np
import pytest

from minimal_eos import CubicModel, central_flow, gradient_flow
from minimal_eos import flows as flows_module
from minimal_eos.flows import CentralVelocity


def test_a_flow_that_passes_the_edge_stops_there(monkeypatch):
    """A right-hand side without its Sigma term is gradient flow, which sharpens past 2/eta
    (to 2/eta + alpha/h = 20.5 here); the central flow's integration stops when the sharpness
    passes (1 + edge_tol) 2/eta instead of integrating that runaway to the end."""
    eta, alpha, beta = 0.1, 1.0, 4.0
    model = CubicModel.at_edge(eta, alpha, beta, 3, damping=2.0)
    w0 = model.local_point([1e-3, -1.0, 1.0, -1.0, 0.5])
    gf = gradient_flow(model, w0, 300, eta=eta, records=31)
    assert gf.success and gf.sharpness[-1] > 2 / eta * 1.02

    def without_sigma(ev, eta, *args):
        d = ev.grad().size
        return CentralVelocity(-eta * ev.grad(), np.zeros((d, d)), np.zeros(0), 0.0)

    monkeypatch.setattr(flows_module, "_central_velocity", without_sigma)
    res = central_flow(model, w0, 300, eta=eta, records=31, edge_tol=0.01)
    assert not res.success
    assert res.message.startswith("the sharpness rose past 20.2 = (1 + edge_tol) 2/eta at t = ")
    # records stop where gradient flow passes 20.2
    crossing = gf.t[np.argmax(gf.sharpness > 20.2)]
    assert res.t[-1] < crossing <= res.t[-1] + 10
    assert res.sharpness.max() <= 20.2


def test_edge_tol_is_checked():
    model = CubicModel.at_edge(0.1, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"^edge_tol must be finite and > 0"):
        central_flow(model, model.center, 10, eta=0.1, edge_tol=0.0)
