"""The benchmark command: JSON with the promised fields, from real (tiny) runs; bad input refused."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gptcourse.bench import flops_per_token, peak_flops

ROOT = Path(__file__).resolve().parent.parent


def test_flops_per_token_and_peaks():
    assert flops_per_token(1000, n_layer=2, n_embd=8, block_size=4) == 6 * 1000 + 12 * 2 * 8 * 4
    assert peak_flops(torch.device("cpu")) is None


@pytest.mark.slow
def test_bench_reports_speed_and_loss_against_time(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "gptcourse", "bench", "--preset", "tiny", "--runs", "2", "--iters", "3",
           "--warmup", "1", "--train", "--max_iters", "6", "--eval_interval", "3", "--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert json.loads(proc.stdout) == report
    speed = report["speed"]
    assert len(speed["ms_per_iter"]["runs"]) == 2
    assert speed["ms_per_iter"]["min"] <= speed["ms_per_iter"]["median"] <= speed["ms_per_iter"]["max"]
    assert speed["tokens_per_s"]["median"] > 0 and speed["peak_memory_mb"] > 0
    assert speed["tokens_per_iter"] == 8 * 32
    train = report["train"]
    assert len(train["curves"]) == 2 and [p["iter"] for p in train["curves"][0]] == [3, 6]
    assert train["final_val_loss"]["median"] < 4.5 and train["wall_s"]["median"] > 0


def test_bench_refuses_bad_input():
    bad = subprocess.run([sys.executable, "-m", "gptcourse", "bench", "--preset", "gpt9"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "unknown preset 'gpt9'" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "gptcourse", "bench", "--preset", "tiny", "--n_layers", "3"],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "n_layer" in bad.stderr


@pytest.mark.slow
def test_gpu_script_runs_tiny_on_cpu():
    proc = subprocess.run(["bash", "scripts/gpu_benchmark.sh", "--tiny"], capture_output=True, text=True,
                          cwd=ROOT, timeout=600, env={**__import__("os").environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"tokens_per_s"' in proc.stdout and '"final_val_loss"' in proc.stdout
