"""`run --print-config`: the printed YAML, fed back through `--config`, resolves to the same run
config (every key, every section), and prints the same YAML again."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmark.cli import build_parser, main
from benchmark.cli.run import _run_overrides
from benchmark.config import SECTIONS, DataConfig, load_config_file
from benchmark.runner import resolve

CASES = {
    "bpr": ["--set", "lr=0.005", "--set", "ks=[5, 10]", "--set", "split=temporal", "--set", "min_rating=3.5", "--logger", "csv"],
    "sasrec": ["--set", "max_seq_length=12", "--set", "stream_recency_half_life=null", "--set", "text_encoder=null", "--seed", "3"],
    "llm4rec": ["--max-epochs", "3", "--set", "eval_item_group=null", "--set", "rag_top_r=2"],
}


@pytest.mark.parametrize("model", list(CASES))
def test_print_config_round_trips_through_config(model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "--model", model, "--data", "synthetic-ml", *CASES[model]]
    assert main([*argv, "--print-config"]) == 0
    printed = capsys.readouterr().out
    path = tmp_path / "config.yaml"
    path.write_text(printed)
    content = load_config_file(path)
    # one line per key of the model, every training section and the data preparation
    expected = {f for f in type(resolve(model, "synthetic-ml", {}).model_config).__dataclass_fields__}
    expected |= {f for section in SECTIONS.values() for f in section.__dataclass_fields__} | set(DataConfig.__dataclass_fields__)
    assert set(content) == expected and len(content) == sum(1 for line in printed.splitlines() if line and not line.startswith("#"))

    seed = int(CASES[model][CASES[model].index("--seed") + 1]) if "--seed" in CASES[model] else 0
    given = resolve(model, "synthetic-ml", {}, seed=seed)
    direct = resolve(model, "synthetic-ml", _run_overrides(build_parser().parse_args(argv)), seed=seed)
    again = resolve(model, "synthetic-ml", content, seed=seed)
    assert again.resolved() == direct.resolved() and again.hash == direct.hash
    assert direct.resolved() != given.resolved()  # the case changes something
    # and through the command line: --config FILE prints the same YAML back
    assert main(["run", "--model", model, "--data", "synthetic-ml", "--config", str(path), "--seed", str(seed), "--print-config"]) == 0
    assert capsys.readouterr().out == printed
    assert yaml.safe_load(printed) == content
