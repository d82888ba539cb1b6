"""Data-parallel training: torchrun's variables, launch checks, and real 2-process runs on CPU with Gloo."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gptcourse.checkpoint import load_checkpoint
from gptcourse.cli import main
from gptcourse.distributed import DistInfo, LaunchError, backend_for, check_world, detect, share_global_batch
from gptcourse.recipes import RECIPES
from gptcourse.train_cli import parse_train_args

from .save_pause import pause_saves

ROOT = Path(__file__).resolve().parent.parent
RUN_ARGS = ["--preset", "tiny", "--max_iters", "30", "--lr_decay_iters", "30", "--eval_interval", "5",
            "--gradient_accumulation_steps", "2"]
TIMING = ("ms_per_iter", "tokens_per_s", "elapsed_s")
# 1 process summing two micro-batch gradients and 2 processes whose gradients DDP all-reduces see the
# same batches from the same weights; only the order of float32 additions may differ, a few units in
# the last place (~1e-7 relative) per step. Over 10 steps that stays far below this bound (observed: 0).
LOSS_TOLERANCE = 1e-5
DDP_TIMEOUT = 120  # seconds: a stuck run fails the test instead of hanging it


def test_detect_single_process():
    assert detect({}) == DistInfo() and not DistInfo().enabled and DistInfo().is_master
    assert detect({"WORLD_SIZE": "1"}) == DistInfo()


def test_detect_torchrun_variables():
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1234"}
    info = detect(env)
    assert (info.rank, info.world_size, info.local_rank, info.enabled, info.is_master) == (3, 4, 1, True, False)


@pytest.mark.parametrize("missing", ["MASTER_ADDR", "MASTER_PORT", "RANK"])
def test_a_missing_rendezvous_variable_is_one_clear_sentence(missing):
    env = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
    del env[missing]
    with pytest.raises(LaunchError, match=f"{missing} is not set: start it with `torchrun"):
        detect(env)


def test_world_size_must_divide_the_accumulation_steps():
    assert check_world(1, 3) == 3 and check_world(2, 4) == 2 and check_world(4, 4) == 1
    with pytest.raises(LaunchError, match="multiple of 2"):
        check_world(2, 1)
    with pytest.raises(LaunchError, match="multiple of 4"):
        check_world(4, 6)


def test_the_global_batch_is_shared_among_processes():
    assert share_global_batch(16, 1, 1) == (16, 1) and share_global_batch(16, 4, 2) == (16, 4)  # already shared
    assert share_global_batch(16, 1, 2) == (8, 2) and share_global_batch(12, 3, 4) == (3, 12)  # same 16, same 36
    with pytest.raises(LaunchError, match="cannot be shared evenly among 4 processes"):
        share_global_batch(10, 1, 4)


def test_torchrun_defaults_keep_the_presets_global_batch():
    """Without --gradient_accumulation_steps, N processes split the preset's batch; given, it is kept."""
    preset = RECIPES["shakespeare-cpu"].train
    args = parse_train_args([], world_size=2)
    cfg = args.train_config
    assert cfg.batch_size * cfg.gradient_accumulation_steps == preset.batch_size * preset.gradient_accumulation_steps
    assert check_world(2, cfg.gradient_accumulation_steps) == 1 and "2 processes share" in args.note
    assert parse_train_args([], world_size=1).note == ""
    kept = parse_train_args(["--gradient_accumulation_steps", "3"], world_size=2).train_config
    assert (kept.batch_size, kept.gradient_accumulation_steps) == (preset.batch_size, 3)  # refused by train


def test_exit_worker_flushes_and_skips_the_interpreters_shutdown():
    code = ("import atexit, sys\n"
            "from gptcourse.distributed import exit_worker\n"
            "atexit.register(lambda: print('shutdown ran'))\n"
            "print('out', end=''); sys.stderr.write('err')\n"
            "exit_worker(3)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out", "err")  # pipes are flushed; no shutdown


def test_backend_follows_the_device():
    import torch

    assert backend_for(torch.device("cpu")) == "gloo" and backend_for(torch.device("cuda", 0)) == "nccl"


