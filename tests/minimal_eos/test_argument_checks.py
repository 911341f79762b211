"""The shared argument checks, one by one: what each accepts, returns, and how it refuses.

Every refusal is a ValueError whose message starts with the argument's name (or says
which name is unknown), so the tests match the start of the message.
"""

import numpy as np
import pytest
import sympy as sp

from minimal_eos._checks import (
    as_float_array,
    batch_of_runs,
    choice,
    in_interval,
    positive_float,
    positive_int,
    record_count,
)
from minimal_eos.optimizers import HeavyBall, Nesterov
from minimal_eos.schedules import Adaptive, Drop, Warmup, get_schedule


def test_as_float_array_converts_and_checks_dimensions():
    arr = as_float_array([1, 2], "theta0")
    assert arr.dtype == np.float64 and arr.tolist() == [1.0, 2.0]
    assert as_float_array(3, "eta", ndim=0).shape == ()
    assert as_float_array([[1.0]], "theta0", ndim=(1, 2)).shape == (1, 1)
    with pytest.raises(ValueError, match=r"^theta0 must be real numbers, not a string; got 'x'"):
        as_float_array("x", "theta0")
    ragged = r"^theta0 must be an array of real numbers; got \[1.0, \[2.0\]\]"
    with pytest.raises(ValueError, match=ragged):
        as_float_array([1.0, [2.0]], "theta0")
    with pytest.raises(ValueError, match=r"^theta0 must have 1 dimension\(s\); got shape \(1, 1\)"):
        as_float_array([[1.0]], "theta0", ndim=1)
    with pytest.raises(ValueError, match=r"^theta0 must have 1 or 2 dimension\(s\); got shape"):
        as_float_array(1.0, "theta0", ndim=(1, 2))
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match=r"^theta0 must be finite; got non-finite entries"):
            as_float_array([0.0, bad], "theta0")


def test_positive_float():
    assert positive_float(2, "eta") == 2.0 and type(positive_float(2, "eta")) is float
    assert positive_float(0, "noise", allow_zero=True) == 0.0
    assert positive_float(1e-300, "eta") == 1e-300
    with pytest.raises(ValueError, match=r"^eta must be finite and > 0; got 0"):
        positive_float(0, "eta")
    with pytest.raises(ValueError, match=r"^noise must be finite and >= 0; got -1"):
        positive_float(-1, "noise", allow_zero=True)
    for bad in (np.inf, np.nan):
        with pytest.raises(ValueError, match=r"^eta must be finite and > 0"):
            positive_float(bad, "eta")
    with pytest.raises(ValueError, match=r"^eta must be a real number; got 'fast'"):
        positive_float("fast", "eta")
    with pytest.raises(ValueError, match=r"^eta must be a real number; got None"):
        positive_float(None, "eta")


def test_positive_int():
    three = positive_int(np.int64(3), "steps")
    assert three == 3 and type(three) is int
    assert positive_int(1, "steps") == 1 and positive_int(0, "at", minimum=0) == 0
    with pytest.raises(ValueError, match=r"^steps must be an integer >= 1; got 0"):
        positive_int(0, "steps")
    with pytest.raises(ValueError, match=r"^at must be an integer >= 0; got -1"):
        positive_int(-1, "at", minimum=0)
    for bad in (True, 2.0, "2", None):
        with pytest.raises(ValueError, match=r"^steps must be an integer >= 1; got"):
            positive_int(bad, "steps")


def test_in_interval_is_half_open_unless_closed():
    assert in_interval(0, "beta", 0.0, 1.0) == 0.0 and type(in_interval(0, "beta", 0, 1)) is float
    assert in_interval(1, "beta", 0.0, 1.0, closed_hi=True) == 1.0
    with pytest.raises(ValueError, match=r"^beta must lie in \[0.0, 1.0\); got 1"):
        in_interval(1, "beta", 0.0, 1.0)
    with pytest.raises(ValueError, match=r"^beta must lie in \[0.0, 1.0\]; got 1.5"):
        in_interval(1.5, "beta", 0.0, 1.0, closed_hi=True)
    with pytest.raises(ValueError, match=r"^beta must lie in \[0.0, 1.0\); got -0.1"):
        in_interval(-0.1, "beta", 0.0, 1.0)
    with pytest.raises(ValueError, match=r"^beta must lie in"):
        in_interval(np.nan, "beta", 0.0, 1.0, closed_hi=True)
    with pytest.raises(ValueError, match=r"^beta must be a real number; got \[0.5\]"):
        in_interval([0.5], "beta", 0.0, 1.0)
    # a string or a bool that float() would convert is still refused
    for bad in ("0.5", b"0.5", True, np.bool_(False)):
        with pytest.raises(ValueError, match=r"^beta must be a real number; got"):
            in_interval(bad, "beta", 0.0, 1.0)
    with pytest.raises(ValueError, match=r"^beta must be a real number; got '0.5'"):
        HeavyBall("0.5")


