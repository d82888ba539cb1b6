"""The capstone check beyond the generic right/wrong runner: its reference, its hints for mixed and structural
mistakes, the training stage (models that learn differently fail it), the grader's time limit, and progress.

The training stage runs in the fast setting here (GPTCOURSE_FAST=1: far fewer steps); the runs that train
at full length are marked slow.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import tempfile
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gptcourse import GPT, GPTConfig
from gptcourse.grading import check
from gptcourse.grading.cli import grade_notebook, grade_paths
from gptcourse.grading.core import Context
from gptcourse.grading.lessons import l08b_capstone as cap
from gptcourse.grading.progress import progress_main, record
from gptcourse.grading.tools import randomise

from .conftest import ROOT
from .grading_cases.l08b import Block, LearnerGPT, wrong

NAME = "capstone.your_gpt"
SOLUTION = ROOT / "solutions" / "08b_capstone_your_gpt.ipynb"


@pytest.fixture
def fast(monkeypatch, tmp_path):
    monkeypatch.setenv("GPTCOURSE_FAST", "1")
    monkeypatch.setenv("GPTCOURSE_RUNS", str(tmp_path / "runs"))


def probe(seed: int) -> tuple[GPT, torch.Tensor]:
    cfg = GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=4, n_embd=32)  # ids < block_size: wpe(idx) runs
    torch.manual_seed(seed)
    ref = randomise(GPT(cfg).eval(), Context(seed), scale=0.2, add=True)
    return ref, torch.randint(0, 11, (2, 12))


@pytest.mark.parametrize("seed", range(5))
def test_the_written_out_reference_equals_gpt_and_every_mistake_changes_it(seed):
    ref, idx = probe(seed)
    with torch.no_grad():
        want = ref(idx)
        assert torch.allclose(cap.reference_logits(ref, idx), want, atol=1e-5)
        for mistake in cap.HINTS:
            if mistake == "eps_outside":  # 1e-5 beside variances near 1 moves the logits by about 3e-4 only
                continue
            got = cap.reference_logits(ref, idx, mistake)
            assert (got - want).abs().max() > 100 * cap.ATOL, mistake


@pytest.mark.parametrize("seed", range(5))
def test_the_exact_gelu_is_the_package_gpt_with_that_activation_and_told_apart_from_the_tanh_form(seed):
    """An accepted variant need not move the logits far (erf and tanh GELU differ by about 1e-3 here), but the check
    must tell it from GPT-2's form at ATOL, and the reference it then trains against must compute exactly it."""
    ref, idx = probe(seed)
    exact = GPT(ref.config.replace(activation="gelu")).eval()
    exact.load_state_dict(ref.state_dict())
    with torch.no_grad():
        got = cap.reference_logits(ref, idx, "exact_gelu")
        assert torch.allclose(got, exact(idx), atol=1e-5)
        assert (got - ref(idx)).abs().max() > 2 * cap.ATOL


class OneLayerNormUnbiased(LearnerGPT):
    """One LayerNorm (block 1's ln_1) with the sample variance: no mistake made everywhere explains it."""

    def __init__(self, config):
        super().__init__(config)
        self.transformer.h[1].ln_1.unbiased = True


class ReluInBlockZero(LearnerGPT):
    def __init__(self, config):
        super().__init__(config)
        self.transformer.h[0].mlp.mistake = "relu"


