"""Configuration of the readiness benchmark (``configs/ready_bench``) and how its request specs resolve.

Request specs are those of ``r2u unlearn`` plus ``random:F@S in pool`` / ``random:F@S in stable``: a
fraction F of the *whole* training set, drawn only from the group's revocable pool / its stable rest.

Two protocol rules live here (DESIGN §6, "stop targets that resolve"):

- the stop rule depends on the request kind (:attr:`ReadyBenchConfig.stop_per_kind`): a class request stops
  on forget accuracy (with a tolerance, since the retrained model scores 0), random / sample / group requests
  on forget *loss* — their forget accuracy sits near the test accuracy, so an accuracy target is met or
  missed by a single sample;
- a random request must be large enough to measure: ≥ 1% of the training set and ≥ 200 samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ready2unlearn.attacks.relearn import RelearnConfig
from ready2unlearn.config import OMIT_UNSET, apply_overrides, check, from_dict, load_preset, to_dict
from ready2unlearn.data.base import ArrayDataset
from ready2unlearn.data.request import DeletionRequest
from ready2unlearn.engine.method import MethodConfig, method_config
from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.readiness.baselines import DPConfig
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.readiness.sampler import RevocableSet
from ready2unlearn.recipes.train import load_config as load_train_config
from ready2unlearn.report.readiness import TARGET_PROFILES

#: Request kinds with their own stop rule (a ``samples`` request, including ``random:F in pool``, is ``random``).
KINDS = ("class", "random", "group")
#: Smallest random request that resolves: a share of the training set and an absolute count (DESIGN §6).
MIN_RANDOM_FRACTION = 0.01
MIN_RANDOM_SIZE = 200


def _default_stop_per_kind() -> dict[str, list[str]]:
    return {
        "class": ["rule=forget_acc", "target=reference", "tolerance=0.01"],
        "random": ["rule=forget_loss", "target=reference", "tolerance=0.0"],
        "group": ["rule=forget_loss", "target=reference", "tolerance=0.0"],
    }


@dataclass
class ReadyGroup:
    """One readiness configuration and the requests it is tested on.

    Attributes:
        name: Group name (``class``, ``random-all``...).
        ready: ``key=value`` overrides of the bench's base ``ready`` config (``kind=random``...).
        requests: Setting name → request spec (``in: class:3``, ``out: random:0.14@1 in stable``).
        targeted: Settings the DESIGN targets apply to (the others are reported only).
        baselines: Also train the learning-time baselines (down-weighting, negative training) on this group's
            revocable set, and unlearn the DP-SGD model, on this group's requests.
    """

    name: str
    ready: list[str] = field(default_factory=list)
    requests: dict[str, str] = field(default_factory=dict)
    targeted: list[str] = field(default_factory=list)
    baselines: bool = False

    def __post_init__(self) -> None:
        check(bool(self.requests), f"group {self.name!r} needs at least one request")
        for spec in self.requests.values():
            DeletionRequest.parse(spec.partition(" in ")[0])
            check(spec.partition(" in ")[2] in ("", "pool", "stable"), f"'in' must be pool or stable: {spec!r}")
        check(set(self.targeted) <= set(self.requests), f"group {self.name!r}: targeted settings must be requests")


@dataclass
class SequentialConfig:
    """Sequential requests: ``count`` requests one after another on the first seed (0 = off).

    Attributes:
        count: Number of requests.
        group: Group whose ready model serves them.
        request: Spec of each request (its ``@seed`` is advanced per request; ids already forgotten are
            excluded from later draws).
        method: Unlearning method.
    """

    count: int = 0
    group: str = "random"
    request: str = "random:0.02@100 in pool"
    method: str = "ga"

    def __post_init__(self) -> None:
        check(self.count >= 0, "sequential.count must be ≥ 0")
        check(DeletionRequest.parse(self.request.partition(" in ")[0]).kind == "random",
              f"sequential.request must be a random request, got {self.request!r}")  # fmt: skip


@dataclass
class ReadyBenchConfig:
    """A readiness benchmark.

    Attributes:
        train: Training preset of every model (standard, ready, retrained, baselines).
        train_overrides: ``key=value`` overrides of that preset.
        seeds: Seeds (≥ 5 for the DESIGN protocol: every comparison is paired by seed, with a 95% CI).
        ready: Base readiness config; each group overrides parts of it.
        groups: Readiness configurations and their requests.
        methods: Methods run on every variant (the targets use these).
        extra_methods: Methods run on standard and ready models only, for targeted settings (NPO/SimNPO on a
            model prepared for GA).
        stop: Budget and checks shared by every run (``max_steps``, ``eval_every``, ``retain_floor``...), and
            the rule of any kind ``stop_per_kind`` leaves out.
        stop_per_kind: Request kind (``class``, ``random``, ``group``) → ``key=value`` overrides of ``stop``.
        method_per_kind: Request kind → ``key=value`` overrides of every method config for requests of that kind
            (``random: ["lr=3e-3"]``: GA at the class requests' lr 3e-4 needs 800+ steps to lift 200 random
            digits to the retrained model's loss). A group's ``ready.method`` gets its kind's overrides too, so
            readiness simulates the unlearner that will serve its requests.
            Default: class requests stop on forget accuracy ≤ the retrained model's + 0.01; random and group
            requests on forget loss ≥ the retrained model's.
        relearn: Relearning attack after unlearning (and on the retrained model, the floor); its ``seed`` is
            offset by the bench seed, so every seed draws its own relearn set.
        downweight: Loss weight of the revocable set for the down-weighting baseline (``null`` = skip).
        dp: DP-SGD baseline settings (``null`` = skip).
        negtrain: Train the negative-training baseline (the readiness forget term without simulated
            unlearning, same λ / cap / schedule as the group's ready config) for groups with baselines.
        flood: Train the pool-flooding model (:class:`~ready2unlearn.readiness.flooding.PoolFlooding`: the
            revocable rows' loss flooded at the held-out level from a quarter of the epochs) for groups with
            baselines; needs ``data.validation`` in ``train_overrides``.
        calibrate_on_standard: Resolve a group's ``ready.alpha=auto`` on the seed's standard model (what
            ``r2u ready-tune`` does on a user's model) and train readiness from the first epoch; otherwise it
            is measured inside the ready run when readiness starts, as ``r2u train`` does.
        sequential: Sequential-request setting.
        memory: Measure per-step autograd memory of standard and ready training.
        cost: Measure, per seed and group, what readiness training costs against standard training in CPU
            time, α calibration included (interleaved probe, :mod:`~ready2unlearn.readiness.timing`); the
            training-cost target is judged on it.
        mia: Run the membership-inference attacks on every unlearned and retrained model.
        mia_max_test: Test samples MIA-efficacy's SVM uses (its fit is quadratic in this).
        allow_small_requests: Accept random requests under 1% of the training set or 200 samples (only for
            tiny tests: such requests do not resolve a stop target).
        targets: The thresholds the report judges: ``vision`` (issue 12: steps ≤ 1/3 for class requests,
            ≤ 1/2 otherwise, accuracy before ≥ standard − 0.005, training ≤ 1.5×) or ``language`` (issue 13:
            steps ≤ 1/2, accuracy before ≥ standard − 0.02, training ≤ 2×). See
            :data:`~ready2unlearn.report.readiness.TARGET_PROFILES`.
        device: ``auto``, ``cpu``, ``cuda``...
        data_dir: Dataset folder.
    """

    train: str = "digits-mlp"
    train_overrides: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    ready: ReadyConfig = field(default_factory=ReadyConfig)
    groups: list[ReadyGroup] = field(default_factory=list)
    methods: list[MethodConfig] = field(default_factory=lambda: [method_config({"name": "ga"}),
                                                                 method_config({"name": "grad_diff"})])  # fmt: skip
    extra_methods: list[MethodConfig] = field(default_factory=list)
    stop: StopConfig = field(
        default_factory=lambda: StopConfig(rule="forget_acc", target="reference", max_steps=300, eval_every=1)
    )
    stop_per_kind: dict[str, list[str]] = field(default_factory=_default_stop_per_kind)
    method_per_kind: dict[str, list[str]] = field(default_factory=dict)
    relearn: RelearnConfig = field(default_factory=lambda: RelearnConfig(sets=["forget-10"], steps=10, eval_every=2))
    downweight: float | None = 0.1
    dp: DPConfig | None = field(default_factory=DPConfig)
    negtrain: bool = True
    # Omitted from the config's dict while unset, so runs saved before it existed still resume.
    flood: bool = field(default=False, metadata=OMIT_UNSET)
    calibrate_on_standard: bool = False
    sequential: SequentialConfig = field(default_factory=SequentialConfig)
    memory: bool = True
    # Omitted from the config's dict while unset, so runs saved before it existed still resume.
    cost: bool = field(default=True, metadata=OMIT_UNSET)
    mia: bool = True
    mia_max_test: int | None = 2000
    allow_small_requests: bool = False
    # Omitted from the config's dict while unset, so runs saved before it existed still resume.
    targets: str = field(default="vision", metadata=OMIT_UNSET)
    device: str = "auto"
    data_dir: str | None = None

    def __post_init__(self) -> None:
        check(len(self.groups) > 0 and len(self.seeds) > 0, "ready-bench needs at least one group and one seed")
        check(len({g.name for g in self.groups}) == len(self.groups), "group names must be distinct")
        check(len(set(self.seeds)) == len(self.seeds), "seeds must be distinct")
        check(self.targets in TARGET_PROFILES, f"targets must be one of {', '.join(TARGET_PROFILES)}; "
              f"got {self.targets!r}")  # fmt: skip
        check(self.downweight is None or 0 <= self.downweight <= 1, "downweight must be in [0, 1]")
        for name in ("stop_per_kind", "method_per_kind"):
            unknown = sorted(set(getattr(self, name)) - set(KINDS))
            check(not unknown, f"{name} keys must be {', '.join(KINDS)}; got {', '.join(unknown)}")
        for kind in KINDS:
            self.kind_stop(kind)  # each kind's merged stop rule must validate
            for m in [*self.methods, *self.extra_methods]:
                self.kind_method(kind, m)
        for g in self.groups:
            self.group_ready(g)  # each group's merged ready config must validate
        names = [m.name for m in [*self.methods, *self.extra_methods]]
        check(len(set(names)) == len(names), "a method may appear once across methods and extra_methods")
        check(self.sequential.count == 0 or self.sequential.group in {g.name for g in self.groups},
              f"sequential.group {self.sequential.group!r} is not a group")  # fmt: skip

    def group_ready(self, group: ReadyGroup) -> ReadyConfig:
        """The base ``ready`` config, its kind's ``method_per_kind`` overrides on ``method``, then the group's."""
        kind = apply_overrides(to_dict(self.ready), group.ready).get("kind") or "class"
        method = [f"method.{o}" for o in self.method_per_kind.get(kind, [])]
        data = apply_overrides(apply_overrides(to_dict(self.ready), method), group.ready)
        return from_dict(ReadyConfig, data, f"groups.{group.name}.ready.")

    def kind_method(self, kind: str, method: MethodConfig) -> MethodConfig:
        """``method`` with ``method_per_kind[kind]`` applied (samples = random)."""
        kind = "random" if kind == "samples" else kind
        overrides = self.method_per_kind.get(kind, [])
        if not overrides:
            return method
        return from_dict(MethodConfig, apply_overrides(to_dict(method), overrides), f"method_per_kind.{kind}.")

    def kind_stop(self, kind: str) -> StopConfig:
        """The stop rule of a request kind: ``stop`` with ``stop_per_kind[kind]`` applied (samples = random)."""
        kind = "random" if kind == "samples" else kind
        data = apply_overrides(to_dict(self.stop), self.stop_per_kind.get(kind, []))
        return from_dict(StopConfig, data, f"stop_per_kind.{kind}.")


def load_ready_bench_config(preset: str, overrides: list[str] | tuple[str, ...] = ()) -> tuple[ReadyBenchConfig, str]:
    """Resolves a :class:`ReadyBenchConfig` from a shipped preset (``configs/ready_bench``) or YAML file."""
    cfg, path = load_preset(ReadyBenchConfig, "ready_bench", preset, overrides)
    load_train_config(cfg.train, cfg.train_overrides)  # validate the training preset up front
    return cfg, path


def resolve_request(spec: str, train: ArrayDataset, num_classes: int, revocable: RevocableSet,
                    exclude: np.ndarray | None = None) -> DeletionRequest:  # fmt: skip
    """A request from a bench spec; ``random:F@S in pool|stable`` becomes a samples request drawn there.

    With ``exclude`` (rows already forgotten by earlier sequential requests) a random request is drawn from
    the remaining rows of its pool, stable set or (without ``in``) the whole training set.
    """
    base, _, where = spec.partition(" in ")
    request = DeletionRequest.parse(base)
    if not where and exclude is None:
        return request
    check(request.kind == "random", f"'in {where}' only applies to random requests: {spec!r}")
    if not where:
        rows = np.arange(len(train))
    else:
        # With the whole-data pool, "in pool" is the whole training set; "in stable" has nothing to draw from.
        check(not (revocable.whole and where == "stable"), f"{spec!r}: a whole-data pool has no stable set")
        rows = revocable.pool if where == "pool" else revocable.stable
    if exclude is not None:
        rows = np.setdiff1d(rows, exclude)
    k = round(request.fraction * len(train))  # type: ignore[operator]
    check(0 < k <= len(rows), f"{spec!r}: needs {k} rows, the {where or 'remaining'} set has {len(rows)}")
    pos = np.sort(np.random.default_rng(request.seed).choice(rows, size=k, replace=False))
    return DeletionRequest.for_samples(np.asarray(train.ids)[pos])


def check_request_size(spec: str, n_forget: int, n_train: int, allow_small: bool = False) -> None:
    """Refuses a random request too small to resolve a stop target (< 1% of the training set or < 200 samples).

    Raises:
        ConfigError: With the smallest fraction that would do.
    """
    if allow_small or DeletionRequest.parse(spec.partition(" in ")[0]).kind != "random":
        return
    need = max(MIN_RANDOM_SIZE, math.ceil(MIN_RANDOM_FRACTION * n_train))
    check(n_forget >= need, f"request {spec!r} forgets {n_forget} of {n_train} training samples; a random request "
          f"needs ≥ 1% and ≥ {MIN_RANDOM_SIZE} (here {need}, i.e. random:{math.ceil(1000 * need / n_train) / 1000}) "
          "to resolve a stop target (allow_small_requests=true for tiny tests)")  # fmt: skip
