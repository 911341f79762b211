"""Side-by-side runs from one initialisation: GD (or momentum), flows, and their records.

:func:`run_experiment` trains the optimizer runs, integrates gradient flow and the
central flow, optionally the constrained trajectory, and records everything the
predictions need. It checkpoints every ``checkpoint_every`` steps and can resume a
killed run; a resumed run ends with exactly the records of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

import torch

from validation.adaptive import Adam, PreconditionedProbe, RMSProp
from validation.checkpoint import load_checkpoint, save_checkpoint
from validation.data import DATASETS, STANDARDIZE, check_classes, load_dataset
from validation.derivatives import DerivativeCheck, check_network
from validation.flows import (
    EDGE_TOL,
    CentralFlow,
    ConstrainedTrajectory,
    FlowRunaway,
    GradientFlow,
    RMSPropCentralFlow,
)
from validation.networks import ACTIVATIONS, ARCHITECTURES, PARAMETRIZATIONS, build_network
from validation.objective import LOSSES, Objective, make_objective
from validation.preflight import ConfigError
from validation.sharpness import SharpnessError, SharpnessTracker
from validation.stochastic import SGD, BatchSharpnessProbe

OPTIMIZERS = ("gd", "heavy_ball", "nesterov", "sgd", "adam", "rmsprop")
CHECKS = ("edge", "momentum", "drop", "central-flow", "self-stabilization", "flow-distance",
          "constrained", "quadratic-thresholds", "batch-sharpness", "preconditioned-edge",
          "rmsprop-central-flow")
#: Checks that compare GD with its flows; they need ``optimizer="gd"``.
GD_ONLY = ("central-flow", "self-stabilization", "flow-distance", "constrained", "drop")
DEFAULT_CHECKS = ("edge", "central-flow", "self-stabilization", "flow-distance",
                  "quadratic-thresholds")
#: The optimizer each of the SGD and Adam checks needs.
CHECK_OPTIMIZERS = {"batch-sharpness": ("sgd",), "preconditioned-edge": ("adam", "rmsprop"),
                    "rmsprop-central-flow": ("rmsprop",)}
#: The RMSProp flows of ``rmsprop-central-flow`` start from RMSProp's state ``(w_t, v_t)``
#: at this step: RMSProp's ``v = 0`` start, where the first steps fill the average, is a
#: transient its flows do not describe (their ``nu`` must be > 0).
RMSPROP_FLOW_START = 20
#: Default checks, step size and steps of the mini-batch and adaptive optimizers (the
#: defaults of ``Config`` are GD's), each run within two minutes of CPU time on one core.
#: On the embedded default network Adam reaches its edge by a rise; RMSProp's
#: preconditioned sharpness reaches 2/eta from above; SGD with ``eta = 0.8`` (the
#: largest stable step measured) and batches of 50 takes 3000 steps, tracked every 50,
#: because its batch sharpness first reaches 2/eta near step 1950 (README, "SGD and
#: Adam").
OPTIMIZER_DEFAULTS = {
    "sgd": {"checks": ("batch-sharpness",), "eta": 0.8, "steps": 3000, "track_every": 50},
    "adam": {"checks": ("preconditioned-edge",), "eta": 1e-3, "steps": 600},
    "rmsprop": {"checks": ("preconditioned-edge",), "eta": 1e-3, "steps": 600},
}
DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Classes of every classification source (MNIST-1D, digits, CIFAR-10).
NUM_CLASSES = 10
CHECKPOINT = "checkpoint.pt"
#: A run diverges at the first step whose loss is not finite, or exceeds this many times
#: the loss at the run's first step.
DIVERGENCE_FACTOR = 1e6
#: A run also diverges at the first tracked step whose sharpness cannot be estimated (a
#: Hessian-vector product is not finite) or whose sharpness at the edge (``lambda_max``;
#: SGD's batch sharpness, Adam's and RMSProp's preconditioned sharpness) exceeds this
#: many times its edge. Along a direction of curvature ``S`` the step multiplies the
#: distance to the valley floor by ``|1 - eta S|``; at ``S = 1000 * 2/eta`` that is about
#: 2000 per step, far beyond the tens of percent around the edge where self-stabilization
#: brings the sharpness back. The loss has not felt it yet only because the component
#: along that direction is still small.
SHARPNESS_DIVERGENCE_FACTOR = 1e3


@dataclass(frozen=True)
class Config:
    """Everything that defines a comparison run (all defaults: the default run).

    The default is MNIST-1D with 1,000 examples, a tanh MLP with two hidden layers of
    width 64 and a zero-initialised read-out, squared loss, float32, and GD with
    ``eta = 0.3`` for 600 steps: the sharpness starts at about ``0.63 * 2/eta``, reaches
    ``2/eta`` near step 190 and the run then stays at the edge of stability.

    ``optimizer="sgd"`` takes mini-batches of ``batch_size`` examples and measures the
    batch sharpness over ``bs_batches`` sampled batches; ``"adam"`` and ``"rmsprop"``
    use ``beta1``, ``beta2`` (RMSProp's ``alpha``) and ``eps`` (see
    :data:`OPTIMIZER_DEFAULTS` for their step sizes).

    Every field is checked alone and against the others at construction (a
    :class:`~validation.preflight.ConfigError` naming the field);
    :func:`~validation.preflight.check_config` checks the fields against the data and
    the run's size.
    """

    dataset: str = "mnist1d"
    n: int = 1000
    classes: tuple[int, ...] | None = None
    standardize: str = "feature"
    cifar_path: str | None = None
    arch: str = "mlp"
    depth: int = 2
    width: int = 64
    activation: str = "tanh"
    parametrization: str = "standard"
    readout_scale: float = 0.0
    loss: str = "mse"
    dtype: str = "float32"
    optimizer: str = "gd"
    beta: float = 0.9
    eta: float = 0.3
    steps: int = 600
    drop_step: int | None = None
    drop_factor: float = 2.0
    momentum_beta: float = 0.9
    momentum_eta: float | None = None
    batch_size: int = 50
    bs_batches: int = 8
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    checks: tuple[str, ...] = DEFAULT_CHECKS
    seed: int = 0
    track_every: int = 5
    record_every: int = 5
    eigs: int = 2
    track_vectors: int = 1
    refresh_every: int = 0
    tol: float = 1e-4
    window: int = 20
    chunk_size: int = 4096
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        _choice(self.dataset, "dataset", DATASETS)
        _choice(self.standardize, "standardize", STANDARDIZE)
        _choice(self.arch, "arch", ARCHITECTURES)
        _choice(self.activation, "activation", ACTIVATIONS)
        _choice(self.parametrization, "parametrization", PARAMETRIZATIONS)
        _choice(self.loss, "loss", LOSSES)
        _choice(self.dtype, "dtype", DTYPES)
        _choice(self.optimizer, "optimizer", OPTIMIZERS)
        for name in ("n", "depth", "width", "steps", "track_every", "record_every", "eigs",
                     "track_vectors", "window", "chunk_size", "checkpoint_every",
                     "batch_size", "bs_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, f"{name} must be an integer >= 1; got {value!r}")
        if self.n < 2:
            raise ConfigError("n", f"n must be >= 2 (standardised, a single example is all "
                              f"zeros); got {self.n}")
        for name in ("seed", "refresh_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(name, f"{name} must be an integer >= 0; got {value!r}")
        if self.seed >= 2**32:
            raise ConfigError("seed", f"seed must be below 2**32; got {self.seed}")
        for name in ("eta", "drop_factor", "tol"):
            _positive(getattr(self, name), name)
        if self.momentum_eta is not None:
            _positive(self.momentum_eta, "momentum_eta")
        if not (_real(self.readout_scale) and self.readout_scale >= 0):
            raise ConfigError("readout_scale", f"readout_scale must be finite and >= 0; got "
                              f"{self.readout_scale!r}")
        if self.optimizer == "sgd" and self.batch_size > self.n:
            raise ConfigError("batch_size", f"batch_size={self.batch_size} exceeds the "
                              f"n={self.n} examples")
        _positive(self.eps, "eps")
        for name in ("beta", "momentum_beta", "beta1", "beta2"):
            value = getattr(self, name)
            if not (_real(value) and 0.0 <= value < 1.0):
                raise ConfigError(name, f"{name} must lie in [0, 1); got {value!r}")
        if self.cifar_path is not None and not isinstance(self.cifar_path, str):
            raise ConfigError("cifar_path", f"cifar_path must be a folder name; got "
                              f"{self.cifar_path!r}")
        if self.drop_step is not None and (isinstance(self.drop_step, bool)
                                           or not isinstance(self.drop_step, int)):
            raise ConfigError("drop_step", f"drop_step must be an integer; got "
                              f"{self.drop_step!r}")
        if self.dataset == "cifar10" and self.cifar_path is None:
            raise ConfigError("cifar_path", "dataset 'cifar10' needs cifar_path (the folder "
                              "of the python batches data_batch_1..5, test_batch)")
        if self.classes is not None:
            if not isinstance(self.classes, tuple):
                raise ConfigError("classes", f"classes must be a tuple (a list in a spec) of "
                                  f"class indices; got {self.classes!r}")
            if self.dataset == "synthetic":
                raise ConfigError("classes", "the synthetic task is a regression and has no "
                                  f"classes; got classes {self.classes!r}")
            try:
                check_classes(self.classes, NUM_CLASSES)
            except ValueError as exc:
                raise ConfigError("classes", str(exc)) from None
        if not isinstance(self.checks, tuple) or not self.checks:
            raise ConfigError("checks", f"checks must name at least one check; got "
                              f"{self.checks!r}")
        for check in self.checks:
            _choice(check, "check", CHECKS, field="checks")
        if len(set(self.checks)) != len(self.checks):
            raise ConfigError("checks", f"checks must name each check once; got {self.checks!r}")
        if self.optimizer != "gd":
            bad = [c for c in self.checks if c in GD_ONLY]
            if bad:
                raise ConfigError("checks", f"checks {', '.join(bad)} compare GD with its "
                                  f"flows and need optimizer 'gd'; got optimizer "
                                  f"{self.optimizer!r}")
        if self.optimizer in ("sgd", "adam", "rmsprop") and "edge" in self.checks:
            raise ConfigError("checks", f"check 'edge' holds the sharpness to the edge of "
                              f"full-batch GD or momentum; with optimizer {self.optimizer!r} "
                              f"use {OPTIMIZER_DEFAULTS[self.optimizer]['checks'][0]!r}")
        for check, needs in CHECK_OPTIMIZERS.items():
            if check in self.checks and self.optimizer not in needs:
                raise ConfigError("checks", f"check {check!r} needs optimizer "
                                  f"{' or '.join(map(repr, needs))}; got optimizer "
                                  f"{self.optimizer!r}")
        if "rmsprop-central-flow" in self.checks and self.steps <= RMSPROP_FLOW_START:
            raise ConfigError("steps", f"check 'rmsprop-central-flow' starts its flows at step "
                              f"{RMSPROP_FLOW_START}; steps must exceed it, got {self.steps}")
        if "drop" in self.checks:
            if self.drop_step is None:
                raise ConfigError("drop_step", "check 'drop' needs drop_step (the step of the "
                                  "step-size drop)")
            if not 0 < self.drop_step < self.steps:
                raise ConfigError("drop_step", f"drop_step must lie in (0, steps={self.steps}); "
                                  f"got {self.drop_step!r}")
        if self.window % 2:
            raise ConfigError("window", f"window must be even (centred averages); got "
                              f"{self.window}")
        if self.window > self.steps:
            raise ConfigError("window", f"window={self.window} exceeds steps={self.steps} "
                              "(time averages over the last window steps of the run)")

    def to_dict(self) -> dict:
        """JSON-ready dictionary."""
        d = dataclasses.asdict(self)
        d["classes"] = list(self.classes) if self.classes is not None else None
        d["checks"] = list(self.checks)
        return d


def _choice(value, name, accepted, field=None) -> None:
    if not isinstance(value, str) or value not in accepted:
        raise ConfigError(field or name, f"unknown {name} {value!r}; accepted: "
                          f"{', '.join(accepted)}")


def _real(value) -> bool:
    """A finite int or float (not a bool)."""
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _positive(value, name) -> None:
    if not (_real(value) and value > 0):
        raise ConfigError(name, f"{name} must be a finite number > 0; got {value!r}")


def make_optimizer(name: str, beta: float, *, beta1: float = 0.9, beta2: float = 0.999,
                   eps: float = 1e-8):
    """The update map named ``name``: :mod:`minimal_eos`'s for GD and momentum (its rules
    run on tensors too), torch.optim's steps for SGD, Adam and RMSProp (``alpha = beta2``).
    """
    from minimal_eos import GD, HeavyBall, Nesterov

    if name == "sgd":
        return SGD()
    if name == "adam":
        return Adam(beta1, beta2, eps)
    if name == "rmsprop":
        return RMSProp(beta2, eps)
    if name == "gd":
        return GD()
    return HeavyBall(beta=beta) if name == "heavy_ball" else Nesterov(beta=beta)


def pick_device(device: str = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; ``"cpu"``/``"cuda"`` force one."""
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"unknown device {device!r}; accepted: auto, cpu, cuda")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return torch.device(device)


