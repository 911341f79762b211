"""Training sets for the validation runs, all deterministic from a seed.

Four sources: MNIST-1D generated locally by the ``mnist1d`` package (the default),
scikit-learn's handwritten digits (shipped with scikit-learn), CIFAR-10 read from a
user's local copy of the python-pickle batches, and a synthetic regression task drawn
from a random teacher network.
"""

from __future__ import annotations

import math
import os
import pickle
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DATASETS = ("mnist1d", "digits", "cifar10", "synthetic")
STANDARDIZE = ("feature", "global", "none")
CIFAR_BATCHES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch")
#: Input dimension of the synthetic regression task.
SYNTHETIC_DIM = 20


@dataclass(frozen=True)
class Dataset:
    """A training set held as numpy arrays.

    Attributes
    ----------
    name : str
        Source name (one of ``DATASETS``).
    x : numpy.ndarray
        Inputs, shape ``(n, *input_shape)``, float64.
    y : numpy.ndarray
        Labels: class indices ``(n,)`` int64 for classification, targets ``(n, out_dim)``
        float64 for regression.
    num_outputs : int
        Width of the network output (number of classes, or regression dimension).
    input_shape : tuple of int
        Shape of one input: ``(d,)`` for vectors, ``(C, L)`` for 1-D signals,
        ``(C, H, W)`` for images.
    task : str
        ``"classification"`` or ``"regression"``.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    num_outputs: int
    input_shape: tuple[int, ...]
    task: str

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"x and y must have the same number of examples; got {self.x.shape[0]} "
                f"and {self.y.shape[0]}"
            )
        if self.x.shape[1:] != tuple(self.input_shape):
            raise ValueError(
                f"x has example shape {self.x.shape[1:]}, but input_shape is {self.input_shape}"
            )
        if self.task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression'; got {self.task!r}")

    @property
    def n(self) -> int:
        """Number of examples."""
        return int(self.x.shape[0])


def load_dataset(
    name: str = "mnist1d",
    *,
    n: int = 1000,
    classes: Sequence[int] | None = None,
    standardize: str = "feature",
    seed: int = 0,
    cifar_path: str | os.PathLike | None = None,
) -> Dataset:
    """Load ``n`` training examples of a data source, deterministically from ``seed``.

    Parameters
    ----------
    name : {"mnist1d", "digits", "cifar10", "synthetic"}
        Data source. ``"mnist1d"`` is generated procedurally (no download);
        ``"cifar10"`` needs ``cifar_path``.
    n : int
        Number of training examples (>= 2). For classification the examples are a
        seeded random subset of the kept classes.
    classes : sequence of int, optional
        Classes to keep (relabelled 0..k-1 in the given order). Default: all.
    standardize : {"feature", "global", "none"}
        ``"feature"`` centres each input coordinate and scales it to unit variance over
        the training set; ``"global"`` uses one mean and standard deviation for all
        coordinates; ``"none"`` keeps the inputs as loaded (pixels in [0, 1]).
    seed : int
        Seed of the subset choice (and of the synthetic task and of MNIST-1D's generator),
        in ``[0, 2**32)``.
    cifar_path : path, optional
        Folder holding the CIFAR-10 python batches ``data_batch_1`` .. ``data_batch_5``
        and ``test_batch`` (each a pickled dict with ``b"data"``, uint8 of shape
        ``(N, 3072)``, and ``b"labels"``, one per image; see :func:`read_cifar_batch`).
        Only the batches present are read, in that order.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        Unknown name or standardisation, bad ``n``, seed or classes, missing CIFAR-10
        folder or a batch that is not a valid python batch.

    Examples
    --------
    >>> ds = load_dataset("digits", n=100, classes=[0, 1], seed=0)
    >>> ds.x.shape, ds.num_outputs
    ((100, 1, 8, 8), 2)
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; accepted: {', '.join(DATASETS)}")
    if standardize not in STANDARDIZE:
        raise ValueError(
            f"unknown standardize {standardize!r}; accepted: {', '.join(STANDARDIZE)}"
        )
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (standardised, one example is all "
                         f"zeros); got {n!r}")
    if (isinstance(seed, bool) or not isinstance(seed, int | np.integer)
            or not 0 <= seed < 2**32):
        raise ValueError(f"seed must be an integer in [0, 2**32); got {seed!r}")
    n = int(n)
    if name == "synthetic":
        if classes is not None:
            raise ValueError("classes is not accepted for the synthetic regression task")
        x, y = _synthetic(n, seed)
        return Dataset(name, _standardize(x, standardize), y, y.shape[1], x.shape[1:], "regression")
    if name == "cifar10":
        if cifar_path is None:
            raise ValueError("cifar_path is required for dataset 'cifar10'")
        x_all, y_all = _read_cifar(cifar_path)
        num_classes = 10
    elif name == "digits":
        x_all, y_all = _digits()
        num_classes = 10
    else:
        num_classes = 10
        keep = check_classes(classes, num_classes)
        # Generate enough examples so that ``n`` of the kept classes exist.
        per_class = math.ceil(n / len(keep)) + 1
        x_all, y_all = _mnist1d(per_class * num_classes, seed)
    keep = check_classes(classes, num_classes)
    mask = np.isin(y_all, keep)
    available = int(mask.sum())
    if available < n:
        raise ValueError(f"n={n} exceeds the {available} examples of {name} in the kept classes")
    idx = np.flatnonzero(mask)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(idx, size=n, replace=False))
    relabel = np.full(num_classes, -1, dtype=np.int64)
    relabel[list(keep)] = np.arange(len(keep))
    x = np.asarray(x_all[idx], dtype=np.float64)
    if name == "cifar10":
        x = x.reshape(-1, 3, 32, 32) / 255.0
    x = _standardize(x, standardize)
    y = relabel[y_all[idx]]
    return Dataset(name, x, y, len(keep), x.shape[1:], "classification")