def test_choice_lists_what_is_accepted():
    assert choice("gd", "optimizer", {"gd": 0, "nesterov": 2}) == "gd"
    with pytest.raises(ValueError,
                       match=r"^unknown optimizer 'adam'; accepted: 'gd', 'nesterov'$"):
        choice("adam", "optimizer", iter(["gd", "nesterov"]))


def test_batch_of_runs_broadcasts_one_against_many():
    th, etas = batch_of_runs([1.0, 2.0], [0.1, 0.2, 0.3], 2)
    assert th.tolist() == [[1.0, 2.0]] * 3 and etas.tolist() == [0.1, 0.2, 0.3]
    th, etas = batch_of_runs([[1.0, 2.0], [3.0, 4.0]], 0.5, 2)
    assert etas.tolist() == [0.5, 0.5] and th.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    th, etas = batch_of_runs([[1.0], [2.0]], [0.5, 0.25], 1)
    assert th.tolist() == [[1.0], [2.0]] and etas.tolist() == [0.5, 0.25]
    for arr in (th, etas):  # the kernels write into fresh C-contiguous float64 buffers
        assert arr.dtype == np.float64 and arr.flags.c_contiguous and arr.flags.writeable


def test_batch_of_runs_refuses_with_the_argument_name():
    with pytest.raises(ValueError, match=r"^x0 must have shape \(2,\) or \(B, 2\); got \(3,\)"):
        batch_of_runs([1.0, 2.0, 3.0], 0.1, 2, name="x0")
    with pytest.raises(ValueError, match=r"^theta0 must have 1 or 2 dimension"):
        batch_of_runs(np.zeros((1, 1, 2)), 0.1, 2)
    with pytest.raises(ValueError, match=r"^eta must have 0 or 1 dimension"):
        batch_of_runs([1.0, 2.0], [[0.1]], 2)
    for bad in (0.0, [0.1, -0.1]):
        with pytest.raises(ValueError, match=r"^eta must be > 0 for every run"):
            batch_of_runs([1.0, 2.0], bad, 2)
    with pytest.raises(ValueError, match=r"^theta0 and eta disagree on the batch size: "
                                         r"2 initial points, 3 step sizes"):
        batch_of_runs(np.zeros((2, 2)), [0.1, 0.2, 0.3], 2)


@pytest.mark.parametrize("every", [1, 2, 3, 7, 10])
def test_record_count_counts_the_recorded_steps(every):
    """Steps 0, every, 2 every, ... and the last step, counted one by one."""
    for steps in range(0, 31):
        recorded = set(range(0, steps + 1, every)) | {steps}
        assert record_count(steps, every) == len(recorded), (steps, every)


def test_schedule_arguments_at_their_bounds():
    # a drop at step 0 is allowed: every step uses the new step size
    assert [Drop(0, 0.5).step(2.0, t) for t in (0, 1)] == [1.0, 1.0]
    with pytest.raises(ValueError, match=r"^at must be an integer >= 0"):
        Drop(-1)
    with pytest.raises(ValueError, match=r"^the adaptive schedule needs the current sharpness"):
        Adaptive().step(1.0, 0)
    with pytest.raises(ValueError, match=r"^factor must be finite and > 0"):
        Drop(3, 0.0)
    with pytest.raises(ValueError, match=r"^steps must be an integer >= 1"):
        Warmup(0)
    with pytest.raises(ValueError, match=r"^floor must be finite and > 0"):
        Adaptive(-1.0)
    with pytest.raises(ValueError, match=r"^unknown schedule 'cosine'"):
        get_schedule("cosine")


@pytest.mark.parametrize("cls", [HeavyBall, Nesterov])
def test_momentum_is_checked_and_stored_as_a_float(cls):
    for beta in (0, 0.5, np.float64(0.5), sp.Float(0.25), sp.Rational(1, 2)):
        opt = cls(beta)
        assert type(opt.beta) is float and opt.beta == float(beta)
    for bad in (1.0, -0.1, np.nan, sp.Integer(2)):
        with pytest.raises(ValueError, match=r"^beta must lie in \[0.0, 1.0\)"):
            cls(bad)
    # a symbol stays a symbol, for the symbolic derivation of thresholds
    beta = sp.Symbol("beta")
    assert cls(beta).beta is beta
