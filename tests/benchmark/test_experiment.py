"""The Python API (Experiment, register_model) and the run folder rules: a fresh id per run,
reruns that never mix (refuse, resume, start clean), records that say when a run did not
finish, and checkpoints that are read as data only."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from baselines.bpr import BPR, BPRConfig
from benchmark import Experiment, RunRecord, register_model
from benchmark.cli import main
from benchmark.errors import BenchmarkError
from benchmark.registry import MODELS
from benchmark.runner import resolve, run

ROOT = Path(__file__).resolve().parents[2]


def test_the_readme_example_runs(tiny_ml: Path, tmp_path: Path) -> None:
    """README, "Python API": two models, typed records, their own folders."""
    records = Experiment(data="synthetic-ml", models=["pop", "bpr"], config={"max_epochs": 2}, raw_dir=tiny_ml, out=tmp_path / "runs").run()
    assert [r.model for r in records] == ["pop", "bpr"] and all(isinstance(r, RunRecord) and r.completed for r in records)
    assert 0 < records[1].metrics["test"]["ndcg@10"] <= 1
    assert len({r.run_id for r in records}) == 2 and all((r.path / "result.json").is_file() for r in records)
    assert RunRecord.read(records[1].path).metrics == records[1].metrics  # what was written is what was returned


def test_two_runs_in_one_process_get_their_own_ids(tiny_ml: Path, tmp_path: Path) -> None:
    cfg = resolve("pop", "synthetic-ml", {}, raw_dir=str(tiny_ml))
    first, second = run(cfg, tmp_path, progress=False), run(cfg, tmp_path, progress=False)
    assert first.run_id != second.run_id and "BENCHMARK_RUN_ID" not in os.environ
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted([first.run_id, second.run_id])


@dataclass
class TwiceBPRConfig(BPRConfig):
    scale: float = 1.0


class TwiceBPR(BPR):
    """BPR whose scores are multiplied by a constant: the same ranking."""

    def score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return super().score(batch) * self.config.scale


def test_register_your_own_model_or_pass_it_directly(tiny_ml: Path, tmp_path: Path) -> None:
    try:
        spec = register_model("twice-bpr", TwiceBPR, TwiceBPRConfig, train_defaults={"max_epochs": 2})
        with pytest.raises(BenchmarkError, match="taken"):
            register_model("twice-bpr", TwiceBPR, TwiceBPRConfig)
        assert main(["run", "--model", "twice-bpr", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml), "--out", str(tmp_path / "a"),
                     "--no-progress", "--set", "scale=3.0"]) == 0  # fmt: skip
        (folder,) = (tmp_path / "a" / "runs").iterdir()
        cli_record = RunRecord.read(folder)
        assert cli_record.config["model_config"]["scale"] == 3.0 and cli_record.config["train_config"]["max_epochs"] == 2
        api = Experiment(data="synthetic-ml", models=[spec, (TwiceBPR, TwiceBPRConfig(scale=2.0))], raw_dir=tiny_ml,
                         out=tmp_path / "b").run()  # fmt: skip
        assert [r.model for r in api] == ["twice-bpr", "twicebpr"]
        assert api[0].metrics["test"] == pytest.approx(cli_record.metrics["test"])  # scale changes no ranking
        with pytest.raises(BenchmarkError, match="not a RecModule"):
            register_model("x", dict, TwiceBPRConfig)
        with pytest.raises(BenchmarkError, match="unknown config key 'scal'"):
            Experiment(data="synthetic-ml", models=[spec], config={"scal": 1}, raw_dir=tiny_ml).plan()
    finally:
        MODELS.pop("twice-bpr", None)
        MODELS.pop("twicebpr", None)


def test_a_model_name_typo_suggests_the_name() -> None:
    with pytest.raises(BenchmarkError, match=r"unknown model 'sasrc' \(did you mean 'sasrec'\?\)"):
        Experiment(data="synthetic-ml", models=["sasrc"]).plan()


# --- reruns with the same id ---------------------------------------------------------------

SLOW_RUN = """
import sys, time
from baselines.bpr import BPR, BPRConfig
from benchmark.cli import main
from benchmark.registry import register_model

class SlowBPR(BPR):
    def training_step(self, batch, batch_idx):
        time.sleep(0.05)
        return super().training_step(batch, batch_idx)

