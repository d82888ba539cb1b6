"""gptcourse.scaling (the laws and their fits) and gptcourse.scaling_runs (lesson 11's grid of runs)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from gptcourse import GPT, GPTConfig
from gptcourse.data import Dataset
from gptcourse.params import model_breakdown
from gptcourse.recipes import TrainConfig
from gptcourse.scaling import (
    FlooredPowerLaw,
    ScalingLaw,
    compute_frontier,
    fit_power_law,
    fit_scaling_law,
    fit_with_floor,
)
from gptcourse.scaling_runs import (
    GridRun,
    grid_run,
    loss_against_compute,
    loss_against_size,
    non_embedding_params,
    split_loss,
    train_or_reuse,
)
from gptcourse.tokenizers import CharTokenizer

SIZES = [1e4, 3e4, 1e5, 3e5, 1e6, 3e6]


def test_fit_with_floor_recovers_a_known_law():
    truth = FlooredPowerLaw(E=1.5, A=40.0, alpha=0.3)
    law = fit_with_floor(SIZES, [truth(n) for n in SIZES])
    assert (law.E, law.A, law.alpha) == pytest.approx((1.5, 40.0, 0.3), rel=1e-6)
    assert law.sum_of_squares(SIZES, [truth(n) for n in SIZES]) == pytest.approx(0.0, abs=1e-18)


def test_fit_with_floor_is_least_squares_on_noisy_data():
    rng = np.random.default_rng(0)
    truth = FlooredPowerLaw(E=1.5, A=40.0, alpha=0.3)
    y = [truth(n) + rng.uniform(-0.01, 0.01) for n in SIZES]
    law = fit_with_floor(SIZES, y)
    best = law.sum_of_squares(SIZES, y)
    for nudge in ({"E": 1e-3}, {"A": 1e-2}, {"alpha": 1e-4}):  # every small step away misses by more
        for sign in (1, -1):
            moved = FlooredPowerLaw(**{k: getattr(law, k) + sign * nudge.get(k, 0.0) for k in ("E", "A", "alpha")})
            assert moved.sum_of_squares(SIZES, y) > best
    assert fit_power_law(SIZES, y).alpha < law.alpha  # a floor makes the rest steeper


def test_fit_with_floor_keeps_the_floor_at_or_above_zero():
    y = [20.0 * n**-0.2 - 0.3 for n in SIZES]  # a "floor" of -0.3: the best allowed is E = 0
    law = fit_with_floor(SIZES, y)
    assert law.E == 0.0 and law.A > 0


@pytest.mark.parametrize("x, y, match", [([1, 2], [3, 2], "3 or more"), ([1, 2, 3], [3, -2, 1], "positive"),
                                         ([2, 2, 2], [3, 2, 1], "all x are equal")])
def test_fit_with_floor_rejects_bad_input(x, y, match):
    with pytest.raises(ValueError, match=match):
        fit_with_floor(x, y)


def _grid():
    n = np.repeat([1e4, 5e4, 2e5, 8e5], 4)
    d = np.tile([2.5e5, 5e5, 1e6, 2e6], 4)
    return n, d


def test_fit_scaling_law_recovers_a_known_law():
    truth = ScalingLaw(E=1.2, A=30.0, alpha=0.35, B=200.0, beta=0.3)
    n, d = _grid()
    law = fit_scaling_law(n, d, [truth(a, b) for a, b in zip(n, d)])
    got = (law.E, law.A, law.alpha, law.B, law.beta)
    assert got == pytest.approx((1.2, 30.0, 0.35, 200.0, 0.3), rel=1e-6)
    with pytest.raises(ValueError, match="same number of tokens"):
        fit_scaling_law(n, [1e6] * len(n), [truth(a, 1e6) for a in n])


def test_optimal_size_minimises_the_loss_at_fixed_compute():
    law = ScalingLaw(E=1.2, A=30.0, alpha=0.35, B=200.0, beta=0.3)
    compute = 1e15
    n, d = law.optimal_size(compute)
    assert 6 * n * d == pytest.approx(compute)
    for factor in (0.8, 1.25):  # a smaller or larger model on the same compute does worse
        assert law(n * factor, compute / (6 * n * factor)) > law(n, d)
    n2, _ = law.optimal_size(10 * compute)  # N_opt grows as C^(beta / (alpha + beta))
    assert math.log(n2 / n, 10) == pytest.approx(0.3 / 0.65)


def test_compute_frontier_keeps_each_new_lowest_loss():
    compute = [1, 2, 3, 4, 5]
    loss = [3.0, 3.1, 2.5, 2.6, 2.4]
    assert compute_frontier(compute, loss) == [0, 2, 4]
    assert compute_frontier([2, 1], [1.0, 2.0]) == [1, 0]


def test_non_embedding_params_leaves_out_the_embeddings():
    for pos in ("learned", "rope"):
        config = GPTConfig(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32, pos_encoding=pos)
        parts = model_breakdown(GPT(config))
        assert non_embedding_params(config) == parts.total - parts.token_embedding - parts.position_embedding


def test_split_loss_reads_every_window_once(tiny_config):
    model = GPT(tiny_config).eval()
    tokens = torch.randint(0, tiny_config.vocab_size, (16 * 5 + 7,))
    got = split_loss(model, tokens, block_size=16, batch_size=2)  # three batches, the last one short
    x, y = tokens[:80].view(5, 16), tokens[1:81].view(5, 16)
    with torch.no_grad():
        want = F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item()
    assert got == pytest.approx(want, rel=1e-5)
    assert model.training is False
    with pytest.raises(ValueError, match="more than block_size"):
        split_loss(model, tokens[:16], block_size=16)


def _tiny_dataset() -> Dataset:
    text = "to be or not to be, that is the question. " * 40
    tok = CharTokenizer.from_text(text)
    ids = torch.tensor(tok.encode(text))
    return Dataset(train=ids[:1400], val=ids[1400:], tokenizer=tok)


def test_train_or_reuse_trains_once_then_reuses(tmp_path):
    data = _tiny_dataset()
    config = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
    cfg = TrainConfig(batch_size=4, max_iters=4, lr_decay_iters=4, warmup_iters=1, eval_interval=4, eval_iters=1,
                      log_interval=2, dtype="float32", out_dir=str(tmp_path / "run"))
    first, reused = train_or_reuse(config, cfg, data)
    assert not reused
    again, reused = train_or_reuse(config, cfg.replace(eval_iters=3), data)  # a reporting field: still the same run
    assert reused and again.history[-1]["elapsed_s"] == first.history[-1]["elapsed_s"]
    for a, b in zip(first.model.parameters(), again.model.parameters()):
        assert torch.equal(a, b)
    _, reused = train_or_reuse(config, cfg.replace(learning_rate=1e-3), data)  # another recipe: trained afresh
    assert not reused
    with pytest.raises(ValueError, match="out_dir"):
        train_or_reuse(config, cfg.replace(out_dir=None), data)


def test_grid_run_measures_the_whole_validation_split(tmp_path):
    data = _tiny_dataset()
    config = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
    cfg = TrainConfig(batch_size=4, max_iters=4, lr_decay_iters=4, warmup_iters=1, eval_interval=4, eval_iters=1,
                      log_interval=2, dtype="float32", out_dir=str(tmp_path / "run"))
    run = grid_run(config, cfg, data)
    assert (run.width, run.n_params, run.tokens, run.reused) == (16, non_embedding_params(config), 4 * 4 * 16, False)
    assert run.seconds > 0 and math.isfinite(run.val_loss)
    again = grid_run(config, cfg, data)
    assert again.reused and again.val_loss == run.val_loss and again.seconds == run.seconds


def test_figures_draw_the_grid():
    runs = [GridRun(width=w, n_params=n, tokens=d, val_loss=1.5 + 20 * n**-0.3 + 50 * d**-0.3, seconds=1.0)
            for w, n in ((16, 10_000), (32, 40_000)) for d in (100_000, 200_000)]
    assert runs[0].compute == 6.0 * 10_000 * 100_000
    laws = {d: (lambda n, d=d: 1.5 + 20 * n**-0.3 + 50 * d**-0.3) for d in (100_000, 200_000)}
    fig = loss_against_size(runs, laws, extra=[(80_000, 2.0, "prediction", "r*")])
    assert isinstance(fig, Figure) and fig.axes[0].get_xscale() == "log"
    fig = loss_against_compute(runs, compute_frontier([r.compute for r in runs], [r.val_loss for r in runs]),
                               optimal=lambda c: 2.0)
    assert isinstance(fig, Figure) and "compute" in fig.axes[0].get_xlabel()
