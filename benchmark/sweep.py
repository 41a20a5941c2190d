"""`python -m benchmark sweep`: Optuna hyper-parameter search over a model's YAML space.

The search space of model M is ``sweeps/M.yaml`` (one per registered model, shared
across datasets)::

    model: bpr
    description: one line
    defaults:   {lr: 0.001, ...}   # the registered defaults (config dataclass + train_defaults)
    params:
      lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
      embedding_dim: {type: categorical, choices: [32, 64, 128]}
      n_layers: {type: int, low: 1, high: 4}
      dropout: {type: float, low: 0.0, high: 0.5, step: 0.1, when: {encoder: transformer}}

Keys are the ``--set`` keys of benchmark/config.py. ``when`` maps config keys to a value
(or a list of values): the parameter is sampled only when every one holds; otherwise the
key keeps its default. A key given with ``--set`` is fixed and leaves the search.

A trial trains with early stopping and is scored by its best validation NDCG@10; trials
never run the test pass. Trial 0 is the default configuration (``study.enqueue_trial``),
so the summary compares the best trial with it. Bad trials are pruned from their
validation curve (Optuna's Lightning integration, ``valid/ndcg@10``). The study lives in
an RDB storage (SQLite ``<out>/runs/sweeps/<study>.db`` by default, any SQLAlchemy URL
otherwise), so any number of workers may share it, and a killed sweep resumes where it
stopped: trials a dead worker left RUNNING are failed (at once when the worker ran on
this host, by heartbeat otherwise) and retried once with the same parameters. ``--trials
N`` is the study's target: workers stop once N trials are finished (complete or pruned).

Once N trials are finished, the best configuration is written to
``<out>/runs/sweeps/<study>.best.yaml`` (a file ``run --config`` accepts) and re-run
with ``--seeds`` seeds through the ordinary ``runner.run`` (run records tagged
``{"sweep": study}``); the study remembers which seeds were re-run, so a resumed or
second worker does not repeat them.

With ``--devices``/``--num-nodes`` above one, every process runs this command (Lightning
launches the local processes; SLURM or torchrun launch them on clusters): rank 0 drives
the study and broadcasts each trial's parameters, and all ranks train it together.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from benchmark.config import SECTIONS, DataConfig, TrainConfig, config_keys
from benchmark.errors import BenchmarkError
from benchmark.files import atomic_write_text
from benchmark.records import RecordError, RunRecord
from benchmark.registry import get_model

if TYPE_CHECKING:
    import optuna

    from benchmark.runner import RunConfig

SWEEPS_DIR = Path(__file__).resolve().parent.parent / "sweeps"
OBJECTIVE = "ndcg@10"  # validation metric the trials maximise (the runner's early-stopping monitor)
DEVICE_KEYS = ("accelerator", "devices", "num_nodes", "strategy")  # where a run happens, not what it is
HEARTBEAT_SECONDS = 10  # RUNNING trials of workers on other hosts are failed after GRACE_SECONDS of silence
GRACE_SECONDS = 60
ORPHAN_SECONDS = 5.0  # a live worker names itself on a new trial within milliseconds
MAX_CONSECUTIVE_FAILURES = 3
# errors that fail one trial (a configuration the model rejects, out of memory), not the sweep
FAILURES: tuple[type[Exception], ...] = (ValueError, RuntimeError)
PARAM_TYPES = ("float", "int", "categorical")


# --- the search space -------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One searched config key."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # key -> allowed values

    def active(self, context: dict[str, Any]) -> bool:
        """True when every ``when`` condition holds for the values in ``context``."""
        return all(key in context and context[key] in allowed for key, allowed in self.when.items())

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.name, list(self.choices))

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a point of this parameter's range (on its step grid)."""
        if self.type == "categorical":
            return any(value == c and type(value) is type(c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.type == "int" and not isinstance(value, int):
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step is None:
            return True
        steps = (value - self.low) / self.step
        return math.isclose(steps, round(steps), abs_tol=1e-9)


@dataclass(frozen=True)
class SearchSpace:
    model: str
    description: str
    defaults: dict[str, Any]
    params: tuple[Param, ...]
    source: str = "<memory>"

    def sample(self, trial: optuna.trial.BaseTrial, context: dict[str, Any]) -> dict[str, Any]:
        """Suggest every active parameter, in file order; ``context`` holds the other keys' values."""
        values: dict[str, Any] = {}
        for param in self.params:
            if param.active({**context, **values}):
                values[param.name] = param.suggest(trial)
        return values

    def without(self, fixed: dict[str, Any]) -> SearchSpace:
        """The space with the keys in ``fixed`` no longer searched."""
        return dataclasses.replace(self, params=tuple(p for p in self.params if p.name not in fixed))

    def point(self, context: dict[str, Any]) -> dict[str, Any]:
        """The values ``context`` (a full configuration) gives the active parameters."""
        values: dict[str, Any] = {}
        for param in self.params:
            if param.active({**context, **values}):
                values[param.name] = context[param.name]
        return values


def space_path(model: str) -> Path:
    return SWEEPS_DIR / f"{model}.yaml"


def load_space(model: str, path: str | Path | None = None) -> SearchSpace:
    """Read and check the search space of ``model`` (default ``sweeps/<model>.yaml``)."""
    spec = get_model(model)
    path = Path(path) if path else space_path(model)
    if not path.is_file():
        raise BenchmarkError(f"no search space for {model!r}: {path} not found (one YAML per model under sweeps/)")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BenchmarkError(f"search space {path} is not valid YAML: {exc}") from None
    space = parse_space(content, source=str(path), valid_keys=set(config_keys(DataConfig, *SECTIONS.values(), type(spec.config))))
    if space.model != model:
        raise BenchmarkError(f"{path}: model is {space.model!r}, expected {model!r}")
    return space


def parse_space(content: Any, *, source: str = "<memory>", valid_keys: set[str] | None = None) -> SearchSpace:
    """Check a search-space mapping (the YAML's content) and build the ``SearchSpace``."""

    def fail(message: str) -> BenchmarkError:
        return BenchmarkError(f"search space {source}: {message}")

    if not isinstance(content, dict):
        raise fail("expected a mapping with keys model, description, defaults, params")
    unknown = set(content) - {"model", "description", "defaults", "params"}
    if unknown:
        raise fail(f"unknown top-level keys {sorted(unknown)} (expected model, description, defaults, params)")
    model, description = content.get("model"), content.get("description", "")
    if not isinstance(model, str) or not model:
        raise fail("'model' must be a registered model name")
    if not isinstance(description, str):
        raise fail("'description' must be one line of text")
    defaults = content.get("defaults") or {}
    params_in = content.get("params") or {}
    if not isinstance(defaults, dict):
        raise fail("'defaults' must be a mapping of config key: value")
    if not isinstance(params_in, dict):
        raise fail("'params' must be a mapping of config key: {type: ..., ...}")
    if valid_keys is not None:
        for what, keys in (("defaults", defaults), ("params", params_in)):
            bad = sorted(k for k in keys if k not in valid_keys)
            if bad:
                raise fail(f"{what}: {bad} are not config keys of {model} (valid --set keys: {', '.join(sorted(valid_keys))})")
    params: list[Param] = []
    for name, spec in params_in.items():
        params.append(_parse_param(str(name), spec, [p.name for p in params], valid_keys, fail))
    return SearchSpace(model, description, dict(defaults), tuple(params), source)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_param(name: str, spec: Any, earlier: list[str], valid_keys: set[str] | None, fail: Callable[[str], BenchmarkError]) -> Param:
    if not isinstance(spec, dict):
        raise fail(f"param {name!r}: expected a mapping like {{type: float, low: 0.0001, high: 0.1, log: true}}")
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise fail(f"param {name!r}: type must be one of {list(PARAM_TYPES)}, got {kind!r}")
    allowed = {"type", "when"} | ({"choices"} if kind == "categorical" else {"low", "high", "log", "step"})
    unknown = set(spec) - allowed
    if unknown:
        raise fail(f"param {name!r}: unknown keys {sorted(unknown)} for type {kind} (allowed: {sorted(allowed)})")
    when = _parse_when(name, spec.get("when"), earlier, valid_keys, fail)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise fail(f"param {name!r}: categorical needs a non-empty list 'choices'")
        for choice in choices:
            if choice is not None and not isinstance(choice, (bool, int, float, str)):
                raise fail(f"param {name!r}: choices must be numbers, strings, booleans or null, got {choice!r}")
        return Param(name, kind, choices=tuple(choices), when=when)
    low, high, log, step = spec.get("low"), spec.get("high"), spec.get("log", False), spec.get("step")
    if not (_number(low) and _number(high)):
        raise fail(f"param {name!r}: {kind} needs numeric 'low' and 'high'")
    if kind == "int" and not (isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int))):
        raise fail(f"param {name!r}: int needs integer low, high and step")
    if low >= high:
        raise fail(f"param {name!r}: low ({low}) must be below high ({high})")
    if not isinstance(log, bool):
        raise fail(f"param {name!r}: 'log' must be true or false")
    if log and low <= 0:
        raise fail(f"param {name!r}: a log scale needs low > 0")
    if step is not None and (not _number(step) or step <= 0):
        raise fail(f"param {name!r}: 'step' must be a positive number")
    if log and step is not None and step != 1:
        raise fail(f"param {name!r}: 'log' and 'step' cannot be combined (Optuna samples one or the other)")
    if kind == "float":
        low, high = float(low), float(high)
        step = float(step) if step is not None else None
    return Param(name, kind, low=low, high=high, log=log, step=step if not log else None, when=when)


