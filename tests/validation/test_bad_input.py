"""Bad input to ``python -m validation.compare`` and to sweep specs is refused up front.

Every class of bad input gets exit status 2 and one line on stderr naming the option,
without a traceback and before any work starts (no data generated, no cluster started).
"""

import collections
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from validation.compare import main
from validation.data import dataset_info, load_dataset, read_cifar_batch
from validation.experiment import Config
from validation.networks import build_network, network_size
from validation.preflight import ConfigError, check_config, estimate
from validation.sweep import expand_spec
from validation.sweep import main as sweep_main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: A run of a few seconds: added where a missing check would otherwise start the default run.
QUICK = ["--dataset", "synthetic", "--n", "20", "--steps", "4", "--window", "2", "--checks",
         "edge", "--no-figures", "--no-progress"]


# -- CIFAR-10 batches ---------------------------------------------------------------------------
def _corrupt(batch):
    """Ways to spoil a CIFAR-10 python batch: name -> (batch -> object or bytes, message)."""
    nan = batch(8)
    nan[b"data"] = nan[b"data"].astype(np.float64)
    nan[b"data"][3, 7] = np.nan
    wide = batch(8)
    wide[b"data"] = wide[b"data"][:, :100]
    high = batch(8)
    high[b"data"] = high[b"data"].astype(np.int64) * 2
    lab = batch(8)
    lab[b"labels"] = [10] * 8
    return {
        "random bytes": (b"\x00not a pickle at all", "could not be read"),
        "truncated": (pickle.dumps(batch(8), protocol=2)[:500], "could not be read"),
        "not a dict": ([1, 2, 3], "holds a list, not a dict"),
        "other class": (collections.OrderedDict(batch(8)), "refers to collections.OrderedDict"),
        "no labels": ({b"data": batch(8)[b"data"]}, "lacks b'data' or b'labels'"),
        "mis-shaped": (wide, "shape (N, 3072); got (8, 100)"),
        "NaN pixels": (nan, "non-finite pixels"),
        "pixels above 255": (high, "must lie in [0, 255]"),
        "more labels than images": (batch(8, labels=9), "has 8 images but 9 labels"),
        "fewer labels than images": (batch(8, labels=7), "has 8 images but 7 labels"),
        "labels out of range": (lab, "labels must lie in [0, 10)"),
    }


CORRUPTIONS = ["random bytes", "truncated", "not a dict", "other class", "no labels",
               "mis-shaped", "NaN pixels", "pixels above 255", "more labels than images",
               "fewer labels than images", "labels out of range"]


def _spoil(folder, kind, cifar_batch, write_pickle):
    """A CIFAR-10 folder whose second batch is spoiled as ``kind``; the expected message."""
    write_pickle(folder / "data_batch_1", cifar_batch(40))
    obj, match = _corrupt(cifar_batch)[kind]
    path = folder / "data_batch_2"
    if isinstance(obj, bytes):
        path.write_bytes(obj)
    else:
        write_pickle(path, obj)
    return path, match


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_a_bad_cifar_batch_is_one_error_naming_the_file(kind, tmp_path, cifar_batch,
                                                        write_pickle):
    path, match = _spoil(tmp_path, kind, cifar_batch, write_pickle)
    with pytest.raises(ValueError) as exc:
        read_cifar_batch(path)
    msg = str(exc.value)
    assert match in msg and str(path) in msg and "\n" not in msg, msg
    with pytest.raises(ValueError, match="data_batch_2"):
        load_dataset("cifar10", n=20, cifar_path=tmp_path)


def test_the_official_batch_format_reads(tmp_path, cifar_batch, write_pickle):
    # The official files were written by Python 2 with numpy's old module path
    # numpy.core.multiarray; rewrite the pickle's GLOBAL opcodes to that path.
    batch = cifar_batch(30, seed=4)
    raw = pickle.dumps(batch, protocol=2)
    if b"numpy._core.multiarray" in raw:
        raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\n_reconstruct" in raw
    (tmp_path / "test_batch").write_bytes(raw)
    data, labels = read_cifar_batch(tmp_path / "test_batch")
    assert np.array_equal(data, batch[b"data"]) and labels.tolist() == batch[b"labels"]
    ds = load_dataset("cifar10", n=30, cifar_path=tmp_path, standardize="none")
    # every image is used once: pixel sums match the file's, scaled to [0, 1]
    assert np.isclose(ds.x.sum(), batch[b"data"].astype(float).sum() / 255)
    assert dataset_info("cifar10", cifar_path=tmp_path).labels.size == 30