@dataclass
class OptimizerRun:
    """One optimizer trajectory with its records.

    ``loss[t]`` is the loss at step ``t``; ``sharpness`` holds ``(t, S)`` at tracked
    steps; ``x[t]`` the displacement along the top eigenvector,
    ``x_t = u . (2 w_t - w_{t-1} - w_{t+1}) / 4``, exact for a period-2 oscillation
    around a centre that moves linearly.
    """

    name: str
    optimizer_name: str
    beta: float
    eta: float
    state: tuple
    tracker: SharpnessTracker
    start: int = 0
    loss: list = field(default_factory=list)
    sharpness: list = field(default_factory=list)
    hvps: list = field(default_factory=list)
    x: list = field(default_factory=list)
    eta_history: list = field(default_factory=list)
    prev_w: torch.Tensor | None = None
    u: torch.Tensor | None = None
    diverged_at: int | None = None
    diverged_loss: float | None = None
    diverged_reason: str | None = None

    def state_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("name", "optimizer_name", "beta", "eta", "state",
                                            "start", "loss", "sharpness", "hvps", "x",
                                            "eta_history", "prev_w", "u", "diverged_at",
                                            "diverged_loss", "diverged_reason")}
        d["tracker"] = self.tracker.state_dict()
        return d

    def load_state_dict(self, d: dict) -> None:
        for k, v in d.items():
            if k != "tracker":
                setattr(self, k, v)
        self.tracker.load_state_dict(d["tracker"])