def _parse_when(name: str, when: Any, earlier: list[str], valid_keys: set[str] | None, fail: Callable[[str], BenchmarkError]) -> dict[str, tuple[Any, ...]]:
    if when is None:
        return {}
    if not isinstance(when, dict) or not when:
        raise fail(f"param {name!r}: 'when' must map config keys to a value or a list of values, e.g. {{encoder: transformer}}")
    out: dict[str, tuple[Any, ...]] = {}
    for key, value in when.items():
        if key == name:
            raise fail(f"param {name!r}: 'when' cannot refer to the parameter itself")
        if valid_keys is not None and key not in valid_keys:
            raise fail(f"param {name!r}: 'when' refers to {key!r}, which is not a config key")
        if valid_keys is None and key not in earlier:
            raise fail(f"param {name!r}: 'when' refers to {key!r}, which is not a parameter declared before it")
        out[key] = tuple(value) if isinstance(value, list) else (value,)
    return out


def registered_defaults(model: str) -> dict[str, Any]:
    """The registry's defaults of ``model``: its config dataclass fields plus ``train_defaults``."""
    spec = get_model(model)
    return {**dataclasses.asdict(spec.config), **spec.train_defaults}


# --- one trial: fit with early stopping, validation only --------------------------------


def fit_validate(cfg: RunConfig, *, callbacks: list[Any] = (), progress: bool = True) -> list[dict[str, float]]:  # type: ignore[assignment]
    """Train ``cfg`` with early stopping on validation NDCG@10 and return every epoch's
    validation metrics. The test split is never evaluated (no ``trainer.test``, no test evaluator)."""
    import lightning.pytorch as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelSummary

    from benchmark.runner import MONITOR, Pipeline, ValidationCurve

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    pipeline = Pipeline.build(cfg, progress=progress)
    curve = ValidationCurve()
    stop = EarlyStopping(monitor=f"valid/{MONITOR}", mode="max", patience=cfg.train_config.loop.patience)
    trainer = pipeline.trainer(callbacks=[stop, curve, *callbacks], progress=progress)
    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, ModelSummary)]  # once per trial is noise
    trainer.fit(pipeline.model, datamodule=pipeline.dm)
    if not curve.points:  # no validation ran inside fit (e.g. a counting model's single epoch)
        trainer.validate(pipeline.model, datamodule=pipeline.dm, verbose=False)
        return [dict(pipeline.model.evaluation_results["valid"])]
    return [{k: v for k, v in point.items() if k != "epoch"} for point in curve.points]


