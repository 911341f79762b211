"""Shared fixtures of the validation tests: one torch thread, small float64 problems."""

import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from validation.data import load_dataset
from validation.flows import CentralFlow
from validation.networks import build_network
from validation.objective import make_objective


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # One thread: the problems are tiny, and results must not depend on thread count.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny():
    """A two-hidden-layer tanh MLP (width 6) on 24 synthetic examples, float64."""
    data = load_dataset("synthetic", n=24, seed=3)
    net = build_network("mlp", data.input_shape, data.num_outputs, depth=2, width=6)
    obj = make_objective(net, data, dtype=torch.float64, chunk_size=10)
    w = net.init(generator=torch.Generator().manual_seed(0))
    return obj, w


@pytest.fixture(scope="session")
def dense_hessian():
    """``(obj, w) -> H``: the full Hessian by double reverse mode (an independent route)."""
    def hess(obj, w):
        return torch.autograd.functional.hessian(lambda p: obj._chunk_loss(p, obj.x, obj.y), w)

    return hess


def _cifar_batch(n: int, seed: int = 0, labels: int | None = None) -> dict:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"training batch 1 of 5",
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, size=n if labels is None else labels).tolist(),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


@pytest.fixture
def cifar_batch():
    """``(n, seed=0, labels=None) -> dict``: a CIFAR-10 python batch of ``n`` random uint8
    images and ``labels`` (default ``n``) random labels, with the official keys."""
    return _cifar_batch


@pytest.fixture
def write_pickle():
    """``(path, obj)``: pickle ``obj`` to ``path`` (protocol 2, as the official files)."""
    def write(path, obj):
        with open(path, "wb") as fh:
            pickle.dump(obj, fh, protocol=2)
        return path

    return write


class _TanhWithoutSecond(torch.autograd.Function):
    """tanh with the right first derivative, computed from a detached input: its own
    derivative (tanh's second) is lost, so Hessian-vector products are wrong."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.tanh(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (1 - torch.tanh(x.detach()) ** 2)


class _TanhPrimeWithoutThird(torch.autograd.Function):
    """``1 - tanh(x)^2`` whose derivative (tanh's second) is right, but computed from a
    detached input: tanh's third derivative is lost."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return 1 - torch.tanh(x) ** 2

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        t = torch.tanh(x.detach())
        return grad * (-2 * t * (1 - t ** 2))


class _TanhWithoutThird(torch.autograd.Function):
    """tanh with right first and second derivatives and a wrong third."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.tanh(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * _TanhPrimeWithoutThird.apply(x)


@pytest.fixture(scope="session")
def tanh_without_second():
    """tanh whose second derivative is lost (wrong ``H v``), for ``ACTIVATIONS["tanh"]``."""
    return _TanhWithoutSecond.apply


@pytest.fixture(scope="session")
def tanh_without_third():
    """tanh with right first and second derivatives and a lost third (right ``H v``, wrong
    ``grad_w (u^T H u)``), for ``ACTIVATIONS["tanh"]``."""
    return _TanhWithoutThird.apply


@pytest.fixture
def projection_pushes_up(monkeypatch):
    """The central flow's projection with the wrong sign (a sign error in the stabilising
    term), in place of ``CentralFlow._project`` for the test."""
    project = CentralFlow._project

    def pushes_up(self, est, step):
        before = self.w
        project(self, est, step)
        self.w = before - (self.w - before)

    monkeypatch.setattr(CentralFlow, "_project", pushes_up)


@pytest.fixture(scope="session")
def evaluated_config():
    """``(checks, *, window=20, drop_step=10, loss="mse") -> namespace``: the fields of a
    :class:`~validation.experiment.Config` that ``validation.predictions.evaluate`` reads."""
    def make(checks, *, window=20, drop_step=10, loss="mse"):
        return SimpleNamespace(checks=tuple(checks), window=window, drop_step=drop_step,
                               loss=loss)

    return make