class KeysAskQueries(LearnerGPT):
    """Scores k @ q^T instead of q @ k^T (still causal): a mistake with no hint of its own."""

    def __init__(self, config):
        super().__init__(config)
        for block in self.transformer.h:
            block.attn.forward = functools.partial(self._attend, block.attn)

    @staticmethod
    def _attend(attn, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, attn.n_head, -1).transpose(1, 2) for t in attn.c_attn(x).split(C, dim=2))
        scores = (k @ q.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(
            ~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
        return attn.c_proj((scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C))


class NoPositionTable(LearnerGPT):
    def __init__(self, config):
        super().__init__(config, mistake="no_positions")
        del self.transformer["wpe"]


class OwnMatrices(LearnerGPT):
    """c_attn kept as an (in, out) matrix of its own rather than an nn.Linear."""

    def __init__(self, config):
        super().__init__(config)
        for block in self.transformer.h:
            block.attn.c_attn = nn.Module()
            block.attn.c_attn.weight = nn.Parameter(torch.zeros(config.n_embd, 3 * config.n_embd))
            block.attn.c_attn.bias = nn.Parameter(torch.zeros(3 * config.n_embd))


class NoBiases(LearnerGPT):
    def __init__(self, config):
        super().__init__(config)
        for block in self.transformer.h:
            block.mlp.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)


class OneBlockShort(LearnerGPT):
    def __init__(self, config):
        super().__init__(config)
        self.transformer.h = self.transformer.h[:-1]


class TrainingDropout(LearnerGPT):
    def __init__(self, config):
        super().__init__(config)
        self.drop = nn.Dropout(0.1)

    def forward(self, idx):
        return self.lm_head(self.transformer.ln_f(self.drop(self._stream(idx))))

    def _stream(self, idx):
        tr = self.transformer
        x = tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1]))
        for block in tr.h:
            x = block(x)
        return x


@pytest.mark.parametrize("model, hint", [
    (OneLayerNormUnbiased, "transformer.h.1.ln_1 (LayerNorm) differs"),
    (OneLayerNormUnbiased, "population variance"),
    (ReluInBlockZero, "ReLU"),
    (KeysAskQueries, "transformer.h.0.attn (causal multi-head attention) differs"),
    (NoPositionTable, "learned positions transformer.wpe"),
    (OwnMatrices, "nn.Linear(in, out) keeps its weight as (out, in)"),
    (NoBiases, "have a bias"),
    (OneBlockShort, "blocks where config.n_layer asks for more"),
    (TrainingDropout, "in training mode"),
    (LearnerGPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=1, n_embd=8)), "pass the class itself"),
], ids=lambda v: getattr(v, "__name__", None) or str(v)[:30])
def test_mistakes_found_before_training_are_named(model, hint):
    for seed in (1, 2, 3):
        result = check(NAME, model, seed=seed, quiet=True)
        assert result.status == "fail" and hint in result.message, result.line


def test_a_stub_in_the_block_is_todo():
    class Stub(Block):
        def forward(self, x):
            raise NotImplementedError("write the block")

    class WithStub(LearnerGPT):
        def __init__(self, config):
            super().__init__(config)
            self.transformer.h = nn.ModuleList(Stub(config, None) for _ in range(config.n_layer))

    result = check(NAME, WithStub, seed=0, quiet=True)
    assert result.status == "todo" and "write the block" in result.message


def test_a_right_model_passes_trains_quietly_and_leaves_nothing_behind(fast, tmp_path, capsys):
    before, threads = set(os.listdir(tempfile.gettempdir())), torch.get_num_threads()
    result = check(NAME, LearnerGPT, seed=4)
    assert result.status == "pass", result.line
    assert f"margin {cap.MARGIN}" in result.message and "validation loss" in result.message
    assert capsys.readouterr().out == result.line + "\n"  # one line: no progress bar, no summary
    assert result.output == ""  # nothing printed inside the check either
    assert not {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("gptcourse-capstone")}
    assert not (tmp_path / "runs").exists()
    assert torch.get_num_threads() == threads  # the check trains on one thread, then puts the setting back
    assert (cap.MODEL, cap.schedule()) in cap._REFERENCE  # the reference trained once; the next check reuses it


def test_the_exact_gelu_is_accepted(fast):
    result = check(NAME, wrong("exact_gelu"), seed=5, quiet=True)
    assert result.status == "pass" and "exact GELU" in result.message, result.line


