"""Capstone (after lesson 08): the learner's whole GPT, compared with gptcourse.GPT part by part, then trained.

Stage 1, a second: `YourGPT(config)` must have GPT-2's parameter names and shapes (those of gptcourse.GPT) and a
tied head; loaded with the reference's random weights it must be causal and give the reference's logits, and the
loss of one batch must give every parameter the reference's gradient (a .detach() on the way shows only there). A
difference is traced to the known mistake that explains it, or else to the first part that differs (the
embeddings, a block and inside it LayerNorm, attention or the MLP, ln_f, the head); the reference with each mistake
switched on, and its hint, is in grading/capstone_reference.py.
Stage 2: both models start from the same weights and train with gptcourse.train.train on Tiny Shakespeare
(characters): same seed, batches and steps, float32, one CPU thread. The learner's validation loss must land
within MARGIN of the reference's. Correct models written in other ways (a loop over heads, their own LayerNorm and
GELU, the fused attention) land within 1e-4 of it (5e-4 in the 60 steps of GPTCOURSE_FAST=1); a model that trains
otherwise although its first gradient is right (dropout on training batches only: 0.046 worse) misses.
"""

from __future__ import annotations

import functools
import math
import tempfile
import time

import torch
from torch import nn

from ...config import GPTConfig
from ...data import Dataset, get_batch, load_dataset
from ...env import fast_mode
from ...model import GPT
from ...recipes import TrainConfig
from ...step import loss_fn
from ...train import train
from ..capstone_reference import ACCEPTED, HINTS, attention_forward, layer_norm_forward, mlp_forward, reference_logits
from ..core import Context, register
from ..tools import Fail, call, call_explained, close, diagnose, expect_causal, expect_tensor, fmt, randomise
from .l07_gpt import WPE_IDS, WPE_TABLE

# The model the check trains: GPT-2's choices (learned positions, pre-norm, biases, tied head, tanh GELU) at a
# size that learns something in seconds on a CPU.
MODEL = GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64)
MARGIN = 0.02  # nats of validation loss; correct models land within 1e-4 (5e-4 FAST) of the reference (measured)
TIMEOUT = 300.0  # seconds for the whole check; it takes about 20 (normal) or 3 (GPTCOURSE_FAST=1), measured
ATOL = 1e-4
GRAD_RTOL = 1e-3  # of a gradient's largest entry; right models differ by about 1e-6 of it (measured)

UNTIED = ("lm_head has a weight matrix of its own: tie it to the token embedding, "
          "self.lm_head.weight = self.transformer.wte.weight (one Parameter, as GPT-2 does)")
# -- stage 1: the structure, then the forward pass -----------------------------------------------------------

def _build(cls, config: GPTConfig) -> nn.Module:
    model = call(cls, config)
    if not isinstance(model, nn.Module):
        raise Fail(f"YourGPT(config) gave a {type(model).__name__}: write class YourGPT(nn.Module)")
    return model


