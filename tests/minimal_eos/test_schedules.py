"""Step-size schedules: the step rules, their kernel encoding, bad input."""

import numpy as np
import pytest

from minimal_eos.schedules import Adaptive, Constant, Drop, Warmup, check_schedule, get_schedule


def test_step_rules_and_encodings():
    assert [Drop(3, 0.25).step(2.0, t) for t in (0, 2, 3, 9)] == [2.0, 2.0, 0.5, 0.5]
    assert [Warmup(4).step(2.0, t) for t in (0, 1, 3, 7)] == [0.5, 1.0, 2.0, 2.0]
    assert Constant().step(2.0, 5) == 2.0
    assert Adaptive(0.1).step(2.0, 0, sharpness=4.0) == 0.5
    assert Adaptive(0.1).step(2.0, 0, sharpness=-1.0) == 20.0  # the floor
    np.testing.assert_array_equal(Drop(3, 0.25).encode(), [3.0, 0.25, 0.0, 0.0])
    np.testing.assert_array_equal(Warmup(4).encode(), [4.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(Adaptive(0.1).encode(), [0.1, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(Constant().encode(), np.zeros(4))
    assert [c.code for c in (Constant(), Drop(1), Warmup(1), Adaptive())] == [0, 1, 2, 3]
    # integer parameters become floats
    assert type(Drop(3, 2).factor) is float and type(Adaptive(1).floor) is float


def test_names_and_instances():
    assert get_schedule("drop", at=5) == Drop(5, 0.5)
    assert check_schedule(Warmup(2)) == Warmup(2)
    assert check_schedule("constant") == Constant()


@pytest.mark.parametrize(("build", "name"), [
    (lambda: Drop(-1), "at"),
    (lambda: Drop(3, 0.0), "factor"),
    (lambda: Warmup(0), "steps"),
    (lambda: Adaptive(-1.0), "floor"),
    (lambda: get_schedule("cosine"), "schedule"),
    (lambda: get_schedule("drop", bad=1), "drop schedule"),
    (lambda: check_schedule(3), "schedule must be"),
    (lambda: Adaptive().step(1.0, 0), "sharpness"),
])
def test_bad_input_names_the_argument(build, name):
    with pytest.raises(ValueError, match=name):
        build()
