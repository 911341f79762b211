import pytest
import torch

from validation.data import load_dataset
from validation.networks import build_network
from validation.objective import make_objective


def _problem(activation="tanh", loss="mse", arch="mlp", dataset="synthetic", chunk=10):
    classes = None if dataset == "synthetic" else [0, 1, 2]
    data = load_dataset(dataset, n=24, seed=3, classes=classes)
    net = build_network(arch, data.input_shape, data.num_outputs, depth=2, width=5,
                        activation=activation)
    obj = make_objective(net, data, loss=loss, dtype=torch.float64, chunk_size=chunk)
    w = net.init(generator=torch.Generator().manual_seed(0)) + 0.1
    return obj, w


@pytest.mark.parametrize("loss, dataset", [("mse", "synthetic"), ("mse", "digits"),
                                           ("ce", "digits")])
def test_gradient_matches_finite_differences(loss, dataset):
    obj, w = _problem(loss=loss, dataset=dataset)
    g = obj.grad(w)
    e = torch.randn(w.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    h = 1e-5
    fd = (obj.value(w + h * e) - obj.value(w - h * e)) / (2 * h)
    # Central differences in float64: error O(h^2) ~ 1e-10 plus rounding ~ 1e-11 / h.
    assert torch.isclose(torch.dot(g, e), fd, rtol=1e-6, atol=1e-8)


def test_chunks_do_not_change_anything():
    obj_a, w = _problem(chunk=5)
    obj_b, _ = _problem(chunk=1000)
    v = torch.randn(w.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(obj_a.value(w), obj_b.value(w), rtol=1e-13)
    assert torch.allclose(obj_a.grad(w), obj_b.grad(w), rtol=1e-12, atol=1e-14)
    assert torch.allclose(obj_a.hvp(w, v), obj_b.hvp(w, v), rtol=1e-12, atol=1e-13)


def test_hvp_matches_dense_hessian(tiny, dense_hessian):
    obj, w = tiny
    hess = dense_hessian(obj, w)
    v = torch.randn(w.numel(), 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    # Products through the kept gradient graph against the autograd Hessian (row by row)
    # and the forward-over-reverse torch.func Hessian: all exact up to rounding.
    fwd = torch.func.hessian(lambda p: obj._chunk_loss(p, obj.x, obj.y))(w)
    for dense in (hess, fwd):
        assert torch.allclose(obj.hvp(w, v), dense @ v, rtol=1e-10, atol=1e-12)
        assert torch.allclose(obj.hvp(w, v[:, 0]), dense @ v[:, 0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("chunk", [5, 1000])
def test_point_is_rebuilt_when_w_changes_and_gives_the_step_gradient(chunk):
    # chunk 1000: one chunk, the gradient graph is kept; chunk 5: rebuilt per chunk.
    obj, w = _problem(chunk=chunk)
    v = torch.randn(w.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    obj.hvp(w, v)
    # An in-place change of one entry: the kept point must not be reused.
    w[3] += 0.05
    dense = torch.func.hessian(lambda p: obj._chunk_loss(p, obj.x, obj.y))(w)
    assert torch.allclose(obj.hvp(w, v), dense @ v, rtol=1e-10, atol=1e-12)
    block = torch.stack([v, -2 * v], 1)
    assert torch.allclose(obj.hvp(w, block), dense @ block, rtol=1e-10, atol=1e-12)
    u = v / torch.linalg.vector_norm(v)
    assert torch.allclose(obj.third(w, u), _third_by_func(obj, w, u), rtol=1e-10,
                          atol=1e-13)
    # The point's loss and gradient are the plain reverse pass's, bit for bit.
    point = obj.at(w)
    value, g = obj.value_and_grad(w)
    assert torch.equal(point.value, value) and torch.equal(point.grad, g)
    assert obj.at(w.clone()) is point


def _third_by_func(obj, w, u):
    """``grad_w (u^T H(w) u)`` by torch.func, reverse over forward over reverse."""
    def curvature(p):
        g = torch.func.grad(lambda q: obj._chunk_loss(q, obj.x, obj.y))
        return torch.dot(u, torch.func.jvp(g, (p,), (u,))[1])

    return torch.func.grad(curvature)(w)


@pytest.mark.parametrize("activation", ["tanh", "elu", "softplus", "gelu", "relu"])
def test_third_derivative_matches_finite_differences(activation):
    obj, w = _problem(activation=activation)
    gen = torch.Generator().manual_seed(5)
    u = torch.randn(w.shape, dtype=torch.float64, generator=gen)
    u /= torch.linalg.vector_norm(u)
    e = torch.randn(w.shape, dtype=torch.float64, generator=gen)
    third = obj.third(w, u)

    def curvature(p):
        return torch.dot(u, obj.hvp(p, u))

    h = 1e-5
    fd = (curvature(w + h * e) - curvature(w - h * e)) / (2 * h)
    # d/dh u^T H(w + h e) u = grad(u^T H u) . e; central differences of exact HVPs in
    # float64 (ReLU: the kinks are a measure-zero set the +-1e-5 stencil misses here).
    assert torch.isclose(torch.dot(third, e), fd, rtol=1e-5, atol=1e-8), activation


def test_third_with_matrix_is_the_polarised_sum(tiny):
    obj, w = tiny
    gen = torch.Generator().manual_seed(6)
    u = torch.linalg.qr(torch.randn(w.numel(), 2, dtype=torch.float64, generator=gen))[0]
    x = torch.tensor([[0.7, 0.2], [0.2, 0.3]], dtype=torch.float64)
    got = obj.third(w, u, x)
    c11, c22 = obj.third(w, u[:, 0]), obj.third(w, u[:, 1])
    c_plus = obj.third(w, (u[:, 0] + u[:, 1]))
    c12 = (c_plus - c11 - c22) / 2  # grad(u1^T H u2) by polarisation
    assert torch.allclose(got, 0.7 * c11 + 0.3 * c22 + 2 * 0.2 * c12, rtol=1e-10, atol=1e-12)


def test_bad_loss():
    data = load_dataset("synthetic", n=8, seed=0)
    net = build_network("mlp", data.input_shape, 1)
    with pytest.raises(ValueError, match="unknown loss"):
        make_objective(net, data, loss="hinge")
    with pytest.raises(ValueError, match="classification"):
        make_objective(net, data, loss="ce")
