"""gptcourse.trained: the lessons' trained model is trained once, reused while it matches its recipe, resumed
when unfinished, and trained afresh (the old run kept aside) when the recipe changed."""

from __future__ import annotations

import json

import pytest
import torch

from gptcourse import recipes, trained
from gptcourse.checkpoint import load_checkpoint
from gptcourse.recipes import Recipe
from gptcourse.train import train
from gptcourse.trained import trained_model

SHORT = Recipe(recipes.RECIPES["tiny"].model, recipes.RECIPES["tiny"].train.replace(
    max_iters=6, lr_decay_iters=6, warmup_iters=2, eval_interval=3, eval_iters=2), "tests")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GPTCOURSE_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("GPTCOURSE_FAST", "1")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setitem(recipes.RECIPES, "short", SHORT)


def _no_training(*args, **kwargs):
    pytest.fail("trained again instead of loading")


def test_trains_once_then_loads(tmp_path, monkeypatch):
    model, tok = trained_model("short")
    assert (_run_dir(tmp_path) / "ckpt.pt").is_file()  # fast mode: never the real run's folder
    monkeypatch.setattr(trained, "train", _no_training)
    again, tok2 = trained_model("short")
    assert tok2 == tok and not again.training
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="unknown preset"):
        trained_model("huge")


def test_reporting_settings_do_not_make_a_run_stale(tmp_path, monkeypatch):
    """Lesson 08's short run evaluates more often than trained_model's: it is still the same model."""
    trained_model("short")
    other = SHORT.train.replace(eval_interval=2, eval_iters=3, log_interval=5, device="cpu")
    monkeypatch.setitem(recipes.RECIPES, "short", Recipe(SHORT.model, other))
    monkeypatch.setattr(trained, "train", _no_training)
    trained_model("short")


def _run_dir(tmp_path):
    return tmp_path / "runs" / "short-fast"


def _expect_moved_aside_and_retrained(tmp_path, capsys, before: bytes):
    model, _ = trained_model("short")
    message = capsys.readouterr().out.splitlines()
    assert len(message) == 1 and "other settings than the preset's" in message[0], message
    stale = list((tmp_path / "runs").glob("short-fast.stale-*"))
    assert len(stale) == 1 and (stale[0] / "ckpt.pt").read_bytes() == before  # kept, untouched
    ckpt = load_checkpoint(_run_dir(tmp_path))
    assert model.config == ckpt.model_config == recipes.RECIPES["short"].model
    assert ckpt.iter_num == recipes.RECIPES["short"].train.max_iters


@pytest.mark.parametrize("change", [
    {"model": SHORT.model.replace(n_embd=16)},
    {"train": SHORT.train.replace(learning_rate=1e-2)},
], ids=["model", "train"])
def test_a_changed_recipe_moves_the_old_run_aside_and_trains_afresh(tmp_path, monkeypatch, capsys, change):
    trained_model("short")
    before = (_run_dir(tmp_path) / "ckpt.pt").read_bytes()
    capsys.readouterr()
    monkeypatch.setitem(recipes.RECIPES, "short", Recipe(change.get("model", SHORT.model),
                                                         change.get("train", SHORT.train)))
    _expect_moved_aside_and_retrained(tmp_path, capsys, before)


def test_a_run_with_another_tokenizer_is_stale(tmp_path, capsys):
    """As if the course's text had changed: the stored character vocabulary is not the dataset's."""
    trained_model("short")
    path = _run_dir(tmp_path) / "ckpt.pt"
    state = torch.load(path, weights_only=True)
    state["tokenizer"]["chars"] = state["tokenizer"]["chars"][:-1] + "\u00e9"
    torch.save(state, path)
    before = path.read_bytes()
    capsys.readouterr()
    _expect_moved_aside_and_retrained(tmp_path, capsys, before)


def test_an_unfinished_matching_run_is_resumed(tmp_path, monkeypatch):
    out = _run_dir(tmp_path)
    cfg = SHORT.train.replace(max_iters=6, eval_interval=6, eval_iters=5, out_dir=str(out))  # as trained_model
    uninterrupted = train(SHORT.model, cfg.replace(out_dir=str(tmp_path / "whole")), progress=False)

    class Stop(Exception):
        pass

    def stop_after_step_3(row):
        if row["iter"] == 3:
            raise Stop

    with pytest.raises(Stop):  # a lesson killed after the checkpoint of step 3
        train(SHORT.model, cfg.replace(eval_interval=3), callbacks=[stop_after_step_3], progress=False)
    assert load_checkpoint(out).iter_num == 3
    calls = []
    monkeypatch.setattr(trained, "train", lambda *a, **k: calls.append(k["resume"]) or train(*a, **k))
    model, _ = trained_model("short")
    assert calls == [True] and load_checkpoint(out).iter_num == 6
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == list(range(6))
    for a, b in zip(model.parameters(), uninterrupted.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
