"""RMSProp against its central flow (analysis.rmsprop_flow)."""

import numpy as np
import pytest

from analysis.rmsprop_flow import main, preconditioned_sharpness
from minimal_eos import RMSProp, ScalarNetwork


def test_preconditioned_sharpness_is_that_of_the_frozen_map():
    # with P frozen RMSProp is w+ = w - eta P^{-1} H w on a quadratic; its largest growth
    # factor |1 - eta lambda| reaches 1 exactly at lambda = lambda_max(P^{-1} H) = 2/eta
    model = ScalarNetwork(depth=2, x=(1.0, 2.0), y=(1.0, 1.7))
    w, nu, eps = np.array([1.3, 0.7]), np.array([0.02, 0.05]), 1e-3
    jac = np.eye(2) - 0.1 * model.hessian(w) / (np.sqrt(nu) + eps)[:, None]
    lam = preconditioned_sharpness(model, w, nu, eps)
    assert np.sort(np.linalg.eigvals(jac).real)[0] == pytest.approx(1 - 0.1 * lam, rel=1e-12)
    assert RMSProp(0.9, eps).critical_sharpness(0.1) == pytest.approx(2 / 0.1)


@pytest.mark.slow
def test_the_script_prints_the_comparison(capsys):
    # RMSProp through simulate's compiled loop, so most of the time is its compilation
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
