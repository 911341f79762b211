"""Sizes refused before any work starts: sweeps whose workers do not fit in memory."""

import os

import pytest

import validation.preflight as preflight
from validation.preflight import check_concurrent_memory, data_info, estimate
from validation.sweep import expand_spec, run_sweep

SPEC = {"base": {"dataset": "synthetic", "n": 100, "steps": 20}, "grid": {"eta": [0.1, 0.2]}}


def test_concurrent_runs_must_fit_together():
    entries = expand_spec(SPEC)
    configs = [e.config for e in entries]
    one = estimate(configs[0], data_info(configs[0])).memory
    assert check_concurrent_memory(configs, 1, memory_limit=1.5 * one) == one
    assert check_concurrent_memory(configs, 2, memory_limit=2 * one) == 2 * one
    with pytest.raises(ValueError, match=r"workers=2: 2 runs at once need an estimated .*"
                                         r"at most 1 worker\(s\) fit") as exc:
        check_concurrent_memory(configs, 2, memory_limit=1.5 * one)
    assert exc.value.field == "workers" and "\n" not in str(exc.value)


def test_a_local_sweep_refuses_workers_that_do_not_fit(tmp_path, monkeypatch):
    entries = expand_spec(SPEC)
    one = estimate(entries[0].config, data_info(entries[0].config)).memory
    monkeypatch.setattr(preflight, "machine_memory", lambda: 1.5 * one)
    with pytest.raises(ValueError, match="at most 1 worker"):
        run_sweep(entries, tmp_path, workers=2, progress=False)
    assert not os.path.exists(tmp_path / "index.json")
