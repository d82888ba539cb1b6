"""gptcourse.run_state: saving and restoring a run's state, and the metrics log that survives a kill."""

from __future__ import annotations

import json

import pytest
import torch

from gptcourse import GPT
from gptcourse.checkpoint import read_checkpoint
from gptcourse.distributed import DistInfo
from gptcourse.recipes import TrainConfig
from gptcourse.run_state import MetricsLog, RunState
from gptcourse.tokenizers import CharTokenizer

TOKENIZER = CharTokenizer("abcdefghijklmnopqrstuvwxyz \n")


def _run(tiny_config, **cfg_changes) -> RunState:
    cfg = TrainConfig(device="cpu", dtype="float32", **cfg_changes)
    model_config = tiny_config.replace(vocab_size=TOKENIZER.vocab_size)
    return RunState.create(cfg, model_config, TOKENIZER, GPT(model_config), torch.device("cpu"), DistInfo())


def test_save_and_restore_round_trip(tmp_path, tiny_config):
    run = _run(tiny_config, gradient_accumulation_steps=2)
    assert len(run.generators) == 2  # one batch stream per micro-batch
    run.iter_num, run.best_val_loss, run.elapsed_s = 7, 2.5, 12.0
    run.save(tmp_path / "ckpt.pt")
    draws = [torch.randint(100, (3,), generator=g).tolist() for g in run.generators]
    other = _run(tiny_config, gradient_accumulation_steps=2)
    assert other.restore(read_checkpoint(tmp_path)) == ""  # continues exactly: no note
    assert (other.iter_num, other.best_val_loss, other.elapsed_s) == (7, 2.5, 12.0)
    assert [torch.randint(100, (3,), generator=g).tolist() for g in other.generators] == draws
    for a, b in zip(run.model.parameters(), other.model.parameters()):
        assert torch.equal(a, b)


def test_restore_says_when_batches_cannot_continue_exactly(tmp_path, tiny_config):
    _run(tiny_config, gradient_accumulation_steps=2).save(tmp_path / "ckpt.pt")
    note = _run(tiny_config).restore(read_checkpoint(tmp_path))  # one micro-batch now, two then
    assert "another number of processes or accumulation steps" in note


def test_restore_refuses_another_model_class(tmp_path, tiny_config):
    run = _run(tiny_config)
    run.save(tmp_path / "ckpt.pt")
    state = read_checkpoint(tmp_path)
    state["model_class"] = "mymodule.Bigram"
    with pytest.raises(ValueError, match="holds a mymodule.Bigram, this run trains a gptcourse.model.GPT"):
        _run(tiny_config).restore(state)


def test_metrics_log_keeps_the_rows_before_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"iter": i}) + "\n" for i in range(8)) + '{"iter": 8, "tra')  # a torn line
    log = MetricsLog(path, keep_before=5)
    assert [r["iter"] for r in log.rows] == [0, 1, 2, 3, 4]
    log.append({"iter": 5})
    log.close()
    assert [json.loads(line)["iter"] for line in path.read_text().splitlines()] == [0, 1, 2, 3, 4, 5]
    assert MetricsLog(path).rows == []  # a fresh run starts an empty log