# -- the command line ---------------------------------------------------------------------------
def _refused(argv, option, match, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"error: argument {option}: " in err and match in err, err


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_compare_refuses_a_bad_cifar_batch(kind, tmp_path, cifar_batch, write_pickle,
                                           capsys):
    _, match = _spoil(tmp_path, kind, cifar_batch, write_pickle)
    _refused(["--dataset", "cifar10", "--cifar-path", str(tmp_path), "--n", "20",
              "--out", str(tmp_path / "out")], "--cifar-path", match, capsys)
    assert not (tmp_path / "out").exists()  # refused before anything was written


BAD = [
    # data against its source
    (["--dataset", "digits", "--n", "5000"], "--n", "exceeds the 1797 examples of digits"),
    (["--dataset", "digits", "--classes", "0,1", "--n", "400"], "--n",
     "exceeds the 360 examples of classes [0, 1] of digits"),
    (["--n", "1"], "--n", "n must be >= 2"),
    (["--classes", "3"], "--classes", "at least two distinct integers in [0, 10)"),
    (["--classes", "1,1"], "--classes", "at least two distinct"),
    (["--classes", "0,12"], "--classes", "in [0, 10); got (0, 12)"),
    (["--classes=-1,2"], "--classes", "in [0, 10)"),
    ([*QUICK, "--classes", ""], "--classes", "comma-separated integers; got ''"),
    (["--classes", "a,b"], "--classes", "comma-separated integers"),
    (["--dataset", "synthetic", "--classes", "0,1"], "--classes", "regression and has no classes"),
    (["--dataset", "synthetic", "--arch", "cnn"], "--arch", "inputs of shape (20,)"),
    (["--dataset", "synthetic", "--loss", "ce"], "--loss", "regression"),
    # fields
    (["--seed", str(2**32)], "--seed", "below 2**32"),
    (["--seed", "-1"], "--seed", ">= 0"),
    (["--window", "800"], "--window", "window=800 exceeds steps=600"),
    (["--checks", ""], "--checks", "at least one check"),
    (["--eta", "nan"], "--eta", "finite number > 0"),
    (["--dataset", "imagenet"], "--dataset", "unknown dataset 'imagenet'"),
    (["--device", "tpu"], "--device", "unknown device 'tpu'"),
    # run options
    (["--threads", "0"], "--threads", "got 0"),
    (["--threads", "100000"], "--threads", "the cores of this machine"),
    (["--max-hours", "0"], "--max-hours", "> 0"),
    # size
    (["--eigs", "1000000"], "--eigs", "exceeds the 7434 parameters"),
    (["--track-vectors", "7435"], "--track-vectors", "exceeds the 7434 parameters"),
    (["--track-vectors", str(10**9)], "--track-vectors", "exceeds the 7434 parameters"),
    (["--width", str(10**9)], "--width", "more than the"),
    (["--depth", str(10**9)], "--depth", "more than the"),
    (["--n", str(10**12)], "--n", "estimated 1.32 PB (data 1.32 PB"),
    (["--steps", str(10**12)], "--steps", "hours ("),
]


@pytest.mark.parametrize(("argv", "option", "match"), BAD,
                         ids=[" ".join(a) or "empty" for a, _, _ in BAD])
def test_compare_refuses_bad_input_up_front(argv, option, match, tmp_path, capsys):
    _refused([*argv, "--out", str(tmp_path / "out")], option, match, capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_compare_refuses_an_output_folder_that_is_a_file(where, tmp_path, capsys):
    (tmp_path / "f").write_text("")
    out = tmp_path / "f" if where == "a file" else tmp_path / "f" / "sub"
    _refused(["--out", str(out)], "--out", "is a file" if where == "a file" else
             "lies under the file", capsys)


def test_compare_refuses_an_unwritable_output_folder(tmp_path, capsys, monkeypatch):
    # permissions do not bind every user (root writes anywhere): the check asks os.access.
    # The run is tiny, so that a missing check fails the test at once.
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if os.fspath(p) == str(tmp_path)
                        else real(p, mode))
    _refused([*QUICK, "--out", str(tmp_path / "new" / "out")], "--out", "cannot be written",
             capsys)


@pytest.mark.parametrize(("fields", "field", "match"), [
    ({"dataset": "synthetic", "classes": (0, 1)}, "classes", "regression and has no classes"),
    ({"classes": [0, 1]}, "classes", "must be a tuple"),
    ({"classes": (0, 1.5)}, "classes", "two distinct integers"),
    ({"n": 1}, "n", "n must be >= 2"),
    ({"n": 2.5}, "n", "integer >= 1"),
    ({"seed": 2**32}, "seed", "below 2**32"),
    ({"window": 40, "steps": 30}, "window", "window=40 exceeds steps=30"),
    ({"checks": ()}, "checks", "at least one check"),
    ({"checks": ("edge", "nope")}, "checks", "unknown check 'nope'"),
    ({"checks": ("edge", "edge")}, "checks", "each check once"),
    ({"cifar_path": 3}, "cifar_path", "folder name"),
    ({"drop_step": 1.5}, "drop_step", "integer"),
    ({"beta": "high"}, "beta", "[0, 1)"),
    ({"eta": True}, "eta", "finite number > 0"),
    ({"activation": ["tanh"]}, "activation", "unknown activation"),
])
def test_config_refuses_bad_fields_naming_them(fields, field, match):
    with pytest.raises(ConfigError, match=re.escape(match)) as exc:
        Config(**fields)
    assert exc.value.field == field


def test_no_traceback_reaches_stderr(tmp_path, cifar_batch, write_pickle):
    _spoil(tmp_path, "fewer labels than images", cifar_batch, write_pickle)
    for argv, option in ((["--dataset", "cifar10", "--cifar-path", str(tmp_path)],
                          "--cifar-path"),
                         (["--steps", str(10**12)], "--steps")):
        proc = subprocess.run([sys.executable, "-m", "validation.compare", *argv, "--out",
                               str(tmp_path / "out")], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"error: argument {option}: " in proc.stderr


# -- sweep specs ----------------------------------------------------------------------------------
TINY = {"dataset": "synthetic", "n": 100, "steps": 30, "track_every": 2}


def test_a_spec_is_checked_in_full_before_anything_runs(tmp_path, cifar_batch, write_pickle):
    _spoil(tmp_path, "more labels than images", cifar_batch, write_pickle)
    cases = [
        ({"base": TINY, "grid": {}}, "grid must map at least one field"),
        ({"base": {**TINY, "checks": []}}, "checks must name at least one check"),
        ({"base": TINY, "grid": {"eta": [0.5]}, "configs": [{"classes": [0, 1]}]},
         "configuration 1 .* regression and has no classes"),
        ({"base": {"dataset": "digits", "n": 100},
          "grid": {"classes": [[0, 1], [1], [0, 11]]}},
         r"configuration 1 .*at least two distinct integers in \[0, 10\); got \(1,\)"),
        ({"base": {"dataset": "cifar10", "cifar_path": "no/such/folder"}}, "not a folder"),
        ({"base": {"dataset": "cifar10", "cifar_path": str(tmp_path), "n": 20}},
         "data_batch_2' has 8 images but 9 labels"),
        ({"base": {"dataset": "digits", "n": 100}, "grid": {"n": [100, 2000]}},
         "configuration 1 .*n=2000 exceeds the 1797 examples"),
        ({"base": {**TINY, "arch": "cnn"}}, "arch 'cnn' needs signals"),
        ({"base": {**TINY, "loss": "ce"}}, "loss 'ce' needs classes"),
        ({"base": {**TINY, "window": 40}}, "window=40 exceeds steps=30"),
        ({"base": {**TINY, "seed": 2**32}}, "seed must be below 2"),
        ({"base": {**TINY, "n": 1}}, "n must be >= 2"),
        ({"base": {**TINY, "steps": 10**12}}, "steps=.*hours"),
        ({"base": {**TINY, "width": 10**9}}, "width=.*more than the"),
        ({"base": {**TINY, "cifar_path": 3}}, "cifar_path must be a folder name"),
        ({"base": {**TINY, "readout_scale": "big"}}, "readout_scale must be finite"),
    ]
    for spec, match in cases:
        with pytest.raises(ValueError, match=match):
            expand_spec(spec)


@pytest.mark.parametrize(("spec", "extra", "match"), [
    ({"base": {"dataset": "cifar10", "cifar_path": "no/such/folder"}}, [], "not a folder"),
    ({"base": {"dataset": "digits", "classes": [3]}}, [], "at least two distinct"),
    ({"base": TINY, "grid": {}}, [], "grid must map"),
    ({"base": TINY}, ["--max-hours", "-1"], "--max-hours must be a finite number > 0"),
    ({"base": TINY}, ["--threads", "100000"], "--threads must be at most the"),
    ({"base": TINY, "out": 5}, [], "out must be a folder name"),
])
def test_sweep_refuses_a_bad_spec_with_status_2(spec, extra, match, tmp_path, capsys):
    import json

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    argv = [str(path), *extra] if "out" in spec else [str(path), "--out",
                                                       str(tmp_path / "out"), *extra]
    with pytest.raises(SystemExit) as exc:
        sweep_main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.count("\n") == 1 and match in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_sweep_refuses_an_output_folder_under_a_file(tmp_path, capsys):
    path = tmp_path / "spec.json"
    path.write_text('{"base": {"eta": 0.1}}')
    with pytest.raises(SystemExit) as exc:
        sweep_main([str(path), "--out", str(path / "out")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--out: out" in err and "lies under the file" in err


# -- the size estimate --------------------------------------------------------------------------
@pytest.mark.parametrize(("arch", "shape", "depth", "width"), [
    ("mlp", (1, 40), 2, 8), ("mlp", (20,), 1, 3), ("linear", (1, 8, 8), 3, 6),
    ("cnn", (1, 40), 3, 4), ("cnn", (3, 32, 32), 2, 5), ("cnn", (1, 8, 8), 5, 3),
])
def test_network_size_counts_what_the_network_holds_and_computes(arch, shape, depth, width):
    net = build_network(arch, shape, 7, depth=depth, width=width)
    size = network_size(arch, shape, 7, depth=depth, width=width)
    assert size.params == net.num_params
    # an independent count of the work: torch's FLOP counter on one example (2 per MAC)
    w = net.init(generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        net.apply(w, torch.zeros(1, *shape, dtype=torch.float64))
    assert counter.get_total_flops() == 2 * size.macs


def test_the_default_run_is_accepted_and_the_estimate_scales():
    config = Config()
    est = check_config(config)
    assert est.params == 7434 and est.memory < 1e9 and est.seconds < 3600
    info = dataset_info("mnist1d")
    # time is linear in the steps (plus the fixed data generation), memory does not move
    longer = estimate(Config(steps=6000), info)
    assert longer.memory == est.memory
    assert longer.flops == pytest.approx(est.flops * 6001 / 601)


def test_a_refusal_names_the_field_that_grew_the_estimate():
    with pytest.raises(ConfigError) as exc:
        check_config(Config(width=4096, depth=8), memory_limit=1e9)
    assert exc.value.field == "width"  # width^2 grew it by 4096x, depth by 4x
    with pytest.raises(ConfigError) as exc:
        check_config(Config(width=128, depth=2000), memory_limit=1e9)
    assert exc.value.field == "depth"
    with pytest.raises(ConfigError) as exc:
        check_config(Config(steps=10**7, n=2000), max_hours=1)
    assert exc.value.field == "steps" and "hours" in str(exc.value)