# --- the study ------------------------------------------------------------------------------


@dataclass
class SweepOptions:
    model: str
    data: str
    trials: int
    raw_dir: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # fixed keys (--config, --set, device flags)
    study: str | None = None
    storage: str | None = None
    timeout: float | None = None
    seeds: int = 3
    seed: int = 0
    out: str | Path = "."
    pruner: str | optuna.pruners.BasePruner = "median"  # median | none | any Optuna pruner (Python API)
    prune_warmup: int = 5  # epochs before a trial can be pruned
    progress: bool = True
    space_file: str | None = None
    #: receives one line per event (a trial finished, trials re-queued, the seeded re-runs);
    #: the library never prints, the CLI passes print
    report: Callable[[str], None] = field(default=lambda line: None, repr=False)

    @property
    def study_name(self) -> str:
        return self.study or f"{self.model}-{self.data}"

    @property
    def sweeps_dir(self) -> Path:
        return Path(self.out) / "runs" / "sweeps"

    def storage_url(self) -> str:
        if self.storage is None:
            return f"sqlite:///{(self.sweeps_dir / f'{self.study_name}.db').resolve()}"
        if "://" not in self.storage:  # a bare path: an SQLite file
            return f"sqlite:///{Path(self.storage).resolve()}"
        return self.storage


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # heartbeats and retries are "experimental" in Optuna's terms: said once here, not per trial
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # under DDP the integration's check_pruned() replays the epochs rank 0 already reported
    warnings.filterwarnings("ignore", message="The reported value is ignored because")