class Experiment:
    """All runs of one :class:`Config`, advanced step by step.

    Parameters
    ----------
    config : Config
        The run.
    device : torch.device
        Where tensors live.
    checked : DerivativeCheck, optional
        The passed :func:`~validation.derivatives.check_run` of this configuration (as
        ``python -m validation.compare`` makes before any work): the derivatives are not
        checked again. Without it, or with the check of another configuration, they are.

    Raises
    ------
    validation.derivatives.DerivativeError
        When the network's Hessian-vector product or third derivative disagrees with
        its finite difference (:func:`~validation.derivatives.check_network`, on the first
        examples of the training set in float64); nothing is measured.
    """

    def __init__(self, config: Config, device: torch.device, *,
                 checked: DerivativeCheck | None = None) -> None:
        self.config = config
        self.device = device
        self.dtype = DTYPES[config.dtype]
        data = load_dataset(config.dataset, n=config.n, classes=config.classes,
                            standardize=config.standardize, seed=config.seed,
                            cifar_path=config.cifar_path)
        self.data = data
        self.network = build_network(config.arch, data.input_shape, data.num_outputs,
                                     depth=config.depth, width=config.width,
                                     activation=config.activation,
                                     parametrization=config.parametrization)
        # Refuse a network whose H v or third derivative is wrong before measuring it (a
        # DerivativeError), unless this configuration's check has passed already; the
        # check draws from its own generator.
        if checked is None or checked.config != config:
            check_network(self.network, data, config.loss)
        self.objective: Objective = make_objective(self.network, data, loss=config.loss,
                                                   dtype=self.dtype, device=device,
                                                   chunk_size=config.chunk_size)
        gen = torch.Generator().manual_seed(config.seed)
        w0 = self.network.init(generator=gen, dtype=torch.float64)
        readout = self.network.layers[-1]
        size = math.prod(readout.weight_shape) + (readout.weight_shape[0] if readout.bias else 0)
        w0[-size:] *= config.readout_scale
        self.w0 = w0.to(device=device, dtype=self.dtype)
        self.p = self.w0.numel()
        self.t = 0
        self.onset: dict | None = None
        self.records: dict[str, list] = {"t": [], "gd_center_gf": [], "gd_center_cf": [],
                                         "gd_center_pgd": [], "gf_loss": [], "gf_sharpness": [],
                                         "cf_loss": [], "cf_pred_loss": [], "cf_sharpness": [],
                                         "cf_sigma": [], "cf_eig2": [], "pgd_loss": [],
                                         "pgd_sharpness": [], "gd_centre_sharpness": []}
        checks = set(config.checks)
        self.hyper = {"beta1": config.beta1, "beta2": config.beta2, "eps": config.eps}
        main = make_optimizer(config.optimizer, config.beta, **self.hyper)
        self.runs: dict[str, OptimizerRun] = {
            "main": self._new_run("main", config.optimizer, config.beta, config.eta, seed=1)}
        if "momentum" in checks:
            # Default: GD's step size, so that the heavy-ball edge 2(1+beta)/eta is
            # (1+beta) times GD's 2/eta.
            eta_hb = config.momentum_eta if config.momentum_eta is not None else config.eta
            self.runs["momentum"] = self._new_run("momentum", "heavy_ball", config.momentum_beta,
                                                  eta_hb, seed=2)
        if "drop" in checks:
            self.runs["drop"] = self._new_run("drop", config.optimizer, config.beta,
                                              config.eta / config.drop_factor, seed=3,
                                              start=config.drop_step)
        self.main_optimizer = main
        need_flows = bool(checks & {"central-flow", "flow-distance"})
        self.gf = self.cf = self.pgd = None
        self.cf_branched = False
        #: Why the central flow stopped (its projection lost the edge), or None.
        self.cf_stopped: str | None = None
        self.gf_prev: tuple[float, torch.Tensor] | None = None
        if need_flows:
            self.gf = GradientFlow(self.objective, config.eta, self.w0,
                                   tracker=self._tracker(1, seed=4))
            # The central flow holds its eigenvalues at 2/eta only as accurately as it
            # estimates them: its tracker uses at most EDGE_TOL.
            self.cf = CentralFlow(self.objective, config.eta, self.w0,
                                  tracker=self._tracker(config.eigs, seed=5,
                                                        tol=min(config.tol, EDGE_TOL)))
        self.want_pgd = "constrained" in checks
        self.centre_tracker: SharpnessTracker | None = None
        self.sgd: BatchSharpnessProbe | None = None
        self.adaptive: PreconditionedProbe | None = None
        self.want_rf = "rmsprop-central-flow" in checks
        #: RMSProp's central flow and stable flow (from step RMSPROP_FLOW_START).
        self.rf: RMSPropCentralFlow | None = None
        self.rsf: RMSPropCentralFlow | None = None
        #: Why RMSProp's central flow stopped or could not start, or None.
        self.rf_stopped: str | None = None
        if self.want_rf:
            for key in ("rf_loss", "rf_pred_loss", "rf_sharpness", "rf_sigma", "sf_loss",
                        "sf_sharpness", "rmsprop_center_rf", "rmsprop_center_sf"):
                self.records[key] = []
        if config.optimizer == "sgd":
            self.sgd = BatchSharpnessProbe(self.objective, config.batch_size,
                                           batches=config.bs_batches,
                                           seed=config.seed * 1000 + 8,
                                           tracker=self._tracker(1, seed=10))
        elif config.optimizer in ("adam", "rmsprop"):
            self.adaptive = PreconditionedProbe(
                self.objective.hvp, lambda op: self._tracker(1, seed=11, op=op))

    def _tracker(self, k: int, seed: int, tol: float | None = None,
                 op=None) -> SharpnessTracker:
        """A tracker of at least ``k`` (and ``config.track_vectors``) eigenpairs of ``op``
        (default: the Hessian, ``objective.hvp``), with relative residual ``tol`` (default
        ``config.tol``), drawing from seed ``config.seed * 1000 + seed``."""
        gen = torch.Generator().manual_seed(self.config.seed * 1000 + seed)
        return SharpnessTracker(self.objective.hvp if op is None else op, self.p,
                                k=max(k, self.config.track_vectors),
                                tol=self.config.tol if tol is None else tol,
                                refresh_every=self.config.refresh_every, generator=gen)

    def _rmsprop_flows(self, w: torch.Tensor, nu: torch.Tensor) -> None:
        """RMSProp's central flow and stable flow from ``(w, nu)``; their trackers estimate
        to at most EDGE_TOL, as GD's central flow does."""
        cfg = self.config

        def tracker(seed: int):
            return lambda op: self._tracker(cfg.eigs, seed, tol=min(cfg.tol, EDGE_TOL), op=op)

        kw = {"beta2": cfg.beta2, "eps": cfg.eps}
        self.rf = RMSPropCentralFlow(self.objective, cfg.eta, w, nu, make_tracker=tracker(12),
                                     **kw)
        self.rsf = RMSPropCentralFlow(self.objective, cfg.eta, w, nu, make_tracker=tracker(13),
                                      central=False, **kw)

    def _new_run(self, name, opt_name, beta, eta, *, seed, start=0) -> OptimizerRun:
        opt = make_optimizer(opt_name, beta, **self.hyper)
        return OptimizerRun(name, opt_name, beta, eta, opt.init(self.w0.clone()),
                            self._tracker(1, seed), start=start)

    def edge(self, run: OptimizerRun) -> float:
        """Critical sharpness of ``run``'s optimizer at its current step size."""
        return make_optimizer(run.optimizer_name, run.beta,
                              **self.hyper).critical_sharpness(run.eta)

    # -- one step -----------------------------------------------------------------------
    def _step_run(self, run: OptimizerRun, t: int) -> None:
        cfg = self.config
        opt = make_optimizer(run.optimizer_name, run.beta, **self.hyper)
        if t < run.start or run.diverged_at is not None:
            return
        w = run.state[0]
        query = opt.query(run.state)
        tracked = t % cfg.track_every == 0 or t == cfg.steps
        sgd = self.sgd if run.name == "main" else None
        if sgd is not None:
            # The step takes the next mini-batch's gradient; the loss recorded is the
            # full training loss.
            value, g = self.objective.value(query), sgd.gradient(query)
        elif tracked and query is w:
            # The sharpness estimate at w builds the gradient graph anyway: the step's
            # gradient comes from the same pass.
            point = self.objective.at(w)
            value, g = point.value, point.grad
        else:
            value, g = self.objective.value_and_grad(query)
        loss = float(value)
        start = run.loss[0] if run.loss else loss
        if not (math.isfinite(loss) and loss <= DIVERGENCE_FACTOR * start
                and bool(torch.isfinite(g).all())):
            # Divergence: the run stops here and its records end at the step before.
            run.diverged_at, run.diverged_loss = t, loss
            return
        if tracked:
            reason = self._track(run, t, w, g, opt)
            if reason is not None:
                run.diverged_at, run.diverged_loss, run.diverged_reason = t, loss, reason
                return
        run.loss.append(loss)
        run.eta_history.append(run.eta)
        if t < cfg.steps:
            new_state = opt.update(run.state, g, run.eta)
            w_next = new_state[0]
            if run.prev_w is not None and run.u is not None:
                run.x.append((t, float(torch.dot(run.u, 2 * w - run.prev_w - w_next) / 4)))
            run.prev_w = w
            run.state = new_state

    def _track(self, run: OptimizerRun, t: int, w: torch.Tensor, g: torch.Tensor,
               opt: object) -> str | None:
        """Measure ``run`` at the tracked step ``t`` and record it; or, when the run has
        diverged (see :data:`SHARPNESS_DIVERGENCE_FACTOR`), record nothing and return why.
        """
        sgd = self.sgd if run.name == "main" else None
        # Before the first step the preconditioner is not formed yet.
        adaptive = self.adaptive if run.name == "main" and t > 0 else None
        edge = self.edge(run)
        try:
            est = run.tracker.estimate(w)
            s, u = float(est.values[0]), est.vectors[:, 0].clone()
            values = sgd.measure(w, s, u) if sgd is not None else None
            pre = (adaptive.measure(w, opt.preconditioner(run.state))
                   if adaptive is not None else None)
        except SharpnessError as err:
            return f"the sharpness cannot be estimated ({err})"
        for what, value in (("the sharpness", s),
                            ("the batch sharpness",
                             values["batch_sharpness"] if values is not None else None),
                            ("the preconditioned sharpness", pre)):
            if value is not None and value > SHARPNESS_DIVERGENCE_FACTOR * edge:
                return (f"{what} {value:.4g} exceeds {SHARPNESS_DIVERGENCE_FACTOR:.0e} "
                        f"times its edge {edge:.4g}")
        run.sharpness.append((t, s))
        run.hvps.append(est.hvps)
        run.u = u
        if sgd is not None:
            sgd.record(t, values)
        elif adaptive is not None:
            adaptive.record(t, pre)
        elif run.name == "main" and self.adaptive is None:
            self._maybe_onset(run, t, w, g)
        return None

    def _maybe_onset(self, run: OptimizerRun, t: int, w: torch.Tensor, g: torch.Tensor) -> None:
        if self.onset is not None:
            return
        edge = self.edge(run)
        values = [s for _, s in run.sharpness]
        if values[-1] >= edge and min(values) < 0.9 * edge:
            u = run.u
            grad_s = self.objective.third(w, u)
            alpha = -float(torch.dot(g, grad_s))
            beta = float(torch.dot(grad_s, grad_s))
            self.onset = {"t": t, "alpha": alpha, "beta": beta,
                          "grad_s_dot_u": float(torch.dot(grad_s, u)),
                          "sharpness": values[-1], "w": w.clone()}
            if self.want_pgd and self.pgd is None:
                self.pgd = ConstrainedTrajectory(self.objective, run.eta, w,
                                                 tracker=self._tracker(1, seed=6))
                self.pgd.t = float(t)

    def _record(self, t: int) -> None:
        """Flows at time ``t`` against the GD centre ``(w_{t-1} + 2 w_t + w_{t+1}) / 4``."""
        cfg = self.config
        main = self.runs["main"]
        rec = self.records
        # The centre needs w_{t-1}, w_t and w_{t+1}: after the update of step t,
        # prev_w = w_t and state[0] = w_{t+1}; w_{t-1} was kept as centre_prev.
        if t < cfg.steps:
            w_t, w_next = main.prev_w, main.state[0]
            w_prev = self._centre_prev if self._centre_prev is not None else w_t
            centre = (w_prev + 2 * w_t + w_next) / 4
        else:
            # Last step: no w_{t+1}; the midpoint of the last two iterates.
            w_t = main.state[0]
            w_prev = self._centre_prev if self._centre_prev is not None else w_t
            centre = (w_prev + w_t) / 2
        rec["t"].append(t)
        centre_s = math.nan
        if self.gf is not None and t >= cfg.steps - cfg.window:
            # The central flow predicts the sharpness of the centre of the oscillation.
            if self.centre_tracker is None:
                self.centre_tracker = self._tracker(1, seed=7)
                self.centre_tracker.vectors = main.tracker.vectors
            centre_s = float(self.centre_tracker.estimate(centre).values[0])
        rec["gd_centre_sharpness"].append(centre_s)
        if self.gf is not None:
            self.gf.advance(t)
            s_gf = self.gf.estimate()
            rec["gf_loss"].append(float(self.objective.value(self.gf.w)))
            rec["gf_sharpness"].append(s_gf)
            rec["gd_center_gf"].append(float(torch.linalg.vector_norm(centre - self.gf.w)))
            if not self.cf_branched:
                if s_gf < self.cf.edge:
                    # Below the edge the central flow is gradient flow.
                    self.gf_prev = (float(t), self.gf.w.clone())
                    self.cf.w = self.gf.w.clone()
                    self.cf.t = float(t)
                    self.cf.eigenvalues = torch.full((self.cf.tracker.k,), s_gf)
                    self.cf.eigenvalues[1:] = float("nan")
                else:
                    t_prev, w_prev_gf = self.gf_prev if self.gf_prev is not None \
                        else (0.0, self.w0)
                    self.cf.w, self.cf.t = w_prev_gf.clone(), t_prev
                    self.cf_branched = True
            if self.cf_branched and self.cf_stopped is None:
                try:
                    self.cf.advance(t)
                except FlowRunaway as err:
                    # Recorded, not raised: the flow's rows fail with this reason, and GD
                    # and the other runs go on.
                    self.cf_stopped = f"the central flow stopped before step {t}: {err}"
            if self.cf_stopped is None:
                rec["cf_loss"].append(float(self.objective.value(self.cf.w)))
                rec["cf_pred_loss"].append(self.cf.predicted_loss())
                rec["cf_sharpness"].append(self.cf.sharpness)
                rec["cf_sigma"].append(self.cf.sigma_trace)
                second = (float(self.cf.eigenvalues[1]) if self.cf.eigenvalues.numel() > 1
                          else math.nan)
                rec["cf_eig2"].append(second)
                rec["gd_center_cf"].append(float(torch.linalg.vector_norm(centre - self.cf.w)))
            else:
                for key in ("cf_loss", "cf_pred_loss", "cf_sharpness", "cf_sigma", "cf_eig2",
                            "gd_center_cf"):
                    rec[key].append(math.nan)
        if self.want_rf:
            self._record_rmsprop_flows(t, centre)
        if self.pgd is not None:
            rec["pgd_loss"].append(float(self.objective.value(self.pgd.w)))
            rec["pgd_sharpness"].append(self.pgd.sharpness)
            rec["gd_center_pgd"].append(float(torch.linalg.vector_norm(centre - self.pgd.w)))
        else:
            rec["pgd_loss"].append(math.nan)
            rec["pgd_sharpness"].append(math.nan)
            rec["gd_center_pgd"].append(math.nan)

    def _record_rmsprop_flows(self, t: int, centre: torch.Tensor) -> None:
        """RMSProp's flows at time ``t`` against RMSProp's centre (NaN before they start)."""
        rec = self.records
        keys = ("rf_loss", "rf_pred_loss", "rf_sharpness", "rf_sigma", "sf_loss",
                "sf_sharpness", "rmsprop_center_rf", "rmsprop_center_sf")
        if self.rf is not None and self.rf_stopped is None:
            try:
                self.rf.advance(t)
            except FlowRunaway as err:
                self.rf_stopped = f"RMSProp's central flow stopped before step {t}: {err}"
        if self.rf is None or self.rf_stopped is not None:
            for key in keys:
                rec[key].append(math.nan)
            return
        self.rsf.advance(t)
        values = (float(self.objective.value(self.rf.w)), self.rf.predicted_loss(),
                  self.rf.sharpness, self.rf.sigma_trace,
                  float(self.objective.value(self.rsf.w)), self.rsf.sharpness,
                  float(torch.linalg.vector_norm(centre - self.rf.w)),
                  float(torch.linalg.vector_norm(centre - self.rsf.w)))
        for key, value in zip(keys, values, strict=True):
            rec[key].append(value)

    _centre_prev: torch.Tensor | None = None

    def step(self) -> None:
        """Advance every run by one GD step (and the flows to the record time)."""
        t = self.t
        main = self.runs["main"]
        w_before = main.prev_w
        drop = self.runs.get("drop")
        if drop is not None and t == drop.start:
            # The drop run is the main run up to the drop: branch from it now.
            drop.state = tuple(s.clone() for s in main.state)
            drop.prev_w, drop.u = main.prev_w, main.u
            drop.tracker.vectors = main.tracker.vectors
        if self.want_rf and t == RMSPROP_FLOW_START and main.diverged_at is None:
            w, v = main.state
            if bool((v > 0).all()):
                self._rmsprop_flows(w, v)
                self.rf.t = self.rsf.t = float(t)
            else:
                self.rf_stopped = (f"RMSProp's flows cannot start at step {t}: "
                                   f"{int((v <= 0).sum())} entries of its average of squared "
                                   f"gradients are 0")
        for run in self.runs.values():
            self._step_run(run, t)
        # The flows and the constrained trajectory are compared with GD: they stop with it.
        if main.diverged_at is None:
            if self.pgd is not None and self.pgd.t < t:
                self.pgd.step()
            if t % self.config.record_every == 0 or t == self.config.steps:
                self._centre_prev = w_before
                self._record(t)
        self.t += 1

    def running(self) -> bool:
        """Whether a run still has steps to take: the main run until it diverges, and
        every other run until it diverges, except one that needed the main run after its
        divergence (a drop run that had not branched yet)."""
        main = self.runs["main"]
        return any(r.diverged_at is None and (main.diverged_at is None
                                              or (r is not main and r.start < main.diverged_at))
                   for r in self.runs.values())

    # -- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume, with the config to check it matches."""
        return {"config": self.config.to_dict(), "t": self.t, "onset": self.onset,
                "records": self.records,
                "runs": {k: r.state_dict() for k, r in self.runs.items()},
                "gf": self.gf.state_dict() if self.gf is not None else None,
                "cf": self.cf.state_dict() if self.cf is not None else None,
                "cf_branched": self.cf_branched, "cf_stopped": self.cf_stopped,
                "gf_prev": self.gf_prev,
                "centre_tracker": (self.centre_tracker.state_dict()
                                   if self.centre_tracker is not None else None),
                "pgd": self.pgd.state_dict() if self.pgd is not None else None,
                "sgd": self.sgd.state_dict() if self.sgd is not None else None,
                "adaptive": self.adaptive.state_dict() if self.adaptive is not None else None,
                **({"rf": self.rf.state_dict() if self.rf is not None else None,
                    "rsf": self.rsf.state_dict() if self.rsf is not None else None,
                    "rf_stopped": self.rf_stopped} if self.want_rf else {})}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` saved by a run of the same config."""
        if state["config"] != self.config.to_dict():
            raise ValueError("the checkpoint was written by a run with a different "
                             "configuration; remove it or use the same options")
        self.t = int(state["t"])
        self.onset = state["onset"]
        self.records = state["records"]
        for k, r in self.runs.items():
            r.load_state_dict(state["runs"][k])
        if self.gf is not None:
            self.gf.load_state_dict(state["gf"])
            self.cf.load_state_dict(state["cf"])
        self.cf_branched = bool(state["cf_branched"])
        self.cf_stopped = state["cf_stopped"]
        if state["centre_tracker"] is not None:
            self.centre_tracker = self._tracker(1, seed=7)
            self.centre_tracker.load_state_dict(state["centre_tracker"])
        self.gf_prev = state["gf_prev"]
        if self.sgd is not None:
            self.sgd.load_state_dict(state["sgd"])
        if self.adaptive is not None:
            self.adaptive.load_state_dict(state["adaptive"])
        if self.want_rf:
            self.rf_stopped = state["rf_stopped"]
            if state["rf"] is not None:
                # Placeholders: every part of the flows' state comes from the checkpoint.
                self._rmsprop_flows(self.w0, torch.ones_like(self.w0))
                self.rf.load_state_dict(state["rf"])
                self.rsf.load_state_dict(state["rsf"])
        if state["pgd"] is not None:
            self.pgd = ConstrainedTrajectory.__new__(ConstrainedTrajectory)
            self.pgd.objective = self.objective
            self.pgd.eta = self.config.eta
            self.pgd.tracker = self._tracker(1, seed=6)
            self.pgd.load_state_dict(state["pgd"])

    def cf_edge_gap(self) -> float:
        """``max |S - 2/eta|`` of the central flow over the records where it is at the edge
        (``tr Sigma > 0``); NaN when it never is."""
        rec = self.records
        gaps = [abs(s - self.cf.edge) for s, sig in zip(rec["cf_sharpness"], rec["cf_sigma"],
                                                         strict=True) if sig > 0]
        return max(gaps) if gaps else math.nan

    def results(self) -> dict:
        """Plain-python records of every run (for predictions and the report)."""
        out = {"runs": {}, "records": self.records, "onset": None,
               "num_params": self.p, "n": self.data.n}
        if self.onset is not None:
            out["onset"] = {k: v for k, v in self.onset.items() if k != "w"}
        for k, r in self.runs.items():
            out["runs"][k] = {"optimizer": r.optimizer_name, "beta": r.beta, "eta": r.eta,
                              "edge": self.edge(r), "start": r.start, "loss": r.loss,
                              "sharpness": r.sharpness, "x": r.x, "hvps": r.hvps,
                              "mean_hvps": r.tracker.mean_hvps, "diverged_at": r.diverged_at,
                              "diverged_loss": r.diverged_loss,
                              "diverged_reason": r.diverged_reason}
        if self.gf is not None:
            out["gf_rk4_steps"] = self.gf.rk4_steps
            out["cf_steps"] = self.cf.steps
            out["cf_projections"] = self.cf.projections
            out["cf_shortened"] = self.cf.shortened
            out["cf_edge_gap"] = self.cf_edge_gap()
            out["cf_stopped"] = self.cf_stopped
        if self.sgd is not None:
            out["stochastic"] = {"batch_size": self.config.batch_size,
                                 "batches": self.config.bs_batches, **self.sgd.records}
        if self.adaptive is not None:
            out["adaptive"] = dict(self.adaptive.records)
        if self.want_rf:
            out["rmsprop_flow"] = {
                "start": RMSPROP_FLOW_START, "stopped": self.rf_stopped,
                "steps": self.rf.steps if self.rf is not None else 0,
                "projections": self.rf.projections if self.rf is not None else 0,
                "shortened": self.rf.shortened if self.rf is not None else 0}
        return out


def checkpoint_meta(config: Config, device: str | torch.device) -> dict:
    """What a checkpoint of ``config`` must match to be resumed: the configuration, the
    device and the torch thread count (both change the rounding of the numbers)."""
    return {"config": config.to_dict(), "device": str(torch.device(device)),
            "threads": torch.get_num_threads()}


def run_experiment(config: Config, *, out_dir: str | os.PathLike | None = None,
                   device: str = "auto", resume: bool = False, progress: bool = False,
                   stop_after: int | None = None,
                   checked: DerivativeCheck | None = None) -> dict:
    """Run every process of ``config`` to ``config.steps`` and return the records.

    Parameters
    ----------
    config : Config
        The run.
    out_dir : path, optional
        Folder of the checkpoint ``checkpoint.pt`` (written every
        ``config.checkpoint_every`` steps, atomically). None: no checkpoints.
    device : {"auto", "cpu", "cuda"}
        Device (``"auto"``: CUDA when available).
    resume : bool
        Continue from the checkpoint in ``out_dir`` if there is one; it must have been
        written with the same :func:`checkpoint_meta` (else
        :class:`~validation.checkpoint.CheckpointError`, as for a corrupted file).
    progress : bool
        Show a tqdm progress bar.
    stop_after : int, optional
        Stop (after checkpointing) once this many steps are done; for tests of resuming.
    checked : DerivativeCheck, optional
        The passed :func:`~validation.derivatives.check_run` of ``config``, handed to
        :class:`Experiment` so that the derivatives are checked once.

    Returns
    -------
    dict
        See :meth:`Experiment.results`; ``"resumed_from"`` gives the step resumed from,
        ``"stopped_at"`` the last step computed when every run stopped early because the
        main run diverged (None otherwise), ``"complete"`` whether nothing is left to do.

    Notes
    -----
    A run diverges at the first step ``t`` whose loss is not finite or exceeds
    ``DIVERGENCE_FACTOR`` times the loss at its first step, ``L_t > 10^6 L_start``
    (or whose gradient is not finite), or at the first tracked step whose sharpness
    cannot be estimated or exceeds ``SHARPNESS_DIVERGENCE_FACTOR`` times its edge,
    ``S_t > 10^3 S_edge``; its records end at step ``t - 1``. When the main
    run diverges, the flows and the constrained trajectory stop with it, and the loop
    ends as soon as no other run has steps left.
    """
    exp = Experiment(config, pick_device(device), checked=checked)
    ckpt = os.path.join(os.fspath(out_dir), CHECKPOINT) if out_dir is not None else None
    meta = checkpoint_meta(config, exp.device)
    resumed_from = None
    if resume and ckpt is not None and os.path.exists(ckpt):
        exp.load_state_dict(load_checkpoint(ckpt, meta))
        resumed_from = exp.t
    total = config.steps + 1
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=exp.t, desc="steps", unit="step", leave=False)
    while exp.t < total and exp.running():
        exp.step()
        if bar is not None:
            bar.update(1)
        if ckpt is not None and (exp.t % config.checkpoint_every == 0) and exp.t < total:
            save_checkpoint(ckpt, exp.state_dict(), meta)
        if stop_after is not None and exp.t >= stop_after:
            break
    if bar is not None:
        bar.close()
    res = exp.results()
    res["resumed_from"] = resumed_from
    res["complete"] = exp.t >= total or not exp.running()
    res["stopped_at"] = exp.t - 1 if exp.t < total and not exp.running() else None
    return res