def _named(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every parameter by every name it has (a tied matrix under both of its names)."""
    return dict(nn.Module.named_parameters(model, remove_duplicate=False))


def _missing_hint(name: str, shape: torch.Size, mine: dict[str, nn.Parameter], want: dict[str, nn.Parameter]) -> str:
    if name.startswith("transformer.h."):
        blocks = len({n.split(".")[2] for n in mine if n.startswith("transformer.h.")})
        if int(name.split(".")[2]) >= blocks:
            return (f"your model has {blocks} blocks where config.n_layer asks for more: "
                    "nn.ModuleList(Block(config) for _ in range(config.n_layer))")
    if name.endswith(".bias") and name[: -len("bias")] + "weight" in mine:
        return f"{name} is missing: GPT-2's Linear layers and LayerNorms have a bias (nn.Linear(..., bias=True))"
    if ".ln_1." in name or ".ln_2." in name:
        return f"{name} is missing: each block has two LayerNorms, ln_1 before attention and ln_2 before the MLP"
    parts = {"transformer.wte.weight": "the token embedding transformer.wte, nn.Embedding(vocab_size, n_embd), is",
             "transformer.wpe.weight": "the learned positions transformer.wpe, nn.Embedding(block_size, n_embd), are",
             "transformer.ln_f.weight": "the final LayerNorm transformer.ln_f is"}
    if name in parts:
        return f"{parts[name]} missing"
    unknown = [n for n in mine if n not in want][:3]
    return (f"{name} {fmt(shape)} is missing: name the parts as GPT-2 does (transformer.wte, transformer.wpe, "
            "transformer.h[i].ln_1 / attn.c_attn / attn.c_proj / ln_2 / mlp.c_fc / mlp.c_proj, transformer.ln_f, "
            "lm_head)" + (f"; your model has {', '.join(unknown)}" if unknown else ""))


def _structure(model: nn.Module, ref: GPT) -> int:
    """Names, shapes and tying as the reference's; returns the number of parameters (a tied matrix once)."""
    mine, want = _named(model), _named(ref)
    head, wte = mine.get("lm_head.weight"), mine.get("transformer.wte.weight")
    if head is not None and wte is not None and head is not wte:
        raise Fail(UNTIED)
    for name, p in want.items():
        got = mine.get(name)
        if name == "lm_head.weight" and got is None:
            continue  # the head may reuse transformer.wte.weight in forward without a module of its own
        if got is None:
            raise Fail(_missing_hint(name, p.shape, mine, want))
        if got.shape != p.shape:
            flipped = got.dim() == 2 and got.shape == p.shape[::-1]
            raise Fail(f"{name} has shape {fmt(got.shape)}, expected {fmt(p.shape)}" + (
                ": nn.Linear(in, out) keeps its weight as (out, in); use nn.Linear" if flipped else ""))
    extra = [n for n in mine if n not in want]
    if "lm_head.bias" in extra:
        raise Fail("lm_head has a bias; GPT-2's head has none: nn.Linear(n_embd, vocab_size, bias=False)")
    if extra:
        raise Fail(f"your model has parameters that GPT-2 has not: {', '.join(extra[:3])}")
    return sum(p.numel() for p in {id(p): p for p in mine.values()}.values())


def _load(model: nn.Module, source: nn.Module) -> None:
    """Copy `source`'s weights into the learner's model, parameter by parameter name."""
    theirs = _named(source)
    with torch.no_grad():
        for name, p in _named(model).items():
            p.copy_(theirs[name])


def _logits(model: nn.Module, idx: torch.Tensor, ref: GPT) -> torch.Tensor:
    B, T = idx.shape
    tr = ref.transformer
    errors = [(WPE_TABLE, lambda: tr.wte(idx) + tr.wpe.weight), (WPE_IDS, lambda: tr.wpe(idx))]
    out = call_explained(model, idx, names=("idx",), errors=errors)
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        raise Fail("forward should return the logits alone, (B, T, vocab_size), not a tuple: the trainer "
                   "computes the loss")
    return expect_tensor(out, (B, T, ref.config.vocab_size), "YourGPT(config)(idx)",
                         hint="logits are (B, T, vocab_size): one score per possible next token",
                         nan_hint="mask off by one? A token may look at itself (the diagonal), so no row is all -inf")


def _mistakes(ref: GPT, idx: torch.Tensor) -> dict[str, object]:
    return {HINTS[m]: functools.partial(reference_logits, ref, idx, m) for m in HINTS}


PART_MISTAKES = {"LayerNorm": ("ln_unbiased", "eps_outside"),
                 "causal multi-head attention": ("no_mask", "softmax_dim", "no_scale", "scale_hs", "one_head",
                                                 "merge_no_transpose", "no_attn_proj"),
                 "MLP": ("relu", "no_gelu")}


def _first_difference(model: nn.Module, ref: GPT, idx: torch.Tensor) -> str:
    """Each of the learner's parts called alone on the reference's input to it: the first that differs, and
    the known mistake that explains it (for a mix of mistakes that no single one explains)."""
    def differs(path: str, x: torch.Tensor, want: torch.Tensor) -> torch.Tensor | None:
        try:
            got = call(nn.Module.get_submodule(model, path), x)
        except Exception:  # a part that cannot be called alone tells us nothing
            return None
        return None if isinstance(got, torch.Tensor) and close(got, want, ATOL, ATOL) else got

    tr, n_head = ref.transformer, ref.config.n_head
    if differs("transformer.wte", idx, tr.wte(idx)) is not None:
        return "the token embedding transformer.wte gives other vectors than the lookup wte.weight[idx]"
    x = tr.wte(idx) + tr.wpe(torch.arange(idx.shape[1]))  # (B, T, C)
    for i, block in enumerate(tr.h):
        name = f"transformer.h.{i}"
        if differs(name, x, block(x)) is not None:
            a = x + block.attn(block.ln_1(x))
            parts = [("ln_1", "LayerNorm", x, functools.partial(layer_norm_forward, block.ln_1)),
                     ("attn", "causal multi-head attention", block.ln_1(x),
                      functools.partial(attention_forward, block.attn, n_head=n_head)),
                     ("ln_2", "LayerNorm", a, functools.partial(layer_norm_forward, block.ln_2)),
                     ("mlp", "MLP", block.ln_2(a), functools.partial(mlp_forward, block.mlp))]
            for sub, kind, given, run in parts:
                got = differs(f"{name}.{sub}", given, run(given, mistake=None))
                if isinstance(got, torch.Tensor):
                    where = f"{name}.{sub} ({kind}) differs from the reference's with the same weights"
                    try:
                        diagnose(got, {HINTS[m]: functools.partial(run, given, mistake=m) for m in PART_MISTAKES[kind]},
                                 atol=ATOL, rtol=ATOL)
                    except Fail as known:
                        return f"{where}: {known}"
                    return where
            return f"block {i} ({name}) differs, although its parts agree: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))"
        x = block(x)
    if differs("transformer.ln_f", x, tr.ln_f(x)) is not None:
        return "the final LayerNorm transformer.ln_f differs from the reference's with the same weights"
    return ("every part agrees with the reference when called alone, so forward puts them together differently: "
            "x = wte(idx) + wpe(pos), every block in transformer.h in order, ln_f, then lm_head")


def _forward(cls, ctx: Context) -> tuple[int, str]:
    """Stage 1 on a random small config; returns the parameter count and the GELU the model uses (a config
    activation: "gelu_tanh", GPT-2's, or "gelu", the exact one, which is accepted)."""
    cfg = GPTConfig(vocab_size=ctx.choice([11, 29]), block_size=16, n_layer=2, n_head=ctx.choice([2, 4]),
                    n_embd=ctx.choice([16, 32]))
    torch.manual_seed(ctx.seed)  # the model's initialisation draws from the global generator (restored after)
    ref = randomise(GPT(cfg).eval(), ctx, scale=0.2, add=True)  # weights far from 0 and 1: every mistake shows
    model = _build(cls, cfg)
    count = _structure(model, ref)
    _load(model, ref)
    nn.Module.train(model, False)
    B, T = 2, ctx.choice([9, 12])
    idx = ctx.randint(0, cfg.vocab_size, (B, T))
    out = _logits(model, idx, ref)
    changed = idx.clone()
    changed[:, -1] = (changed[:, -1] + 1) % cfg.vocab_size
    with torch.no_grad():
        expect_causal(out, _logits(model, changed, ref), T - 2, "the model sees later tokens: attention needs the "
                      "causal mask", mistakes=_mistakes(ref, idx))
        want = ref(idx)
        if close(out, want, ATOL, ATOL):
            activation = "gelu_tanh"
        elif close(out, reference_logits(ref, idx, "exact_gelu"), ATOL, ATOL):
            activation = "gelu"
        else:
            diagnose(out, _mistakes(ref, idx), atol=ATOL, rtol=ATOL)
            err = (out.double() - want.double()).abs().max().item()
            raise Fail(f"the logits differ from gptcourse.GPT's with the same weights by up to {err:.3g}: "
                       + _first_difference(model, ref, idx))
    nn.Module.train(model, True)
    if not close(_logits(model, idx, ref), out, ATOL, ATOL):
        raise Fail("in training mode (model.train()) your model gives other logits than in eval mode: the config "
                   "has no dropout (dropout=0.0), so both should agree")
    same = GPT(cfg.replace(activation=activation))  # the reference with the learner's GELU, the same weights
    _load(same, ref)
    _gradients(model, same, idx)
    return count, activation


def _backward(model: nn.Module, idx: torch.Tensor, targets: torch.Tensor) -> None:
    loss_fn(model(idx), targets).backward()


def _gradients(model: nn.Module, ref: GPT, idx: torch.Tensor) -> None:
    """The loss of one batch, backward through both models with the same weights: every parameter's gradient must be
    the reference's. A forward pass can be right while a .detach() cuts the way back."""
    targets = idx.roll(-1, dims=1)  # (B, T): any targets will do
    call(_backward, model, idx, targets, grad=True, mutable=(0,))
    _backward(ref, idx, targets)
    mine = _named(model)
    differ = [n for n, p in _named(ref).items() if n in mine and not _same_gradient(mine[n].grad, p.grad)]
    if differ:  # the parameter nearest the output (the last in GPT-2's order) is nearest the cut; the tied matrix
        # takes gradient at both ends (head and lookup), so it differs whatever is cut: named only when nothing else is
        nearest = ([n for n in differ if n not in TIED] or differ)[-1]
        none = [n for n in differ if mine[n].grad is None or not mine[n].grad.any()]
        if none:
            raise Fail(f"{', '.join(none[:4])} {'gets' if len(none) == 1 else 'get'} no gradient: "
                       "it does not require one (requires_grad=False) or its way to the loss is cut (.detach(), .data, "
                       "torch.no_grad())")
        raise Fail(f"the logits are right, but the gradients of {len(differ)} parameters differ from the reference's "
                   f"(the same weights, the same batch), the nearest to the output {nearest}: part of its way to the "
                   "loss is cut (.detach(), .data, a value made outside autograd)")


TIED = ("transformer.wte.weight", "lm_head.weight")


def _same_gradient(got: torch.Tensor | None, want: torch.Tensor) -> bool:
    """Equal up to float32 rounding, measured against the gradient's own scale (1e-3 of its largest entry)."""
    return got is not None and close(got, want, atol=GRAD_RTOL * want.abs().max().item())


# -- stage 2: training ----------------------------------------------------------------------------------------

def schedule() -> TrainConfig:
    """How both models train: the lesson-08 CPU recipe's optimiser, fewer steps (far fewer with GPTCOURSE_FAST=1)."""
    steps = 60 if fast_mode() else 600
    return TrainConfig(batch_size=32, max_iters=steps, lr_decay_iters=steps, warmup_iters=steps // 10,
                       learning_rate=3e-3, min_lr=3e-4, eval_interval=steps, eval_iters=5 if fast_mode() else 20,
                       log_interval=steps, device="cpu", dtype="float32", seed=1337)


@functools.lru_cache(maxsize=1)
def _dataset() -> Dataset:
    return load_dataset("char")


def _initial(model_cfg: GPTConfig) -> GPT:
    """The reference at step 0: the initial weights of both runs."""
    torch.manual_seed(schedule().seed)
    return GPT(model_cfg)


def _train(model: nn.Module, model_cfg: GPTConfig, cfg: TrainConfig) -> float:
    """Train in a temporary folder (checkpoint and log removed after); the final validation loss."""
    with tempfile.TemporaryDirectory(prefix="gptcourse-capstone-") as out:
        result = train(model_cfg, cfg.replace(out_dir=out), model=model, dataset=_dataset(), progress=False)
    return float(result.history[-1]["val_loss"])


_REFERENCE: dict[tuple[GPTConfig, TrainConfig], float] = {}  # validation losses: the same every time


def reference_val_loss(model_cfg: GPTConfig, cfg: TrainConfig) -> float:
    """The validation loss of the reference GPT(model_cfg) trained by `cfg` (trained once per process)."""
    if (model_cfg, cfg) not in _REFERENCE:
        _REFERENCE[model_cfg, cfg] = _train(_initial(model_cfg), model_cfg, cfg)
    return _REFERENCE[model_cfg, cfg]


def _seconds_per_step(model: nn.Module, cfg: TrainConfig) -> float:
    x, y = get_batch(_dataset().train, MODEL.block_size, cfg.batch_size, torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for _ in range(3):
        loss_fn(model(x), y).backward()
    return (time.perf_counter() - start) / 3


def _check_speed(model: nn.Module, model_cfg: GPTConfig, cfg: TrainConfig, started: float) -> None:
    """Fail early, with the reason, when the learner's model is too slow to train within the time limit."""
    mine = call(_seconds_per_step, model, cfg, grad=True, mutable=(0,))
    ref = _seconds_per_step(_initial(model_cfg), cfg)
    for p in nn.Module.parameters(model):
        p.grad = None
    trained = (model_cfg, cfg) in _REFERENCE
    left = TIMEOUT - (time.perf_counter() - started) - (0 if trained else 1.5 * cfg.max_iters * ref)
    if 1.5 * cfg.max_iters * mine > left:
        raise Fail(f"a training step of your model takes {1000 * mine:.0f} ms, the reference's {1000 * ref:.0f} ms: "
                   f"{cfg.max_iters} steps would not fit in this check's {TIMEOUT:g} s. Look for Python loops over "
                   "tokens or positions, or tensors built anew in every forward")


@register("capstone.your_gpt", lesson=8, title="YourGPT class", timeout=TIMEOUT)
def your_gpt(cls, ctx: Context) -> str:
    started = time.perf_counter()
    if isinstance(cls, nn.Module) or not callable(cls):
        raise Fail(f"pass the class itself (YourGPT), not a {type(cls).__name__}: the check builds its own models")
    count, activation = _forward(cls, ctx)
    torch.set_num_threads(1)  # the same speed everywhere, and no fight for cores (the runner restores it)
    cfg, model_cfg = schedule(), MODEL.replace(activation=activation)  # the reference uses the learner's GELU
    start = _initial(model_cfg)
    model = _build(cls, MODEL)
    _structure(model, start)
    _check_speed(model, model_cfg, cfg, started)
    _load(model, start)
    before = {n: p.detach().clone() for n, p in _named(model).items()}
    mine = call(_train, model, model_cfg, cfg, grad=True, mutable=(0,))
    ref = reference_val_loss(model_cfg, cfg)
    steps = f"after {cfg.max_iters} steps of training from the same weights"
    frozen = [n for n, p in _named(model).items() if torch.equal(p.detach(), before[n])]
    if frozen:  # every parameter of the reference moves at the first step
        raise Fail(f"{steps} some of your model's parameters never changed: {', '.join(frozen[:4])}: is their way to "
                   "the loss cut (.detach(), torch.no_grad()) or do they not require a gradient (requires_grad=False)?")
    if not math.isfinite(mine):
        raise Fail(f"{steps} your model's validation loss is {mine}: the training diverged")
    if abs(mine - ref) > MARGIN:
        raise Fail(f"{steps} your model's validation loss is {mine:.4f}, the reference's {ref:.4f}: more than "
                   f"{MARGIN} {'worse' if mine > ref else 'better'}, although its logits and gradients equal the "
                   "reference's on the check's probe. It trains differently: is there dropout or other randomness in "
                   "training, or does forward keep or change something from one call to the next?")
    gelu = f" ({ACCEPTED['exact_gelu']}: the reference uses it too)" if activation == "gelu" else ""
    return (f"the same {count:,} parameters as gptcourse.GPT on a random probe, causal, the same logits{gelu} "
            "and gradients; "
            f"{steps}, validation loss {mine:.4f}, the reference's {ref:.4f} (margin {MARGIN})")
