"""Bad options of the SGD and Adam runs are refused up front: exit status 2, one line on
stderr naming the option, no traceback, nothing written."""

import re

import pytest

from validation.compare import main
from validation.experiment import Config
from validation.preflight import ConfigError

BAD = [
    (["--optimizer", "sgd", "--batch-size", "0"], "--batch-size", "integer >= 1; got 0"),
    (["--optimizer", "sgd", "--batch-size", "-5"], "--batch-size", "integer >= 1; got -5"),
    (["--optimizer", "sgd", "--batch-size", "1001"], "--batch-size",
     "batch_size=1001 exceeds the n=1000 examples"),
    (["--optimizer", "sgd", "--n", "40", "--batch-size", "50"], "--batch-size",
     "batch_size=50 exceeds the n=40 examples"),
    (["--optimizer", "sgd", "--bs-batches", "0"], "--bs-batches", "integer >= 1"),
    (["--optimizer", "adam", "--beta1", "1"], "--beta1", "beta1 must lie in [0, 1); got 1.0"),
    (["--optimizer", "adam", "--beta1", "-0.1"], "--beta1", "[0, 1); got -0.1"),
    (["--optimizer", "adam", "--beta2", "1.5"], "--beta2", "[0, 1); got 1.5"),
    (["--optimizer", "rmsprop", "--beta2", "nan"], "--beta2", "[0, 1); got nan"),
    (["--optimizer", "adam", "--eps", "0"], "--eps", "eps must be a finite number > 0"),
    (["--optimizer", "adam", "--eps=-1e-8"], "--eps", "finite number > 0"),
    (["--optimizer", "adagrad"], "--optimizer", "unknown optimizer 'adagrad'"),
    (["--optimizer", "sgd", "--checks", "central-flow"], "--checks",
     "need optimizer 'gd'; got optimizer 'sgd'"),
    (["--optimizer", "adam", "--checks", "self-stabilization"], "--checks",
     "need optimizer 'gd'"),
    (["--optimizer", "sgd", "--checks", "edge"], "--checks", "use 'batch-sharpness'"),
    (["--optimizer", "adam", "--checks", "edge"], "--checks", "use 'preconditioned-edge'"),
    (["--optimizer", "adam", "--checks", "batch-sharpness"], "--checks",
     "check 'batch-sharpness' needs optimizer 'sgd'; got optimizer 'adam'"),
    (["--checks", "preconditioned-edge"], "--checks",
     "needs optimizer 'adam' or 'rmsprop'; got optimizer 'gd'"),
]


@pytest.mark.parametrize(("argv", "option", "match"), BAD,
                         ids=[" ".join(a) for a, _, _ in BAD])
def test_compare_refuses_bad_sgd_and_adam_options(argv, option, match, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"error: argument {option}: " in err and match in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("fields", "field", "match"), [
    ({"optimizer": "sgd", "batch_size": 2.5}, "batch_size", "integer >= 1"),
    ({"optimizer": "sgd", "batch_size": True}, "batch_size", "integer >= 1"),
    ({"optimizer": "adam", "beta1": "0.9"}, "beta1", "[0, 1)"),
    ({"optimizer": "adam", "eps": float("inf")}, "eps", "finite number > 0"),
])
def test_config_refuses_bad_sgd_and_adam_fields(fields, field, match):
    with pytest.raises(ConfigError, match=re.escape(match)) as exc:
        Config(**fields)
    assert exc.value.field == field


def test_a_batch_size_is_not_checked_against_the_data_without_sgd():
    # GD ignores the batch size: a small data set with the default batch size runs.
    assert Config(dataset="synthetic", n=20).batch_size > 20


@pytest.mark.parametrize(("argv", "expected"), [
    ([], {"optimizer": "gd", "eta": 0.3, "steps": 600, "track_every": 5}),
    (["--optimizer", "sgd"], {"eta": 0.8, "steps": 3000, "track_every": 50, "batch_size": 50,
                              "checks": ("batch-sharpness",)}),
    (["--optimizer", "sgd", "--eta", "0.3", "--track-every", "5", "--checks", "all"],
     {"eta": 0.3, "track_every": 5,
      "checks": ("batch-sharpness", "momentum", "quadratic-thresholds")}),
    (["--optimizer", "adam"], {"eta": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                               "checks": ("preconditioned-edge",)}),
    (["--optimizer", "rmsprop", "--beta2", "0.9"], {"eta": 1e-3, "beta2": 0.9}),
    (["--checks", "all"], {"checks": ("edge", "momentum", "drop", "central-flow",
                                      "self-stabilization", "flow-distance", "constrained",
                                      "quadratic-thresholds")}),
])
def test_each_optimizer_has_its_own_defaults(argv, expected):
    from validation.compare import build_parser, config_from_args

    config = config_from_args(build_parser().parse_args(argv))
    assert {k: getattr(config, k) for k in expected} == expected
