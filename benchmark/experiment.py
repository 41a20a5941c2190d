"""The Python API: ``Experiment(data, models, config).run()`` returns typed run records.

::

    from benchmark import Experiment, register_model
    records = Experiment(data="ml-latest-small", models=["pop", "sasrec"], config={"max_epochs": 5},
                         raw_dir="path/to/ml-latest-small", out="runs").run()
    records[1].metrics["test"]["ndcg@10"]

Every (model, seed) is one ``benchmark.runner.run``: the same training, early stopping,
test pass and run record as ``python -m benchmark run``, each with its own run id and
folder under ``<out>/runs/``. ``config`` holds the same keys as ``--set`` (data preparation,
the training sections, the model's hyper-parameters); a key no model of the experiment has
is refused. A model is a registered name (``benchmark models``), a ``ModelSpec`` from
``register_model``, or a ``(class, config)`` pair, registered under the class's name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from benchmark.errors import BenchmarkError
from benchmark.records import RunRecord, load_records
from benchmark.registry import ModelSpec, get_model, register_model

ModelRef = Union[str, ModelSpec, tuple[type, Any]]
#: called before each run ("start", name, seed), after it ("done", ...) or when a completed
#: record is reused ("reused", ...); the CLI prints from it, the library never does
Progress = Callable[[str, str, int, RunRecord | None], None]


@dataclass
class Experiment:
    """Runs of ``models`` on ``data`` over ``seeds``, with shared ``config`` overrides."""

    data: str
    models: Sequence[ModelRef]
    config: dict[str, Any] = field(default_factory=dict)
    seeds: Sequence[int] = (0,)
    raw_dir: str | Path | None = None
    out: str | Path = "."
    progress: bool = False  # progress bars of training and evaluation
    tags: dict[str, Any] | None = None  # written into every record
    reuse: bool = False  # skip a (model, seed) whose completed record with the same config hash is under ``out``

    def model_names(self) -> list[str]:
        names = []
        for ref in self.models:
            if isinstance(ref, str):
                names.append(get_model(ref).name)
            elif isinstance(ref, ModelSpec):
                names.append(ref.name)
            elif isinstance(ref, tuple) and len(ref) == 2 and isinstance(ref[0], type):
                names.append(register_model(ref[0].__name__.lower(), ref[0], ref[1], replace=True).name)
            else:
                raise BenchmarkError(f"Experiment: a model is a registered name, a ModelSpec or a (class, config) pair; got {ref!r}")
        if not names:
            raise BenchmarkError("Experiment: no models given")
        return names

    def plan(self) -> list[Any]:
        """The ``RunConfig`` of every (model, seed), resolved and checked before anything runs."""
        from benchmark.runner import resolve

        seeds = list(self.seeds)
        if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
            raise BenchmarkError(f"Experiment: seeds must be non-negative integers, got {self.seeds!r}")
        raw_dir = str(self.raw_dir) if self.raw_dir is not None else None
        return [resolve(name, self.data, dict(self.config), seed=seed, raw_dir=raw_dir) for name in self.model_names() for seed in seeds]

    def run(self, on_run: Progress | None = None) -> list[RunRecord]:
        """Run every planned (model, seed) in order; the records in the same order."""
        from benchmark.runner import run

        configs = self.plan()
        done = self._completed() if self.reuse else {}
        records: list[RunRecord] = []
        for cfg in configs:
            key = (cfg.model, cfg.data, cfg.hash, cfg.seed)
            if key in done:
                record = done[key]
                if on_run:
                    on_run("reused", cfg.model, cfg.seed, record)
            else:
                if on_run:
                    on_run("start", cfg.model, cfg.seed, None)
                record = run(cfg, self.out, progress=self.progress, tags=self.tags)
                if on_run:
                    on_run("done", cfg.model, cfg.seed, record)
            records.append(record)
        return records

    def _completed(self) -> dict[tuple[str, str, str, int], RunRecord]:
        folder = Path(self.out) / "runs"
        if not folder.is_dir():
            return {}
        records, _ = load_records(folder)
        return {(r.model, r.dataset, r.config_hash, r.seed): r for r in records}
