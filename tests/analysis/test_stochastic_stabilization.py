"""The measured stochastic sharpness gap against the formula (analysis.stochastic_stabilization)."""

import csv
import json

import numpy as np
import pytest

from analysis.stochastic_stabilization import gap_grid, main, noise_for_level


def test_measured_gap_matches_the_formula_where_it_should():
    """Damian et al.'s map (no damping) at a = eta^2 alpha = 8e-4 and noise levels
    q = Delta S / sqrt(2 alpha) of 0.3 and 1, where the full grid
    (python -m analysis.stochastic_stabilization) measured 11 % and 5 %: within 15 % here
    with a shorter run. At q = 0.03 the deterministic four-phase cycle dominates and the
    measured gap is more than twice the formula: the prediction fails there."""
    rows = gap_grid([0.02], [2.0], [1.0], [0.03, 0.3, 1.0], steps=100_000, burn_in=10_000,
                    runs=8, seed=0)
    small, mid, large = rows
    for r in (mid, large):
        assert r.diverged == 0
        assert r.relative_error < 0.15, r
        assert r.sigma_u2 == pytest.approx(noise_for_level(r.q, 0.02, 2.0, 1.0))
    assert small.measured > 2 * small.predicted


def test_the_script_writes_its_files(tmp_path, capsys):
    main(["--etas", "0.05", "--alphas", "1.0", "--betas", "1.0", "--levels", "1.0",
          "--dampings", "0", "1", "--steps", "4000", "--burn-in", "1000", "--runs", "2",
          "--out", str(tmp_path)])
    rows = list(csv.DictReader(open(tmp_path / "gap.csv")))
    assert len(rows) == 2 and {r["damping"] for r in rows} == {"0", "1"}
    assert float(rows[0]["predicted"]) == pytest.approx(np.sqrt(2.0))
    summary = json.load(open(tmp_path / "gap.json"))["summary"]
    assert [s["damping"] for s in summary] == [0.0, 1.0]
    assert (tmp_path / "gap.png").stat().st_size > 0
    assert "measured/formula" in capsys.readouterr().out


def test_the_script_refuses_bad_grids(tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["--etas", "-0.1", "--out", str(tmp_path)])
    assert info.value.code == 2