@dataclass(frozen=True)
class DataInfo:
    """What a data source offers, known before its examples are loaded.

    Attributes
    ----------
    input_shape : tuple of int
        Shape of one input.
    num_outputs : int
        Number of classes (classification) or regression dimension.
    task : str
        ``"classification"`` or ``"regression"``.
    labels : numpy.ndarray or None
        Class index of every example for a finite source (digits, CIFAR-10); None for
        a generated source (MNIST-1D, synthetic), which has as many examples as asked.
    """

    input_shape: tuple[int, ...]
    num_outputs: int
    task: str
    labels: np.ndarray | None

    def available(self, classes: Sequence[int] | None) -> int | None:
        """Examples of the kept ``classes`` (all classes when None); None when unbounded."""
        if self.labels is None:
            return None
        keep = check_classes(classes, self.num_outputs)
        return int(np.isin(self.labels, keep).sum())


def dataset_info(name: str, *, cifar_path: str | os.PathLike | None = None) -> DataInfo:
    """Shape, task and labels of a data source, without standardising or subsetting.

    CIFAR-10 batches are read and checked in full (so that a corrupt file is found
    before a run starts); MNIST-1D and the synthetic task generate nothing.

    Raises
    ------
    ValueError
        Unknown name; for CIFAR-10 a missing folder or a batch that is not a valid
        python batch (the message names the file).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; accepted: {', '.join(DATASETS)}")
    if name == "synthetic":
        return DataInfo((SYNTHETIC_DIM,), 1, "regression", None)
    if name == "mnist1d":
        return DataInfo((1, 40), 10, "classification", None)
    if name == "digits":
        return DataInfo((1, 8, 8), 10, "classification", _digits()[1])
    if cifar_path is None:
        raise ValueError("cifar_path is required for dataset 'cifar10'")
    return DataInfo((3, 32, 32), 10, "classification", _read_cifar(cifar_path)[1])


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.data.reshape(-1, 1, 8, 8) / 16.0, digits.target.astype(np.int64)


def check_classes(classes: Sequence[int] | None, num_classes: int) -> list[int]:
    """The kept classes as a list (all when None).

    Raises
    ------
    ValueError
        Unless ``classes`` holds two or more distinct integers in ``[0, num_classes)``.
    """
    if classes is None:
        return list(range(num_classes))
    keep = list(classes)
    if (len(keep) < 2 or not all(isinstance(c, int | np.integer) and not isinstance(c, bool)
                                 for c in keep)
            or len(set(keep)) != len(keep) or not all(0 <= c < num_classes for c in keep)):
        raise ValueError(
            f"classes must be at least two distinct integers in [0, {num_classes}); got {classes!r}"
        )
    return [int(c) for c in keep]


def _standardize(x: np.ndarray, how: str) -> np.ndarray:
    if how == "none":
        return x
    if how == "global":
        std = x.std()
        return (x - x.mean()) / (std if std > 0 else 1.0)
    flat = x.reshape(x.shape[0], -1)
    std = flat.std(axis=0)
    std[std == 0] = 1.0
    return ((flat - flat.mean(axis=0)) / std).reshape(x.shape)


def _mnist1d(num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D examples from the procedural generator, shape ``(N, 1, 40)``.

    ``mnist1d.data.make_dataset`` seeds Python's and numpy's global generators; their
    states are saved and restored so that loading data leaves no trace.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = int(num_samples)
    args.train_split = 1.0
    args.seed = int(seed)
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    x = np.asarray(data["x"], dtype=np.float64)
    return x[:, None, :], np.asarray(data["y"], dtype=np.int64)


def cifar_batches(path: str | os.PathLike) -> list[str]:
    """Names of the CIFAR-10 python batches present in ``path``.

    Raises
    ------
    ValueError
        If ``path`` is not a folder or holds none of ``data_batch_1`` .. ``data_batch_5``,
        ``test_batch``.
    """
    folder = os.fspath(path)
    if not os.path.isdir(folder):
        raise ValueError(f"cifar_path {folder!r} is not a folder holding the CIFAR-10 batches")
    present = [b for b in CIFAR_BATCHES if os.path.isfile(os.path.join(folder, b))]
    if not present:
        raise ValueError(
            f"cifar_path {folder!r} holds none of the CIFAR-10 python batches "
            f"({', '.join(CIFAR_BATCHES)})"
        )
    return present


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: latin-1 only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"it encodes with {encoding!r}, which a CIFAR-10 batch "
                                     "does not")
    return text.encode("latin1")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler of CIFAR-10 python batches: builds numpy arrays and nothing else.

    Only the globals a pickled numpy array needs are found; any other reference (a
    function or class that a crafted file would call) stops the load before it is
    called. The loaded object is then checked by :func:`_check_batch_structure`.
    """

    ALLOWED = frozenset({
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    })

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR-10 "
                                         "batch does not hold")
        return super().find_class(module, name)


