"""RMSProp against its central flow (analysis.rmsprop_flow)."""

from types import SimpleNamespace

import numpy as np
import pytest

from analysis import rmsprop_flow
from analysis.rmsprop_flow import main, preconditioned_sharpness
from minimal_eos import RMSProp, ScalarNetwork, reference_run


def test_preconditioned_sharpness_is_that_of_the_frozen_map():
    # with P frozen RMSProp is w+ = w - eta P^{-1} H w on a quadratic; its largest growth
    # factor |1 - eta lambda| reaches 1 exactly at lambda = lambda_max(P^{-1} H) = 2/eta
    model = ScalarNetwork(depth=2, x=(1.0, 2.0), y=(1.0, 1.7))
    w, nu, eps = np.array([1.3, 0.7]), np.array([0.02, 0.05]), 1e-3
    jac = np.eye(2) - 0.1 * model.hessian(w) / (np.sqrt(nu) + eps)[:, None]
    lam = preconditioned_sharpness(model, w, nu, eps)
    assert np.sort(np.linalg.eigvals(jac).real)[0] == pytest.approx(1 - 0.1 * lam, rel=1e-12)
    assert RMSProp(0.9, eps).critical_sharpness(0.1) == pytest.approx(2 / 0.1)


def _reference_simulate(model, optimizer, theta0, steps, *, eta, save):
    """simulate's result for one run, from reference_run (the update map in numpy)."""
    theta = reference_run(model, optimizer, theta0, np.full(steps, eta))
    loss = np.array([model.loss(w) for w in theta])
    return SimpleNamespace(diverged_at=np.array([-1]), theta=[SimpleNamespace(data=theta)],
                           loss=[SimpleNamespace(data=loss)])


@pytest.mark.slow
def test_the_script_prints_the_comparison(capsys, monkeypatch, full):
    # --full: RMSProp through simulate's compiled loop, where most of the time is the
    # kernel's compilation. By default through reference_run, the same update map in
    # numpy, which the compiled loop equals bit for bit (tests/minimal_eos/test_sgd.py):
    # the script's comparison is the same, without the compilation.
    if not full:
        monkeypatch.setattr(rmsprop_flow, "simulate", _reference_simulate)
    main(["--steps", "1600", "--start", "300", "--settle", "1200", "--window", "200"])
    out = capsys.readouterr().out
    assert "windows from step 1200 on (1)" in out
    rel = float(out.split("|mean loss - predicted| / mean loss: max ")[1].split()[0])
    assert rel < 5e-3


def test_bad_input_exits_with_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--eps", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "eps" in err and len(err.strip().splitlines()) == 1