def test_misconfigured_launch_exits_2(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert main(["train", "--preset", "tiny", "--out_dir", "unused"]) == 2
    assert "MASTER_ADDR" in capsys.readouterr().err
    for name, value in {"RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(name, value)
    assert main(["train", "--preset", "tiny", "--out_dir", "unused", "--gradient_accumulation_steps", "3"]) == 2
    assert "--gradient_accumulation_steps to a multiple of 2" in capsys.readouterr().err


# ---- real processes ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "GPTCOURSE_CACHE": str(tmp / "cache"), "PYTHONUNBUFFERED": "1",
           "OMP_NUM_THREADS": "1", **extra}  # one thread: tiny models, a shared machine
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def _torchrun(out_dir: Path, env: dict, *more: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "gptcourse", "train", *RUN_ARGS, "--out_dir", str(out_dir), *more]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen) -> str:
    try:
        output, _ = proc.communicate(timeout=DDP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the run did not end within {DDP_TIMEOUT}s")
    return output


def _rows(out_dir: Path) -> list[dict]:
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    proc = _torchrun(tmp / "run", _env(tmp))
    output = _finish(proc)
    assert proc.returncode == 0, output
    assert output.count("training ") == 1  # rank 0 alone talks
    return tmp, _rows(tmp / "run")


@pytest.mark.slow
def test_two_processes_take_the_same_steps_as_one_with_accumulation(two_process_run):
    tmp, rows2 = two_process_run
    proc = subprocess.run(
        [sys.executable, "-m", "gptcourse", "train", *RUN_ARGS, "--max_iters", "10", "--out_dir", str(tmp / "one")],
        cwd=ROOT, env=_env(tmp), capture_output=True, text=True, timeout=DDP_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    rows1 = _rows(tmp / "one")
    assert [r["iter"] for r in rows1] == list(range(10))
    for a, b in zip(rows1, rows2[:10]):
        assert abs(a["train_loss"] - b["train_loss"]) <= LOSS_TOLERANCE, (a, b)
    assert rows1[-1]["train_loss"] < rows1[0]["train_loss"]


@pytest.mark.slow
def test_killing_one_rank_stops_the_run_and_resume_continues(tmp_path, two_process_run):
    _, reference = two_process_run
    out = tmp_path / "run"
    # each save pauses 0.5 s, so the run lasts a few seconds on any machine and a kill lands mid-run
    proc = _torchrun(out, pause_saves(_env(tmp_path), tmp_path / "pause", 0.5))
    deadline = time.monotonic() + DDP_TIMEOUT
    while not (out / "ckpt.pt").exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    seed = random.randrange(10**6)
    time.sleep(random.Random(seed).uniform(0.0, 1.0))
    assert proc.poll() is None, "the run ended before the kill: lengthen it"
    rank1 = _child_with_rank(proc.pid, 1)
    started = time.monotonic()
    os.kill(rank1, signal.SIGKILL)
    output = _finish(proc)
    assert proc.returncode != 0, output
    assert time.monotonic() - started < 60, "the surviving rank did not stop promptly"
    ckpt = load_checkpoint(out)  # intact, whatever rank 0 was doing
    assert 5 <= ckpt.iter_num < 30 and ckpt.iter_num % 5 == 0, f"random seed {seed}"
    resumed = _torchrun(out, _env(tmp_path), "--resume")
    output = _finish(resumed)
    assert resumed.returncode == 0, output
    assert _rows(out) == reference, f"random seed {seed}, resumed from step {ckpt.iter_num}"


def _child_with_rank(parent: int, rank: int) -> int:
    """The pid of torchrun's worker process with RANK=rank (Linux /proc)."""
    if not Path("/proc").is_dir():
        pytest.skip("finding torchrun's workers needs Linux's /proc")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                environ = (stat.parent / "environ").read_bytes().split(b"\0")
                if f"RANK={rank}".encode() in environ:
                    return int(stat.parent.name)
        except (OSError, IndexError, ValueError):
            continue
    pytest.fail(f"no worker with RANK={rank} under pid {parent}")


@pytest.mark.slow
def test_torchrun_with_the_default_preset_works(tmp_path):
    """`torchrun --nproc_per_node 2 -m gptcourse train`: the preset's own batch, shared by two processes."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "gptcourse", "train", "--device", "cpu", "--max_iters", "4",
           "--eval_interval", "4", "--eval_iters", "2", "--out_dir", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    output = _finish(proc)
    assert proc.returncode == 0, output
    assert output.count("2 processes share each step's 16 sequences") == 1  # said once, by rank 0
    cfg = load_checkpoint(tmp_path / "run").train_config
    assert (cfg.batch_size, cfg.gradient_accumulation_steps) == (8, 2)


def _lesson_demo(tmp: Path) -> subprocess.CompletedProcess:
    """Lesson 08's 2-process demo (its fast setting): the run that once aborted on rank 1 at the end."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "gptcourse", "train", "--preset", "shakespeare-cpu", "--device",
           "cpu", "--max_iters", "6", "--eval_interval", "6", "--eval_iters", "2", "--log_interval", "1",
           "--gradient_accumulation_steps", "2", "--overwrite", "--out_dir", str(tmp / "run")]
    return subprocess.run(cmd, cwd=ROOT, env=_env(tmp), capture_output=True, text=True, timeout=DDP_TIMEOUT)


def _launch_many(tmp: Path, runs: int) -> None:
    failed = []
    for i in range(runs):
        done = _lesson_demo(tmp / str(i))
        if done.returncode != 0:
            failed.append(f"run {i}: exit {done.returncode}\n{done.stderr[-1500:]}")
    assert not failed, f"{len(failed)} of {runs} launches failed:\n" + "\n".join(failed)


@pytest.mark.slow
def test_two_process_runs_end_cleanly(tmp_path):
    _launch_many(tmp_path, 3)


@pytest.mark.sweep
def test_two_process_runs_end_cleanly_thirty_times(tmp_path):
    _launch_many(tmp_path, 30)
