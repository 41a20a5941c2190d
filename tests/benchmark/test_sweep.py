"""`python -m benchmark sweep`: search-space parsing, trials on validation only, the best
config file, pruning, two workers on one SQLite study, and resuming a sweep killed with SIGKILL."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

import benchmark.sweep as sweep
from benchmark.cli import build_parser, main
from benchmark.cli.common import overrides as _overrides
from benchmark.config import DataConfig, load_config_file
from benchmark.data.datasets import load_dataset
from benchmark.errors import BenchmarkError
from benchmark.model import RecModule
from benchmark.runner import resolve
from benchmark.sweep import SweepOptions, parse_space, run_sweep

ACCURACY = {f"{m}@{k}" for m in ("ndcg", "hr", "recall", "mrr", "map") for k in (5, 10, 20)}


# --- the search space -------------------------------------------------------------------


SPACE = {
    "model": "toy",
    "description": "every kind of parameter",
    "defaults": {"lr": 0.001},
    "params": {
        "lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
        "dropout": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.1},
        "layers": {"type": "int", "low": 1, "high": 4},
        "width": {"type": "int", "low": 16, "high": 256, "log": True},
        "encoder": {"type": "categorical", "choices": ["mlp", "transformer"]},
        "heads": {"type": "categorical", "choices": [1, 2, 4], "when": {"encoder": "transformer"}},
        "ffn": {"type": "int", "low": 64, "high": 512, "step": 64, "when": {"encoder": ["transformer"], "heads": [2, 4]}},
    },
}


def test_space_types_log_and_step_become_optuna_distributions() -> None:
    space = parse_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    values = space.sample(trial, {})
    dist = trial.distributions
    assert dist["lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert dist["dropout"] == FloatDistribution(0.0, 0.5, step=0.1)
    assert dist["layers"] == IntDistribution(1, 4) and dist["width"] == IntDistribution(16, 256, log=True)
    assert dist["encoder"] == CategoricalDistribution(["mlp", "transformer"])
    assert 1e-4 <= values["lr"] <= 1e-1 and round(values["dropout"] * 10) == pytest.approx(values["dropout"] * 10)
    assert isinstance(values["layers"], int)


def test_conditional_params_are_sampled_only_when_their_condition_holds() -> None:
    space = parse_space(SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {"mlp": 0, "transformer": 0, "ffn": 0}
    for _ in range(60):
        trial = study.ask()
        values = space.sample(trial, {})
        study.tell(trial, 0.0)
        seen[values["encoder"]] += 1
        assert ("heads" in values) == (values["encoder"] == "transformer")
        assert ("ffn" in values) == (values["encoder"] == "transformer" and values["heads"] in (2, 4))
        assert set(trial.params) == set(values)  # a skipped parameter is not even suggested
        seen["ffn"] += "ffn" in values
        if "ffn" in values:
            assert values["ffn"] % 64 == 0
    assert seen["mlp"] and seen["transformer"] and seen["ffn"]  # both branches were exercised
    # a condition on a key outside the space reads it from the context (the config's value)
    fixed = space.without({"encoder": "transformer"})
    assert {"heads"} <= set(fixed.sample(study.ask(), {"encoder": "transformer"}))
    assert "heads" not in fixed.sample(study.ask(), {"encoder": "mlp"})


def test_point_and_contains() -> None:
    space = parse_space(SPACE)
    params = {p.name: p for p in space.params}
    assert params["dropout"].contains(0.3) and not params["dropout"].contains(0.25) and not params["dropout"].contains(0.6)
    assert params["heads"].contains(2) and not params["heads"].contains(3) and not params["heads"].contains(2.0)
    assert params["width"].contains(100) and not params["width"].contains(100.5)
    config = {"lr": 0.01, "dropout": 0.1, "layers": 2, "width": 64, "encoder": "mlp", "heads": 2, "ffn": 128}
    assert space.point(config) == {"lr": 0.01, "dropout": 0.1, "layers": 2, "width": 64, "encoder": "mlp"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([1, 2], "expected a mapping"),
        ({"model": "toy", "params": {}, "extra": 1}, "unknown top-level keys"),
        ({"params": {}}, "'model' must be"),
        ({"model": "toy", "params": {"lr": {"type": "double", "low": 0, "high": 1}}}, "type must be one of"),
        ({"model": "toy", "params": {"lr": {"type": "float", "low": 1}}}, "numeric 'low' and 'high'"),
        ({"model": "toy", "params": {"lr": {"type": "float", "low": 1.0, "high": 0.1}}}, "must be below"),
        ({"model": "toy", "params": {"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}}, "log scale needs low > 0"),
        ({"model": "toy", "params": {"lr": {"type": "float", "low": 0.1, "high": 1.0, "log": True, "step": 0.1}}}, "cannot be combined"),
        ({"model": "toy", "params": {"n": {"type": "int", "low": 1, "high": 2.5}}}, "integer low, high"),
        ({"model": "toy", "params": {"n": {"type": "int", "low": 1, "high": 4, "choices": [1]}}}, "unknown keys"),
        ({"model": "toy", "params": {"c": {"type": "categorical", "choices": []}}}, "non-empty list"),
        ({"model": "toy", "params": {"c": {"type": "categorical", "choices": [[1, 2]]}}}, "choices must be"),
        ({"model": "toy", "params": {"d": {"type": "float", "low": 0.0, "high": 0.5, "when": {"enc": "x"}}}}, "declared before it"),
        ({"model": "toy", "params": {"d": {"type": "float", "low": 0.0, "high": 0.5, "when": "enc"}}}, "'when' must map"),
        ({"model": "toy", "params": "lr"}, "'params' must be a mapping"),
    ],
)
def test_bad_spaces_raise_clear_errors(content: object, message: str) -> None:
    with pytest.raises(BenchmarkError, match=message):
        parse_space(content, source="bad.yaml")


def test_space_files_are_checked_against_the_model(tmp_path: Path, tiny_ml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: bpr\nparams:\n  learning_rate: {type: float, low: 0.001, high: 0.1}\n")
    with pytest.raises(BenchmarkError, match=r"\['learning_rate'\] are not config keys of bpr"):
        sweep.load_space("bpr", bad)
    bad.write_text("model: bpr\nparams: {lr: {type: float, low: 0.001, high: 0.1}\n")  # unbalanced brace
    with pytest.raises(BenchmarkError, match="not valid YAML"):
        sweep.load_space("bpr", bad)
    bad.write_text("model: sasrec\nparams: {}\n")
    with pytest.raises(BenchmarkError, match="expected 'bpr'"):
        sweep.load_space("bpr", bad)
    # the default config must be a point of the space (trial 0 is the default config)
    bad.write_text("model: bpr\nparams:\n  embedding_dim: {type: categorical, choices: [16, 32]}\n")
    argv = ["sweep", "--model", "bpr", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--trials", "2", "--space", str(bad), "--out", str(tmp_path)]
    assert main(argv) == 2
    assert "default configuration is outside the search space of bpr (embedding_dim=64)" in capsys.readouterr().err


# --- sweeps on tiny data ----------------------------------------------------------------------


def _options(raw: Path, out: Path, **kw: object) -> SweepOptions:
    base = dict(model="bpr", data="synthetic-ml", trials=3, raw_dir=str(raw), overrides={"max_epochs": 2}, seeds=0, out=out, pruner="none", progress=False)
    return SweepOptions(**{**base, **kw})  # type: ignore[arg-type]


def _study(out: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'runs' / 'sweeps' / name}.db")


def test_three_trial_sweep_validates_only_and_writes_a_config_run_loads(tiny_ml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    in_trial, tested = [False], []
    fit = sweep.fit_validate

    def spy_fit(*args: object, **kwargs: object) -> object:
        in_trial[0] = True
        try:
            return fit(*args, **kwargs)
        finally:
            in_trial[0] = False

    test_step = RecModule.test_step

    def guarded_test_step(self: RecModule, batch: dict, batch_idx: int) -> None:
        assert not in_trial[0], "a sweep trial ran the test pass"
        tested.append(batch_idx)
        test_step(self, batch, batch_idx)

    monkeypatch.setattr(sweep, "fit_validate", spy_fit)
    monkeypatch.setattr(RecModule, "test_step", guarded_test_step)
    summary = run_sweep(_options(tiny_ml, tmp_path, seeds=1))
    assert summary is not None and tested  # the seeded re-run (and only it) ran the test pass

    study = _study(tmp_path, "bpr-synthetic-ml")
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2] and all(t.state == TrialState.COMPLETE for t in trials)
    defaults = sweep.registered_defaults("bpr")
    assert trials[0].user_attrs["default_config"] and trials[0].params == {k: defaults[k] for k in trials[0].params}
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 3
    for t in trials:
        assert set(t.user_attrs["valid"]) == ACCURACY  # validation metrics only: no test, no beyond-accuracy
        assert t.value == t.user_attrs["valid"]["ndcg@10"]  # the best epoch's exact value
        assert t.value == pytest.approx(max(t.intermediate_values.values()), abs=1e-6)  # the pruner saw the curve (float32 logs)
    assert summary["n_complete"] == 3 and summary["best_trial"] == study.best_trial.number
    assert summary["default_valid_ndcg@10"] == trials[0].value and summary["best_valid_ndcg@10"] == study.best_value

    # the best config file: the fixed keys and the best params, loadable by `run --config`
    best_file = tmp_path / "runs" / "sweeps" / "bpr-synthetic-ml.best.yaml"
    assert Path(summary["best_config"]) == best_file
    content = load_config_file(best_file)
    assert content == {"max_epochs": 2, **study.best_params}
    # the seeded re-run is an ordinary run record tagged with the study; same seed, same config => same validation value
    (run_id,) = summary["rerun_run_ids"]
    record = json.loads((tmp_path / "runs" / run_id / "result.json").read_text())
    assert record["tags"] == {"sweep": "bpr-synthetic-ml", "trial": study.best_trial.number}
    assert record["config"] == resolve("bpr", "synthetic-ml", content, seed=0).resolved()
    assert record["metrics"]["valid"]["ndcg@10"] == pytest.approx(study.best_value, abs=1e-9)
    assert summary["test_ndcg@10_mean"] == record["metrics"]["test"]["ndcg@10"]
    args = build_parser().parse_args(["run", "--model", "bpr", "--data", "synthetic-ml", "--config", str(best_file)])
    assert resolve("bpr", "synthetic-ml", _overrides(args)).resolved() == record["config"]  # what `run --config` trains

    # run again: the study already has its trials and re-runs, so nothing is trained
    monkeypatch.setattr(sweep, "fit_validate", lambda *a, **k: pytest.fail("a finished sweep trained again"))
    assert run_sweep(_options(tiny_ml, tmp_path, seeds=1))["rerun_run_ids"] == [run_id]
    # a larger target with a spent --timeout starts no trial and concludes with the best so far
    summary = run_sweep(_options(tiny_ml, tmp_path, trials=5, seeds=1, timeout=0.0))
    assert summary["n_complete"] == 3 and summary["target_trials"] == 5 and summary["rerun_run_ids"] == [run_id]


def test_pruning_stops_bad_trials_during_training(tiny_ml: Path, tmp_path: Path) -> None:
    # nothing reaches NDCG@10 0.99 on this data: every trial is pruned after its first epoch
    options = _options(tiny_ml, tmp_path, trials=2, overrides={"max_epochs": 4}, pruner=optuna.pruners.ThresholdPruner(lower=0.99))
    with pytest.raises(BenchmarkError, match="no complete trial"):
        run_sweep(options)
    trials = _study(tmp_path, "bpr-synthetic-ml").get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED, TrialState.PRUNED]
    assert all(list(t.intermediate_values) == [0] for t in trials)  # stopped after epoch 1 of 4


def _sweep_argv(raw: Path, out: Path, trials: int) -> list[str]:
    return ["sweep", "--model", "bpr", "--data", "synthetic-ml", "--raw-dir", str(raw), "--trials", str(trials), "--seeds", "0",
            "--pruner", "none", "--max-epochs", "2", "--study", "s", "--out", str(out), "--no-progress"]  # fmt: skip


def _fork_worker(argv: list[str], log: Path, pause_after_report: tuple[int, float] | None = None) -> multiprocessing.Process:
    """Another sweep process through the CLI entry point; forked, so it skips the imports' start-up cost.

    ``pause_after_report=(trial, seconds)``: the worker sleeps after each epoch that trial
    reports, so a test can act at that point however fast the machine trains."""

    def work() -> None:
        torch.set_num_threads(1)  # as in DataLoader workers: no OpenMP pool inherited across fork
        if pause_after_report is not None:
            report = optuna.trial.Trial.report

            def report_then_pause(trial: optuna.trial.Trial, value: float, step: int) -> None:
                report(trial, value, step)
                if trial.number == pause_after_report[0]:
                    time.sleep(pause_after_report[1])

            optuna.trial.Trial.report = report_then_pause  # this forked process only
        os.environ.pop("BENCHMARK_RUN_ID", None)
        with open(log, "w") as fh:
            os.dup2(fh.fileno(), 1)
            os.dup2(fh.fileno(), 2)
            code = main(argv)
            sys.stdout.flush()
        os._exit(code)

    proc = multiprocessing.get_context("fork").Process(target=work)
    proc.start()
    return proc


def _trials_in(db: Path) -> list[tuple[str, bool, int]]:
    """(state, names its worker, epochs reported) per trial, straight from the SQLite file (no Optuna while polling)."""
    if not db.is_file():
        return []
    query = ("SELECT t.state, EXISTS (SELECT 1 FROM trial_user_attributes a WHERE a.trial_id = t.trial_id AND a.key = 'worker_pid'), "
             "(SELECT COUNT(*) FROM trial_intermediate_values v WHERE v.trial_id = t.trial_id) FROM trials t ORDER BY t.number")  # fmt: skip
    try:
        with sqlite3.connect(db, timeout=30) as con:
            return [(state, bool(named), epochs) for state, named, epochs in con.execute(query)]
    except sqlite3.OperationalError:  # tables not created yet
        return []


def _wait_for(proc: multiprocessing.Process, db: Path, log: Path, condition: Callable[[list[tuple[str, bool, int]]], bool]) -> None:
    deadline = time.monotonic() + 240
    while not condition(_trials_in(db)):
        if not proc.is_alive():
            pytest.fail(f"the worker ended early:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the worker did not get there in time")
        time.sleep(0.05)


@pytest.fixture
def prepared(tiny_ml: Path) -> Path:
    load_dataset("synthetic-ml", DataConfig(), str(tiny_ml))  # the cache exists before two processes read it
    return tiny_ml


def test_two_workers_share_one_sqlite_study(prepared: Path, tmp_path: Path) -> None:
    db, log = tmp_path / "runs" / "sweeps" / "s.db", tmp_path / "other.log"
    other = _fork_worker(_sweep_argv(prepared, tmp_path, 5), log, pause_after_report=(0, 3.0))  # this process joins in time
    _wait_for(other, db, log, lambda trials: any(t[:2] == ("RUNNING", True) for t in trials))  # the other worker is inside trial 0
    assert main(_sweep_argv(prepared, tmp_path, 5)) == 0
    other.join(timeout=300)
    assert other.exitcode == 0, log.read_text()[-3000:]
    trials = optuna.load_study(study_name="s", storage=f"sqlite:///{db}").get_trials()
    assert [t.number for t in trials] == list(range(5)) and all(t.state == TrialState.COMPLETE for t in trials)
    per_worker = {pid: sum(t.user_attrs["worker_pid"] == pid for t in trials) for pid in (other.pid, os.getpid())}
    assert sum(per_worker.values()) == 5 and min(per_worker.values()) >= 1, per_worker  # both ran trials, none twice
    assert sum(t.user_attrs.get("default_config", False) for t in trials) == 1


def test_sweep_killed_with_sigkill_resumes_to_n_trials(prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, log = tmp_path / "runs" / "sweeps" / "s.db", tmp_path / "victim.log"
    victim = _fork_worker(_sweep_argv(prepared, tmp_path, 4), log, pause_after_report=(1, 600.0))
    # kill it in the middle of its second trial's training (after epoch 1 of 2), which it leaves RUNNING
    _wait_for(victim, db, log, lambda trials: len(trials) > 1 and trials[0][0] == "COMPLETE" and trials[1] == ("RUNNING", True, 1))
    os.kill(victim.pid, signal.SIGKILL)
    victim.join()
    assert [t[0] for t in _trials_in(db)] == ["COMPLETE", "RUNNING"]
    assert main(_sweep_argv(prepared, tmp_path, 4)) == 0
    trials = optuna.load_study(study_name="s", storage=f"sqlite:///{db}").get_trials()
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == 4 and states.count(TrialState.FAIL) == 1 and TrialState.RUNNING not in states
    assert trials[1].state == TrialState.FAIL
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == 1]  # the killed trial's params ran again
    assert retry.params == trials[1].params and retry.state == TrialState.COMPLETE and retry.number == 2
    printed = capsys.readouterr().out
    assert "trials [1] were left RUNNING" in printed and "sweep s: 4 complete, 0 pruned, 1 failed" in printed


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_trials_that_never_named_their_worker_are_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker killed between creating a trial and naming itself on it leaves an anonymous RUNNING trial."""
    monkeypatch.setattr(sweep, "ORPHAN_SECONDS", 0.01)
    study = optuna.create_study(study_name="o", storage=sweep._storage(f"sqlite:///{tmp_path / 'o.db'}"), direction="maximize")
    named = study.ask()
    named.set_user_attr("worker_host", socket.gethostname())
    named.set_user_attr("worker_pid", os.getpid())  # alive: left alone
    orphan = study.ask({"lr": FloatDistribution(1e-4, 1e-1, log=True)})
    assert sweep.fail_dead_trials(study) == [orphan.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {named.number: TrialState.RUNNING, orphan.number: TrialState.FAIL, 2: TrialState.WAITING}  # queued again
    assert study.get_trials()[2].params == {"lr": orphan.params["lr"]}


def test_sweep_rejects_bad_options(tiny_ml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sweep", "--model", "bpr", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--out", str(tmp_path)]
    assert main([*argv, "--trials", "0"]) == 2
    assert main([*argv, "--trials", "2", "--set", "no_such_key=1"]) == 2
    err = capsys.readouterr().err
    assert "--trials must be at least 1" in err and "unknown config key 'no_such_key'" in err


@pytest.mark.slow
def test_ddp_sweep_trains_every_trial_on_two_processes(prepared: Path, tmp_path: Path) -> None:
    """`sweep --devices 2 --strategy ddp`: both processes run the command, rank 0 drives the study."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    env.pop("BENCHMARK_RUN_ID", None)
    argv = [sys.executable, "-m", "benchmark", *_sweep_argv(prepared, tmp_path, 2), "--seeds", "1", "--devices", "2", "--strategy", "ddp", "--accelerator", "cpu"]
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("COMPLETE valid ndcg@10") == 2 and done.stdout.count("sweep s: 2 complete") == 1  # rank 0 reports
    trials = _study(tmp_path, "s").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("runs/*/result.json")]  # one re-run, one record
    assert record["tags"] == {"sweep": "s", "trial": max(trials, key=lambda t: t.value).number}
    assert record["config"]["train_config"]["devices"] == 2 and record["config"]["train_config"]["strategy"] == "ddp"
    assert record["metrics"]["valid"]["ndcg@10"] == pytest.approx(max(t.value for t in trials), abs=1e-9)
