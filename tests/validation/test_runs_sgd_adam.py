"""Bounded real-network runs of SGD and Adam: determinism, resuming, and each new check."""

import math

import pytest
import torch

from validation.experiment import Config, run_experiment

SEED = 5
TINY = dict(dataset="synthetic", n=60, width=16, steps=40, window=10, track_every=4,
            seed=SEED)


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_same_seed_same_bits_and_a_resumed_run_is_the_same(optimizer, tmp_path):
    checks = ("batch-sharpness",) if optimizer == "sgd" else ("preconditioned-edge",)
    cfg = Config(optimizer=optimizer, eta=0.05 if optimizer == "sgd" else 1e-2,
                 batch_size=10, checks=checks, checkpoint_every=10, **TINY)
    a = run_experiment(cfg)
    b = run_experiment(cfg)
    key = "stochastic" if optimizer == "sgd" else "adaptive"
    assert _same(a["runs"], b["runs"]) and _same(a[key], b[key])
    assert len(a[key]["t"]) == (11 if optimizer == "sgd" else 10)  # t = 0, 4, ..., 40
    run_experiment(cfg, out_dir=tmp_path, stop_after=25)
    c = run_experiment(cfg, out_dir=tmp_path, resume=True)
    assert c["resumed_from"] == 20
    assert _same(a["runs"], c["runs"]) and _same(a[key], c[key])
    other = run_experiment(Config(**{**cfg.to_dict(), "classes": None, "checks": checks,
                                     "seed": SEED + 1}))
    assert not _same(a["runs"]["main"]["loss"], other["runs"]["main"]["loss"])
