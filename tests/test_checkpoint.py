"""Checkpoints: round trip, safe loading, clear errors, atomic writes, and exact resume after a real kill."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gptcourse.checkpoint import (
    TEMP_PREFIX,
    check_compatible,
    checkpoint_path,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from gptcourse.data import load_dataset
from gptcourse.recipes import RECIPES
from gptcourse.tokenizers import CharTokenizer, GPT2Tokenizer
from gptcourse.train import train

from .save_pause import pause_saves

ROOT = Path(__file__).resolve().parent.parent
TEXT = "".join(f"{i} little pigs went to market, said the {i % 7}th goose.\n" for i in range(400))
TIMING = ("ms_per_iter", "tokens_per_s", "elapsed_s")  # the only fields allowed to differ between two runs


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTCOURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short run for the tests that only read its checkpoint: (result, model config, dataset, its folder)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPTCOURSE_CACHE", str(run.parent / "cache"))
        mp.delenv("WORLD_SIZE", raising=False)
        dataset = load_dataset("char", text=TEXT)
        model_cfg = RECIPES["tiny"].model.replace(vocab_size=dataset.tokenizer.vocab_size, block_size=16)
        cfg = RECIPES["tiny"].train.replace(max_iters=10, eval_interval=5, out_dir=str(run))
        return train(model_cfg, cfg, dataset=dataset, progress=False), model_cfg, dataset, run


def test_round_trip(trained):
    result, model_cfg, dataset, run = trained
    ckpt = load_checkpoint(run)
    assert ckpt.iter_num == 10 and ckpt.model_config == model_cfg and ckpt.tokenizer == dataset.tokenizer
    assert ckpt.train_config.max_iters == 10 and not ckpt.model.training
    assert ckpt.best_val_loss == min(r["val_loss"] for r in result.history if "val_loss" in r)
    x = torch.randint(dataset.tokenizer.vocab_size, (2, 16))
    torch.testing.assert_close(ckpt.model(x), result.model(x), rtol=0, atol=0)
    assert load_checkpoint(run / "ckpt.pt").iter_num == 10  # the file or its folder


def test_holds_only_safe_types(trained):
    state = torch.load(trained[3] / "ckpt.pt", weights_only=True)  # refuses pickled objects
    assert {"model", "optimizer", "iter_num", "rng", "model_config", "train_config", "tokenizer"} <= set(state)
    assert state["optimizer"]["state"]  # Adam's moments travel with the weights


def test_truncated_and_foreign_files_are_refused_clearly(tmp_path, trained):
    good = (trained[3] / "ckpt.pt").read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="truncated or damaged"):
        read_checkpoint(bad)
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="truncated or damaged"):
        load_checkpoint(bad)
    torch.save({"weights": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match="not a gptcourse checkpoint"):
        read_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        read_checkpoint(tmp_path / "nowhere")


def test_mismatched_config_or_tokenizer_is_named(trained):
    _, model_cfg, dataset, run = trained
    state = read_checkpoint(run)
    check_compatible(state, model_cfg, dataset.tokenizer)  # the same: fine
    with pytest.raises(ValueError, match=r"n_embd: checkpoint 32, this run 64"):
        check_compatible(state, model_cfg.replace(n_embd=64), dataset.tokenizer)
    with pytest.raises(ValueError, match="another tokenizer"):
        check_compatible(state, model_cfg, GPT2Tokenizer())
    with pytest.raises(ValueError, match="another tokenizer"):
        check_compatible(state, model_cfg, CharTokenizer(dataset.tokenizer.chars[:-1] + ["~"]))


def test_a_failed_save_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"iter_num": 1, "w": torch.ones(3)})

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"iter_num": 2, "w": torch.zeros(3)})
    assert torch.load(path, weights_only=True)["iter_num"] == 1
    assert not list(tmp_path.glob(TEMP_PREFIX + "*"))


def test_checkpoint_path():
    assert checkpoint_path("runs/x") == Path("runs/x/ckpt.pt")
    assert checkpoint_path("runs/x/best.pt") == Path("runs/x/best.pt")


# ---- killing a real training process -------------------------------------------------------------------

KILL_ARGS = ["--preset", "tiny", "--max_iters", "40", "--lr_decay_iters", "40", "--eval_interval", "5",
             "--dropout", "0.1"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "GPTCOURSE_CACHE": str(tmp_path.parent / "shared-cache"), "PYTHONUNBUFFERED": "1",
           "OMP_NUM_THREADS": "1", **extra}  # one thread: tiny models, a shared machine
    env.pop("WORLD_SIZE", None)
    return env


def _train_cli(out_dir: Path, env: dict, *more: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gptcourse", "train", *KILL_ARGS, "--out_dir", str(out_dir), *more]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _rows(out_dir: Path) -> list[dict]:
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"training ended before the moment to kill it:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for the training process")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def reference_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = _train_cli(out, _env(out.parent))
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, output
    rows = _rows(out)
    assert [r["iter"] for r in rows] == list(range(40))
    return rows


@pytest.mark.slow
def test_killed_at_a_random_moment_resumes_exactly(tmp_path, reference_rows):
    seed = random.randrange(10**6)
    delay = random.Random(seed).uniform(0.0, 1.2)
    out = tmp_path / "run"
    # each save pauses 0.3 s, so the run lasts a few seconds on any machine and the kill lands mid-run
    proc = _train_cli(out, pause_saves(_env(tmp_path), tmp_path / "pause", 0.3))
    _wait_for(lambda: (out / "ckpt.pt").exists(), proc)
    time.sleep(delay)
    assert proc.poll() is None, "the run ended before the kill: lengthen it"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    killed_at = load_checkpoint(out).iter_num  # whatever moment it died, the checkpoint loads
    assert 5 <= killed_at < 40 and killed_at % 5 == 0, f"random seed {seed}"
    resumed = _train_cli(out, _env(tmp_path), "--resume")
    output, _ = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, output
    assert _rows(out) == reference_rows, f"kill after {delay:.2f}s (random seed {seed}), checkpoint at {killed_at}"


@pytest.mark.slow
def test_killed_during_a_save_keeps_the_last_checkpoint_and_resumes_exactly(tmp_path, reference_rows):
    out = tmp_path / "run"
    proc = _train_cli(out, pause_saves(_env(tmp_path), tmp_path / "pause", 2))
    # the first save completes; the second one is caught between writing its temp file and the rename
    _wait_for(lambda: (out / "ckpt.pt").exists() and any(out.glob(TEMP_PREFIX + "*")), proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert any(out.glob(TEMP_PREFIX + "*"))  # the half-made save is still there...
    assert load_checkpoint(out).iter_num == 5  # ...and the last good checkpoint is whole
    resumed = _train_cli(out, _env(tmp_path), "--resume")
    output, _ = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, output
    assert not any(out.glob(TEMP_PREFIX + "*"))
    assert _rows(out) == reference_rows