@pytest.mark.parametrize("mistake, named", [
    ("detached_attention", "parameters differ from the reference's"),  # q and k detached: c_attn still learns through v
    ("detached_attention", "the nearest to the output transformer.h.1.attn.c_attn"),
    ("detached_head", "the nearest to the output lm_head.weight"),  # the tied matrix learns through the lookup only
    ("frozen_embedding", "transformer.wte.weight, lm_head.weight get no gradient"),
])
def test_a_cut_gradient_fails_before_training_naming_the_parameter_nearest_the_cut(mistake, named):
    """The logits are right; the gradients of one batch's loss are not. Seen in a second, without training."""
    for seed in (6, 7):
        result = check(NAME, wrong(mistake), seed=seed, quiet=True)
        assert result.status == "fail" and named in result.message and result.seconds < 10, result.line


class LongBatchDropout(LearnerGPT):
    """Dropout on the embeddings in training mode, on full-length batches only: the probe's batches are shorter, so
    stage 1 sees the reference's logits and gradients; training does not."""

    def __init__(self, config):
        super().__init__(config)
        self.block_size = config.block_size

    def forward(self, idx):
        if idx.shape[1] < self.block_size:
            return super().forward(idx)
        tr = self.transformer
        x = F.dropout(tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1])), 0.1, self.training)  # (B, T, C)
        for block in tr.h:
            x = block(x)
        return self.lm_head(tr.ln_f(x))


def test_a_model_that_trains_otherwise_though_its_first_gradient_is_right_misses_the_margin(fast):
    result = check(NAME, LongBatchDropout, seed=7, quiet=True)
    assert result.status == "fail" and "worse" in result.message and f"more than {cap.MARGIN}" in result.message, \
        result.line


@pytest.mark.slow
def test_a_model_too_slow_for_the_limit_fails_early_with_its_step_time(fast):
    class Sleepy(LearnerGPT):
        def forward(self, idx):
            if idx.shape[1] == cap.MODEL.block_size:  # a training batch, not the probe
                time.sleep(cap.TIMEOUT / cap.schedule().max_iters)
            return super().forward(idx)

    result = check(NAME, Sleepy, seed=8, quiet=True)
    assert result.status == "fail" and "a training step of your model takes" in result.message, result.line
    assert result.seconds < 30


def test_the_grader_gives_the_capstones_cell_its_own_limit(monkeypatch, tmp_path):
    seen = []

    class Client:
        def __init__(self, nb, timeout, **kwargs):
            seen.append(timeout)

        def execute(self, **kwargs):
            raise RuntimeError("not run here")

    monkeypatch.setattr("nbclient.NotebookClient", Client)
    copy = tmp_path / SOLUTION.name
    shutil.copy(SOLUTION, copy)
    entry = grade_notebook(copy, cell_timeout=120)
    assert seen == [cap.TIMEOUT + 60] and entry["checks"][0]["name"] == NAME


@pytest.mark.slow
def test_grading_the_solution_passes_and_progress_lists_it_as_08b(fast, tmp_path, monkeypatch, capsys):
    work = tmp_path / "exercises"
    work.mkdir()
    shutil.copy(SOLUTION, work / SOLUTION.name)
    report = grade_paths([work / SOLUTION.name], quiet=True)
    assert report["passed"], report["notebooks"][0]["checks"]
    record(report)
    assert progress_main([str(work), "--ascii"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if SOLUTION.name in line)
    assert row.split()[0] == "08b" and "1/1" in row and "done" in row


def test_the_notebook_states_the_checks_numbers():
    text = SOLUTION.read_text(encoding="utf-8")
    m = cap.MODEL
    for stated in (f"within **{cap.MARGIN}**", f"{m.n_layer}-layer, {m.n_head}-head, {m.n_embd}-wide",
                   f"context of {m.block_size} characters", f"after {cap.TIMEOUT:g} s"):
        assert stated in text, stated

