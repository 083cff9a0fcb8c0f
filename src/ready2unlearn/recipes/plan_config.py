"""What ``r2u plan`` measures: the strategies, the request stream and the bar a strategy must clear."""

from __future__ import annotations

from dataclasses import dataclass, field

from ready2unlearn.attacks.relearn import RelearnConfig, forget_count
from ready2unlearn.config import apply_overrides, check, from_dict, load_preset
from ready2unlearn.data.sisa import SisaConfig
from ready2unlearn.engine.method import MethodConfig, method_config
from ready2unlearn.engine.stop import StopConfig
from ready2unlearn.readiness.config import ReadyConfig
from ready2unlearn.recipes.train import load_config as load_train_config


def _methods(*names: str) -> list[MethodConfig]:
    return [method_config({"name": n}) for n in names]


@dataclass
class PlanConfig:
    """A strategy plan: every strategy serves the same stream of deletion requests on one model and data.

    Attributes:
        train: Training preset (or YAML path) of every model.
        train_overrides: ``key=value`` overrides of that preset.
        requests: Request counts ``K`` to report (costs, accuracy, verification after the K-th request).
        serve: Requests actually served one after another; a ``K`` above it has its cost extrapolated from
            the served requests' mean (marked as such) and no accuracy.
        expected: The request count to recommend for (default: the largest of ``requests``).
        request_size: Training rows per request (random rows; with ``group_column``, the rows of one group
            value per request).
        group_column: Draw each request as one value of this group column (a user's rows).
        utility_floor: Test accuracy a strategy must keep after the requests to be recommended.
        max_avg_gap: Verification bar for approximate strategies: Avg. Gap to the retrained model after
            the requests (exact strategies pass by construction); every request must also reach its target.
        methods: Fast methods served on the standard model.
        ready: Readiness overrides of the ready model (``kind=random``, a ``revocable`` pool...).
        ready_methods: Methods served on the ready model.
        sisa: SISA layouts to measure (2-3 shard counts are informative).
        stop: Stop rule of the approximate methods, per request (``reference`` = the model retrained without
            every request so far).
        seeds: Seeds; every strategy runs on each.
        relearn: Relearning attack after the last served request; ``null`` = skip.
        mia: Run membership inference at each reported ``K``.
        mia_max_test: Test rows of MIA-efficacy's SVM.
        device: ``auto``, ``cpu``, ``cuda``...
        data_dir: Dataset folder (overrides the training preset's).
    """

    train: str = "digits-mlp"
    train_overrides: list[str] = field(default_factory=list)
    requests: list[int] = field(default_factory=lambda: [1, 10, 100])
    serve: int = 100
    expected: int | None = None
    request_size: int = 10
    group_column: str | None = None
    utility_floor: float | None = None
    max_avg_gap: float = 0.03
    methods: list[MethodConfig] = field(default_factory=lambda: _methods("ga", "grad_diff", "npo"))
    ready: list[str] = field(default_factory=lambda: ["kind=random"])
    ready_methods: list[MethodConfig] = field(default_factory=lambda: _methods("ga", "grad_diff"))
    sisa: list[SisaConfig] = field(
        default_factory=lambda: [SisaConfig(shards=2, slices=2), SisaConfig(shards=5, slices=3)]
    )
    stop: StopConfig = field(
        default_factory=lambda: StopConfig(
            rule="forget_loss", target="reference", max_steps=300, eval_every=2, retain_eval_size=500
        )
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    relearn: RelearnConfig | None = field(
        default_factory=lambda: RelearnConfig(sets=["forget-10"], steps=10, eval_every=2)
    )
    mia: bool = True
    mia_max_test: int | None = 2000
    device: str = "auto"
    data_dir: str | None = None

    def __post_init__(self) -> None:
        check(len(self.requests) > 0 and all(k >= 1 for k in self.requests), "plan.requests must be counts ≥ 1")
        self.requests = sorted(set(self.requests))
        check(self.serve >= 1, f"plan.serve must be at least 1, got {self.serve}")
        check(self.request_size >= 1, f"plan.request_size must be at least 1, got {self.request_size}")
        check(self.expected is None or self.expected >= 1, "plan.expected must be at least 1 or null")
        check(self.max_avg_gap > 0, "plan.max_avg_gap must be positive")
        check(self.utility_floor is None or 0 <= self.utility_floor <= 1, "plan.utility_floor is an accuracy in [0, 1]")
        check(len(self.seeds) > 0 and len(set(self.seeds)) == len(self.seeds), "plan.seeds must be distinct, ≥ 1")
        check(self.stop.rule in ("forget_loss", "forget_acc"), "plan.stop.rule must be forget_loss or forget_acc")
        names = [m.name for m in self.methods] + [m.name for m in self.ready_methods]
        check("retrain" not in names, "retrain is always measured; do not list it among the methods")
        check(len({(s.shards, s.slices) for s in self.sisa}) == len(self.sisa), "plan.sisa layouts must differ")
        if self.relearn is not None and self.group_column is None:
            # Checked now, not after every strategy has served its stream: the attack runs on the deleted rows.
            n_forget = self.horizon * self.request_size
            for spec in self.relearn.sets:
                check(forget_count(spec, n_forget) < n_forget,
                      f"relearn set {spec!r} needs more than the {n_forget} rows that {self.horizon} requests of "
                      f"{self.request_size} delete; serve more requests, or change relearn.sets")  # fmt: skip

    @property
    def served_points(self) -> list[int]:
        """The reported ``K`` that are actually served (the others are extrapolated)."""
        return [k for k in self.requests if k <= self.serve]

    @property
    def horizon(self) -> int:
        """Requests served: up to the largest ``K`` that is served in full (at least one)."""
        return min(self.serve, max(self.requests))

    def ready_config(self, epochs: int) -> ReadyConfig:
        """The ready model's readiness config for a training run of ``epochs`` (``ready`` overrides on the defaults).

        Raises:
            ConfigError: If ``alpha=auto`` could not be measured: it is measured on the model when readiness
                starts, after a quarter of the epochs, so training must last at least 2 epochs.
        """
        rcfg = from_dict(ReadyConfig, apply_overrides({}, self.ready), "plan.ready.").resolved().for_epochs(epochs)
        check(rcfg.alpha != "auto" or rcfg.start_epoch >= 1,
              f"plan.ready: alpha=auto is measured on the model when readiness starts, after a quarter of the "
              f"epochs, but training lasts {epochs} epoch(s): train at least 2 (train_overrides: epochs=2) or "
              "give a number (ready: [..., alpha=0.05])")  # fmt: skip
        return rcfg

    @property
    def target_k(self) -> int:
        """The request count the recommendation is for."""
        return self.expected if self.expected is not None else max(self.requests)


def load_plan_config(preset: str, overrides: list[str] | tuple[str, ...] = ()) -> tuple[PlanConfig, str]:
    """Resolves a :class:`PlanConfig` from a shipped preset (``configs/plan``) or a YAML file plus overrides."""
    cfg, path = load_preset(PlanConfig, "plan", preset, overrides)
    # A bad training preset or readiness config fails now, not after the first models have trained.
    train_cfg, _ = load_train_config(cfg.train, cfg.train_overrides)
    cfg.ready_config(train_cfg.epochs)
    return cfg, path