def _check_batch_structure(d) -> str | None:
    """Why ``d`` is not a CIFAR-10 batch's dict, or None.

    Accepted: a dict whose keys are bytes or str and whose values are numeric numpy
    arrays, bytes, str, or lists of int, bytes or str.
    """
    if not isinstance(d, dict):
        return f"holds a {type(d).__name__}, not a dict with b'data' and b'labels'"
    for k, v in d.items():
        if not isinstance(k, bytes | str):
            return f"has a key of type {type(k).__name__}; a batch's keys are bytes or str"
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in "biuf":
                return f"holds {k!r} of dtype {v.dtype}; a batch's arrays hold numbers"
        elif isinstance(v, list):
            bad = next((x for x in v if isinstance(x, bool)
                        or not isinstance(x, int | bytes | str)), None)
            if bad is not None:
                return (f"holds {k!r} with an item of type {type(bad).__name__}; a batch's "
                        "lists hold integers, bytes or str")
        elif not isinstance(v, bytes | str):
            return (f"holds {k!r} of type {type(v).__name__}; a batch holds arrays, lists, "
                    "bytes and str")
    return None


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Pixels and labels of one CIFAR-10 python batch, checked.

    Parameters
    ----------
    path : path
        A pickled dict with ``b"data"``, shape ``(N, 3072)`` with values in ``[0, 255]``
        (uint8 in the official files), and ``b"labels"``, ``N`` integers in ``[0, 10)``.

    Returns
    -------
    data : numpy.ndarray
        ``(N, 3072)`` as stored.
    labels : numpy.ndarray
        ``(N,)`` int64.

    Raises
    ------
    ValueError
        One line naming the file: unreadable or not a pickle, references to anything but
        numpy arrays (refused before anything is called), not a dict of bytes or str keys
        to numeric arrays, lists of integers, bytes or str, missing keys, wrong shape,
        non-finite or out-of-range pixels, labels that are not integers in ``[0, 10)`` or
        not one per image.
    """
    path = os.fspath(path)

    def bad(why: str) -> ValueError:
        return ValueError(f"CIFAR-10 batch {path!r} {why}")

    try:
        with open(path, "rb") as fh:
            d = _BatchUnpickler(fh, encoding="bytes").load()
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise bad(f"could not be read ({type(exc).__name__}: {first})") from None
    why = _check_batch_structure(d)
    if why is not None:
        raise bad(why)
    if b"data" not in d or b"labels" not in d:
        raise bad("lacks b'data' or b'labels'")
    data, labels = d[b"data"], d[b"labels"]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072:
        shape = data.shape if isinstance(data, np.ndarray) else type(data).__name__
        raise bad(f"data must be an array of shape (N, 3072); got {shape}")
    if data.dtype.kind not in "uif":
        raise bad(f"data must hold numbers; got dtype {data.dtype}")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise bad("data holds non-finite pixels (NaN or inf)")
    if data.size and (data.min() < 0 or data.max() > 255):
        raise bad(f"data must lie in [0, 255]; got [{data.min()}, {data.max()}]")
    try:
        labels = np.asarray(labels)
    except Exception:
        raise bad("labels must be a list of integers") from None
    if labels.ndim != 1 or labels.dtype.kind not in "ui":
        raise bad(f"labels must be a list of integers; got {labels.dtype} of shape "
                  f"{labels.shape}")
    if labels.shape[0] != data.shape[0]:
        raise bad(f"has {data.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise bad(f"labels must lie in [0, 10); got [{labels.min()}, {labels.max()}]")
    return data, labels.astype(np.int64)


def _read_cifar(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Every batch present in ``path``, concatenated: pixels ``(N, 3072)`` as stored."""
    folder = os.fspath(path)
    batches = [read_cifar_batch(os.path.join(folder, b)) for b in cifar_batches(folder)]
    return np.concatenate([d for d, _ in batches]), np.concatenate([y for _, y in batches])


def _synthetic(n: int, seed: int, dim: int = SYNTHETIC_DIM,
               out_dim: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian inputs and targets from a random one-hidden-layer tanh teacher of width 10."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim))
    w1 = rng.standard_normal((dim, 10)) / np.sqrt(dim)
    w2 = rng.standard_normal((10, out_dim)) / np.sqrt(10)
    y = np.tanh(x @ w1) @ w2
    return x, y