def _retry() -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """Re-enqueue a failed trial's parameters once (Optuna >= 4.9 renamed the callback)."""
    from optuna import storages

    retry = getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or storages.RetryFailedTrialCallback
    return retry(max_retry=1)


def _storage(url: str) -> optuna.storages.RDBStorage:
    import inspect

    import optuna
    from optuna.storages import RDBStorage

    _quiet_optuna()
    engine: dict[str, Any] = {}
    if url.startswith("sqlite") and ":///" in url:
        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": {"timeout": 120}}  # several workers: wait for SQLite's write lock
    stale = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in inspect.signature(RDBStorage).parameters else "failed_trial_callback"
    try:
        return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS, **{stale: _retry()})
    except (ImportError, ValueError, optuna.exceptions.StorageInternalError) as exc:
        raise BenchmarkError(f"cannot open the sweep storage {url!r}: {exc}") from None


def _pruner(options: SweepOptions) -> optuna.pruners.BasePruner:
    import optuna

    if isinstance(options.pruner, optuna.pruners.BasePruner):
        return options.pruner
    if options.pruner == "none":
        return optuna.pruners.NopPruner()
    if options.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=options.prune_warmup)
    raise BenchmarkError(f"unknown pruner {options.pruner!r}; choose median or none")


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def fail_dead_trials(study: optuna.Study, report: Callable[[str], None] = lambda line: None) -> list[int]:
    """Fail (and retry once, same parameters) the RUNNING trials whose worker is gone: those of a
    worker on this host whose process no longer exists (e.g. a sweep killed with SIGKILL), and
    those that still name no worker ORPHAN_SECONDS after being seen (their worker died between
    creating the trial and naming itself). Other hosts' dead workers are caught by the
    heartbeat after GRACE_SECONDS."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    host = socket.gethostname()
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    dead = [
        t for t in running
        if t.user_attrs.get("worker_host") == host and t.user_attrs.get("worker_pid") not in (None, os.getpid()) and not _alive(t.user_attrs["worker_pid"])
    ]  # fmt: skip
    unnamed = [t._trial_id for t in running if "worker_pid" not in t.user_attrs]
    if unnamed:
        time.sleep(ORPHAN_SECONDS)
        still = {t._trial_id: t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if "worker_pid" not in t.user_attrs}
        dead += [still[i] for i in unnamed if i in still]
    failed = []
    for trial in dead:
        try:
            if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                failed.append(trial.number)
                _retry()(study, study._storage.get_trial(trial._trial_id))
        except UpdateFinishedTrialError:
            pass  # another worker failed it first
    if failed:
        report(f"trials {failed} were left RUNNING by a worker that is gone: failed, and queued to run again")
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Ranks:
    """Rank 0 drives the study; under DDP it broadcasts what the other ranks need."""

    def __init__(self, fabric: Any | None) -> None:
        self.fabric = fabric
        self.rank = fabric.global_rank if fabric is not None else 0

    @property
    def zero(self) -> bool:
        return self.rank == 0

    def share(self, obj: Any) -> Any:
        return self.fabric.broadcast(obj, src=0) if self.fabric is not None else obj

    def barrier(self) -> None:
        if self.fabric is not None:
            self.fabric.barrier()


def _launch(train: TrainConfig) -> _Ranks:
    """Start the other processes of a multi-device sweep (Lightning Fabric: its launcher re-runs this
    command for local ranks; SLURM/torchrun ranks are found in the environment) and join their group."""
    if train.hardware.devices * train.hardware.num_nodes <= 1:
        return _Ranks(None)
    from lightning.fabric import Fabric

    fabric = Fabric(accelerator=train.hardware.accelerator, devices=train.hardware.devices, num_nodes=train.hardware.num_nodes, strategy="ddp")
    fabric.launch()
    return _Ranks(fabric)


def run_sweep(options: SweepOptions) -> dict[str, Any] | None:
    """Run (or resume) the sweep; return the summary on rank 0 (None on other ranks)."""
    import optuna

    from benchmark.data.datasets import load_dataset
    from benchmark.runner import resolve

    if options.trials < 1:
        raise BenchmarkError(f"--trials must be at least 1, got {options.trials}")
    if options.seeds < 0:
        raise BenchmarkError(f"--seeds must be 0 or more, got {options.seeds}")
    full_space = load_space(options.model, options.space_file)
    fixed = dict(options.overrides)
    space = full_space.without(fixed)
    pinned = [f"{p.name}={fixed[p.name]!r}" for p in full_space.params if p.name in fixed]
    base = resolve(options.model, options.data, fixed, seed=options.seed, raw_dir=options.raw_dir)
    context = _flat_config(base)
    default_point = space.point(context)
    outside = [f"{p.name}={default_point[p.name]!r}" for p in space.params if p.name in default_point and not p.contains(default_point[p.name])]
    if outside:
        raise BenchmarkError(f"the default configuration is outside the search space of {options.model} ({', '.join(outside)}); widen {full_space.source}")
    target = options.trials if space.params else 1  # nothing to search: the default config is the sweep

    ranks = _launch(base.train_config)
    if ranks.zero and pinned:
        options.report(f"fixed by --set/--config, not searched: {', '.join(pinned)}")
    if ranks.zero and not space.params:
        options.report(f"{full_space.source} leaves nothing to search: the default config is the only trial")
    if ranks.zero:
        load_dataset(options.data, base.data_config, options.raw_dir)  # prepare the cache once, before other ranks read it
    ranks.barrier()
    _quiet_optuna()
    url = options.storage_url()
    if ranks.zero:
        study = optuna.create_study(
            study_name=options.study_name, storage=_storage(url), direction="maximize", load_if_exists=True, pruner=_pruner(options),
        )  # fmt: skip
        # A distinct sampler seed per (re)start: a resumed sweep does not replay the first
        # worker's random start-up configurations; a fresh single worker uses --seed itself.
        study.sampler = optuna.samplers.TPESampler(seed=options.seed + len(study.get_trials(deepcopy=False)))
    ranks.barrier()
    if not ranks.zero:
        study = optuna.load_study(study_name=options.study_name, storage=_storage(url))

    started = time.perf_counter()
    worker_trials: list[int] = []
    timed_out = False
    if ranks.zero:
        timed_out = _drive(study, space, context, fixed, target, options, ranks, worker_trials)
        ranks.share(("stop",))
    else:
        _follow(study, fixed, options, ranks)
    timed_out = ranks.share(timed_out)
    reached = ranks.share(len(_finished(study)) >= target)
    if not (reached or timed_out):
        if ranks.zero:  # other workers are still finishing the study's last trials
            options.report(f"study {options.study_name}: {len(_finished(study))}/{target} trials finished, the rest are running "
                           "in other workers; the last worker writes the best config and re-runs it")  # fmt: skip
        return None
    return _conclude(study, space, fixed, options, ranks, worker_trials, started, target)


def _flat_config(cfg: RunConfig) -> dict[str, Any]:
    return {**dataclasses.asdict(cfg.data_config), **cfg.train_config.flat(), **dataclasses.asdict(cfg.model_config)}


def _trial_config(options: SweepOptions, fixed: dict[str, Any], params: dict[str, Any]) -> RunConfig:
    from benchmark.runner import resolve

    return resolve(options.model, options.data, {**fixed, **params}, seed=options.seed, raw_dir=options.raw_dir)


def _score(epochs: list[dict[str, float]]) -> tuple[float, int]:
    """(best validation NDCG@10, its 1-based epoch)."""
    values = [e[OBJECTIVE] for e in epochs]
    best = max(range(len(values)), key=values.__getitem__)
    return values[best], best + 1


def _drive(
    study: optuna.Study, space: SearchSpace, context: dict[str, Any], fixed: dict[str, Any], target: int,
    options: SweepOptions, ranks: _Ranks, mine: list[int],
) -> bool:  # fmt: skip
    """Rank 0: run trials until the study has ``target`` finished or running trials; True if
    the timeout stopped it. The numbers of this worker's trials are appended to ``mine``."""
    import optuna
    from optuna.trial import TrialState
    from optuna_integration import PyTorchLightningPruningCallback

    from benchmark.runner import MONITOR

    if not study.get_trials(deepcopy=False):
        study.enqueue_trial(space.point(context), user_attrs={"default_config": True}, skip_if_exists=True)
    started = time.perf_counter()

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker_host", socket.gethostname())
        trial.set_user_attr("worker_pid", os.getpid())
        params = space.sample(trial, context)
        ranks.share(("trial", trial._trial_id, params))
        cfg = _trial_config(options, fixed, params)
        pruning = PyTorchLightningPruningCallback(trial, monitor=f"valid/{MONITOR}")
        clock = time.perf_counter()
        try:
            epochs = fit_validate(cfg, callbacks=[pruning], progress=options.progress)
        except FAILURES as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            raise
        pruning.check_pruned()  # under DDP the callback only stops training; this raises TrialPruned
        value, best_epoch = _score(epochs)
        trial.set_user_attr("valid", epochs[best_epoch - 1])
        trial.set_user_attr("best_epoch", best_epoch)
        trial.set_user_attr("epochs", len(epochs))
        trial.set_user_attr("seconds", round(time.perf_counter() - clock, 2))
        return value

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        mine.append(trial.number)
        options.report(trial_line(study, trial, target))

    failures = 0
    while True:
        optuna.storages.fail_stale_trials(study)
        fail_dead_trials(study, options.report)
        finished = len(_finished(study))
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if finished + running >= target:
            return False
        if options.timeout is not None and time.perf_counter() - started >= options.timeout:
            options.report(f"timeout of {options.timeout:g} s reached: no new trials")
            return True
        study.optimize(objective, n_trials=1, callbacks=[report], catch=FAILURES, gc_after_trial=True)
        last = study.trials[mine[-1]] if mine else None
        failures = failures + 1 if last is not None and last.state == TrialState.FAIL else 0
        if failures >= MAX_CONSECUTIVE_FAILURES:
            raise BenchmarkError(f"{failures} trials in a row failed (last: {last.user_attrs.get('error', 'see the log')}); check the search space")


