"""Bounded real-network runs of SGD and Adam: determinism, resuming, and each new check."""

import math

import pytest

from validation.experiment import Config, run_experiment
from validation.predictions import evaluate

SEED = 5
TINY = dict(dataset="synthetic", n=60, width=16, steps=40, window=10, track_every=4,
            seed=SEED)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_same_seed_same_bits_and_a_resumed_run_is_the_same(optimizer, tmp_path, same):
    checks = ("batch-sharpness",) if optimizer == "sgd" else ("preconditioned-edge",)
    # Two sampled batches per batch-sharpness estimate (not 8): the measuring sampler's
    # state is saved and restored the same, at a quarter of the products.
    cfg = Config(optimizer=optimizer, eta=0.05 if optimizer == "sgd" else 1e-2,
                 batch_size=10, bs_batches=2, checks=checks, checkpoint_every=10, **TINY)
    a = run_experiment(cfg)
    b = run_experiment(cfg)
    key = "stochastic" if optimizer == "sgd" else "adaptive"
    assert same(a["runs"], b["runs"]) and same(a[key], b[key])
    assert len(a[key]["t"]) == (11 if optimizer == "sgd" else 10)  # t = 0, 4, ..., 40
    run_experiment(cfg, out_dir=tmp_path, stop_after=25)
    c = run_experiment(cfg, out_dir=tmp_path, resume=True)
    assert c["resumed_from"] == 20
    assert same(a["runs"], c["runs"]) and same(a[key], c[key])
    other = run_experiment(Config(**{**cfg.to_dict(), "classes": None, "checks": checks,
                                     "seed": SEED + 1}))
    assert not same(a["runs"]["main"]["loss"], other["runs"]["main"]["loss"])


def test_preconditioned_edge_on_a_small_network():
    """(i) Adam on 200 MNIST-1D examples, width 32: lambda_max(P^-1 H) rises from about
    950 to 38/eta = 3800 by step 32 and hovers there (median within 5%), while the raw
    sharpness stays near 5."""
    cfg = Config(optimizer="adam", eta=1e-2, n=200, width=32, steps=200, window=10,
                 track_every=4, checks=("preconditioned-edge",), seed=0)
    res = run_experiment(cfg)
    rows = {r["name"]: r for r in evaluate(res, cfg)}
    assert set(rows) == {"i.rise", "i.plateau", "i.band", "i.raw"}
    assert all(r["holds"] for r in rows.values()), rows
    assert rows["i.plateau"]["predicted"] == pytest.approx(38 / 1e-2)


def test_batch_sharpness_on_a_small_network():
    """(h) SGD, batch 50 of 200 MNIST-1D examples: the rows are measured, and the orders
    that hold at every point do: a batch's curvature along its gradient is at most its
    top eigenvalue (a Rayleigh quotient), and E_B[lambda_max(H_B)] >= lambda_max(E_B H_B)
    (lambda_max is convex). Whether the batch sharpness reaches 2/eta is what the rows
    report; on this network it does not within these steps (README)."""
    cfg = Config(optimizer="sgd", eta=0.5, n=200, width=32, steps=60, window=10,
                 track_every=10, batch_size=50, checks=("batch-sharpness",), seed=0)
    res = run_experiment(cfg)
    sto = res["stochastic"]
    assert sto["t"] == list(range(0, 61, 10))
    for key in ("batch_sharpness", "batch_lambda", "lambda_max", "sigma_u2", "alpha", "beta"):
        assert all(math.isfinite(v) for v in sto[key]), key
    assert all(b <= lam for b, lam in zip(sto["batch_sharpness"], sto["batch_lambda"],
                                          strict=True))
    # over 8 sampled batches of a quarter of the data the mean is close to E_B
    assert all(s <= 1.05 * lam for s, lam in zip(sto["lambda_max"], sto["batch_lambda"],
                                                 strict=True))
    assert all(s > 0 for s in sto["sigma_u2"] + sto["beta"])
    rows = {r["name"]: r for r in evaluate(res, cfg)}
    assert set(rows) == {"h.plateau", "h.below", "h.gap"}
