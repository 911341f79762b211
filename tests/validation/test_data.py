import pickle

import numpy as np
import pytest

from validation.data import load_dataset


def test_mnist1d_is_deterministic_and_leaves_global_random_state():
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    a = load_dataset("mnist1d", n=50, seed=4)
    b = load_dataset("mnist1d", n=50, seed=4)
    assert np.array_equal(np.random.get_state()[1], state)  # noqa: NPY002
    assert a.x.shape == (50, 1, 40) and a.num_outputs == 10
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    c = load_dataset("mnist1d", n=50, seed=5)
    assert not np.array_equal(a.x, c.x)


def test_classes_are_relabelled_and_standardized():
    ds = load_dataset("digits", n=60, classes=[3, 7], seed=0)
    assert set(ds.y.tolist()) == {0, 1} and ds.num_outputs == 2
    flat = ds.x.reshape(ds.n, -1)
    used = flat.std(axis=0) > 0
    # Feature standardisation: zero mean, unit variance per (non-constant) pixel.
    assert np.allclose(flat.mean(axis=0), 0, atol=1e-12)
    assert np.allclose(flat.std(axis=0)[used], 1, atol=1e-12)
    raw = load_dataset("digits", n=60, classes=[3, 7], seed=0, standardize="none")
    assert raw.x.min() >= 0 and raw.x.max() <= 1


def test_synthetic_regression():
    ds = load_dataset("synthetic", n=30, seed=1)
    assert ds.task == "regression" and ds.y.shape == (30, 1)
    assert np.allclose(ds.x.mean(axis=0), 0, atol=1e-12)
    assert np.allclose(ds.x.std(axis=0), 1, atol=1e-12)


def test_synthetic_inputs_are_standard_gaussian_and_targets_vary():
    """Raw inputs N(0, 1): over 500 x 20 draws the mean is 0 and the variance 1 within five
    standard errors (0.0071 and 0.01); the teacher's targets are not constant."""
    raw = load_dataset("synthetic", n=500, seed=2, standardize="none")
    assert abs(raw.x.mean()) < 5 * (1 / 10000) ** 0.5
    assert raw.x.var() == pytest.approx(1.0, abs=5 * (2 / 10000) ** 0.5)
    assert raw.y.std() > 0.05


def test_global_standardisation_is_one_affine_map():
    """``"global"``: one mean and one standard deviation for all coordinates, so the result
    is (raw - m) / s with m, s of the whole array, and per-pixel contrasts are kept."""
    raw = load_dataset("digits", n=60, classes=[3, 7], seed=0, standardize="none")
    ds = load_dataset("digits", n=60, classes=[3, 7], seed=0, standardize="global")
    np.testing.assert_allclose(ds.x, (raw.x - raw.x.mean()) / raw.x.std(), atol=1e-12)
    assert ds.x.mean() == pytest.approx(0.0, abs=1e-12)
    assert ds.x.std() == pytest.approx(1.0, abs=1e-12)


def test_mnist1d_labels_cover_the_ten_classes():
    ds = load_dataset("mnist1d", n=200, seed=0)
    assert ds.y.dtype == np.int64 and set(ds.y.tolist()) == set(range(10))
    flat = ds.x.reshape(ds.n, -1)
    assert np.allclose(flat.mean(axis=0), 0, atol=1e-12)
    assert np.allclose(flat.std(axis=0), 1, atol=1e-12)


def _write_cifar(folder, name, n, rng):
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    with open(folder / name, "wb") as fh:
        pickle.dump({b"data": data, b"labels": labels}, fh)
    return data, labels


def test_cifar_reads_python_batches(tmp_path, rng):
    d1, l1 = _write_cifar(tmp_path, "data_batch_1", 40, rng)
    d2, l2 = _write_cifar(tmp_path, "data_batch_2", 40, rng)
    ds = load_dataset("cifar10", n=80, cifar_path=tmp_path, standardize="none")
    assert ds.x.shape == (80, 3, 32, 32)
    # All 80 examples are used: their pixel sum matches the files'.
    total = (d1.astype(float).sum() + d2.astype(float).sum()) / 255
    assert np.isclose(ds.x.sum(), total)
    assert sorted(ds.y.tolist()) == sorted(l1 + l2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="imagenet"), "unknown dataset"),
    (dict(name="cifar10"), "cifar_path is required"),
    (dict(name="cifar10", cifar_path="/definitely/not/here"), "not a folder"),
    (dict(name="digits", classes=[1]), "classes"),
    (dict(name="digits", n=0), "n must"),
    (dict(name="digits", n=5000), "exceeds"),
    (dict(name="digits", standardize="zca"), "standardize"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(**kwargs)


def test_cifar_folder_without_batches(tmp_path):
    with pytest.raises(ValueError, match="none of the CIFAR-10"):
        load_dataset("cifar10", cifar_path=tmp_path)