def _follow(study: optuna.Study, fixed: dict[str, Any], options: SweepOptions, ranks: _Ranks) -> None:
    """Ranks > 0: train every trial rank 0 starts, until it says stop."""
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback

    from benchmark.runner import MONITOR

    while True:
        message = ranks.share(None)
        if message[0] == "stop":
            return
        _, trial_id, params = message
        trial = optuna.trial.Trial(study, trial_id)
        pruning = PyTorchLightningPruningCallback(trial, monitor=f"valid/{MONITOR}")
        try:
            fit_validate(_trial_config(options, fixed, params), callbacks=[pruning], progress=False)
        except FAILURES:
            pass  # rank 0 fails the trial the same way and records it


def trial_line(study: optuna.Study, trial: optuna.trial.FrozenTrial, target: int) -> str:
    """One line on a finished trial: its state and figure, the best so far, the count."""
    from optuna.trial import TrialState

    finished = len(_finished(study))
    state = trial.state.name
    if trial.state == TrialState.COMPLETE:
        what = f"valid {OBJECTIVE} {trial.value:.4f} (best epoch {trial.user_attrs.get('best_epoch')}/{trial.user_attrs.get('epochs')})"
    elif trial.state == TrialState.PRUNED:
        last = max(trial.intermediate_values) if trial.intermediate_values else None
        what = f"pruned after epoch {last + 1}, valid {OBJECTIVE} {trial.intermediate_values[last]:.4f}" if last is not None else "pruned"
    else:
        what = f"failed: {trial.user_attrs.get('error', 'see the warning above')[:200]}"
    try:
        best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
    except ValueError:
        best = "no complete trial yet"
    seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete and trial.datetime_start else float("nan")
    default = " [default config]" if trial.user_attrs.get("default_config") else ""
    params = " ".join(f"{k}={short_value(v)}" for k, v in trial.params.items())
    return f"trial {trial.number:>3} {state:<8} {what}; {best}; {seconds:.1f} s; {finished}/{target} finished{default} | {params}"