register_model("slow-bpr", SlowBPR, BPRConfig(batch_size=512))
sys.exit(main(sys.argv[1:]))
"""


def _slow_run(script: Path, tiny_ml: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "BENCHMARK_RUN_ID": "job-42", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, str(script), "run", "--model", "slow-bpr", "--data", "synthetic-ml", "--raw-dir", str(tiny_ml),
            "--out", str(out), "--no-progress", "--max-epochs", "6", "--set", "patience=20", *extra]  # fmt: skip
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.stdout.read() if process.stdout else "the run ended early"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_a_killed_run_is_refused_then_resumed_from_its_last_checkpoint(tiny_ml: Path, tmp_path: Path) -> None:
    script = tmp_path / "slow.py"
    script.write_text(SLOW_RUN)
    out = tmp_path / "out"
    folder = out / "runs" / "job-42"
    killed = _slow_run(script, tiny_ml, out)
    _wait_for(folder / "checkpoints" / "last.ckpt", killed)
    time.sleep(0.3)  # inside a later epoch
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    left = json.loads((folder / "result.json").read_text())
    assert left["status"] == "running"  # the record says the run did not finish
    epochs_done = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] + 1

    refused = _slow_run(script, tiny_ml, out)  # the same id again, without --resume
    output, _ = refused.communicate(timeout=240)
    assert refused.returncode == 2 and "--resume" in output and "Nothing was changed" in output
    assert json.loads((folder / "result.json").read_text()) == left

    resumed = _slow_run(script, tiny_ml, out, "--resume")
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    record = RunRecord.read(folder)
    assert record.completed and record.resumed["previous_status"] == "running"
    assert [p["epoch"] for p in record.valid_curve] == list(range(1, 7))  # one curve: the killed epochs and the resumed ones
    assert record.timings["epochs"] == 6 and epochs_done < 6
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]  # no best-v1.ckpt
    assert len(list((folder / "tb").iterdir())) >= 1 and not (folder / "tb" / "version_1").exists()


def test_a_taken_run_folder_is_refused_and_resume_without_checkpoint_starts_clean(tiny_ml: Path, tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("BENCHMARK_RUN_ID", "requeued")
    folder = tmp_path / "runs" / "requeued"
    (folder / "tb").mkdir(parents=True)
    (folder / "tb" / "events.out.tfevents.old").write_text("a killed run's log")
    cfg = resolve("bpr", "synthetic-ml", {"max_epochs": 1}, raw_dir=str(tiny_ml))
    with pytest.raises(BenchmarkError, match="exists"):
        run(cfg, tmp_path, progress=False)
    assert (folder / "tb" / "events.out.tfevents.old").is_file()  # refused: untouched
    record = run(cfg, tmp_path, progress=False, resume=True)  # nothing to resume from: a clean start
    assert record.completed and record.resumed is None and not (folder / "tb" / "events.out.tfevents.old").exists()
    with pytest.raises(BenchmarkError, match="completed already"):
        run(cfg, tmp_path, progress=False, resume=True)


def test_a_failed_run_says_so_in_its_record(tiny_ml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args, **kwargs):  # noqa: ANN002, ANN003
        raise RuntimeError("the disk is full")

    monkeypatch.setattr("benchmark.runner._test", broken)
    cfg = resolve("pop", "synthetic-ml", {}, raw_dir=str(tiny_ml))
    with pytest.raises(RuntimeError, match="disk is full"):
        run(cfg, tmp_path, progress=False)
    (folder,) = (tmp_path / "runs").iterdir()
    record = json.loads((folder / "result.json").read_text())
    assert record["status"] == "failed" and "the disk is full" in record["error"] and record["finished"]


# --- checkpoints are data, never code --------------------------------------------------------


class _RunsACommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - what a crafted pickle does on load
        return (os.system, (f"touch {self.marker}",))


class _Custom:
    pass


@pytest.mark.parametrize("payload", ["command", "custom object"])
def test_a_crafted_checkpoint_is_refused_without_running(payload: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    content = {"benchmark_run": {"model": "bpr"}, "state_dict": {}, "x": _RunsACommand(marker) if payload == "command" else _Custom()}
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as fh:
        pickle.dump(content, fh)
    assert main(["evaluate", "--checkpoint", str(path)]) == 2
    assert not marker.exists()
    assert "never as code" in capsys.readouterr().err