def short_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --- after the search: best config, seeded re-runs, summary ---------------------------------


def _conclude(
    study: optuna.Study, space: SearchSpace, fixed: dict[str, Any], options: SweepOptions, ranks: _Ranks,
    worker_trials: list[int], started: float, target: int,
) -> dict[str, Any] | None:  # fmt: skip
    from optuna.trial import TrialState

    from benchmark.runner import new_run_id, run

    plan = None
    if ranks.zero:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            raise BenchmarkError(f"study {options.study_name} has no complete trial (all pruned or failed)")
        best = study.best_trial
        done = study.user_attrs.get("reruns", {}).get(str(best.number), {})
        seeds = [options.seed + i for i in range(options.seeds)]
        plan = (best.number, dict(best.params), [s for s in seeds if str(s) not in done])
    best_number, best_params, todo = ranks.share(plan)
    records = []
    for seed in todo:
        os.environ.pop("BENCHMARK_RUN_ID", None)
        cfg = _trial_config(options, fixed, best_params)
        cfg.seed = seed
        os.environ["BENCHMARK_RUN_ID"] = ranks.share(new_run_id(cfg) if ranks.zero else None)
        try:
            record = run(cfg, options.out, progress=options.progress, tags={"sweep": options.study_name, "trial": best_number})
        finally:
            os.environ.pop("BENCHMARK_RUN_ID", None)
        if ranks.zero:
            reruns = study.user_attrs.get("reruns", {})
            reruns.setdefault(str(best_number), {})[str(seed)] = record.run_id
            study.set_user_attr("reruns", reruns)
            records.append(record)
            options.report(f"re-run seed {seed}: test {OBJECTIVE} {record.metrics['test'][OBJECTIVE]:.4f} (run {record.run_id})")
    if not ranks.zero:
        return None
    best_file = write_best_config(study, fixed, options)
    return summarize(study, options, best_file, worker_trials, time.perf_counter() - started, target)


def write_best_config(study: optuna.Study, fixed: dict[str, Any], options: SweepOptions) -> Path:
    """``<out>/runs/sweeps/<study>.best.yaml``: the fixed keys and the best trial's parameters
    (device keys left out: they say where to run, not what), a flat file for ``run --config``."""
    best = study.best_trial
    content = {**{k: v for k, v in fixed.items() if k not in DEVICE_KEYS}, **best.params}
    path = options.sweeps_dir / f"{options.study_name}.best.yaml"
    header = (
        f"# best configuration of sweep {options.study_name} ({options.model} on {options.data}): trial {best.number}, "
        f"validation {OBJECTIVE} {best.value:.6f}\n# python -m benchmark run --model {options.model} --data {options.data} --config {path}\n"
    )
    return atomic_write_text(path, header + yaml.safe_dump(content, sort_keys=False))


def summarize(study: optuna.Study, options: SweepOptions, best_file: Path, worker_trials: list[int], seconds: float, target: int) -> dict[str, Any]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    best = study.best_trial
    default = next((t for t in trials if t.user_attrs.get("default_config") and t.state == TrialState.COMPLETE), None)
    run_ids = study.user_attrs.get("reruns", {}).get(str(best.number), {})
    tests = [_load_record(options.out, run_id) for run_id in run_ids.values()]
    tests = [r.metrics["test"] for r in tests if r is not None]
    summary: dict[str, Any] = {
        "study": options.study_name,
        "storage": options.storage_url(),
        "model": options.model,
        "dataset": options.data,
        "target_trials": target,
        "n_complete": sum(t.state == TrialState.COMPLETE for t in trials),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "n_failed": sum(t.state == TrialState.FAIL for t in trials),
        "worker_trials": len(worker_trials),
        "best_trial": best.number,
        f"best_valid_{OBJECTIVE}": best.value,
        "best_params": dict(best.params),
        f"default_valid_{OBJECTIVE}": default.value if default else None,
        "best_config": str(best_file),
        "rerun_seeds": [int(s) for s in run_ids],
        "rerun_run_ids": list(run_ids.values()),
        "wall_seconds": round(seconds, 1),
    }
    for name in ("ndcg@10", "hr@10", "recall@10", "mrr@10"):
        values = [t[name] for t in tests if name in t]
        if values:
            summary[f"test_{name}_mean"] = statistics.fmean(values)
            summary[f"test_{name}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return summary


def _load_record(out: str | Path, run_id: str) -> RunRecord | None:
    try:
        return RunRecord.read(Path(out) / "runs" / run_id)
    except RecordError:
        return None
