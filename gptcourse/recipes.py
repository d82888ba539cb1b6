"""How to train: the training config, and the named recipes (a model shape plus how to train it).

A preset on the command line (`--preset shakespeare-cpu`) names one of the RECIPES. The model shapes alone
are `gptcourse.config.MODEL_PRESETS`; a recipe pairs one with a TrainConfig.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .config import MODEL_PRESETS, GPTConfig

__all__ = ["TrainConfig", "Recipe", "RECIPES", "get_recipe", "DTYPES", "TOKENIZERS"]

DTYPES = ("auto", "float32", "bfloat16", "float16")
TOKENIZERS = ("char", "gpt2")


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the model's shape is a GPTConfig). Names as in nanoGPT's train.py; defaults = shakespeare-cpu."""

    batch_size: int = 16  # sequences per micro-batch; more = smoother gradients, more work per step
    max_iters: int = 900  # optimiser steps in the whole run
    lr_decay_iters: int = 900  # the cosine ends here (usually = max_iters); min_lr afterwards
    learning_rate: float = 3e-3  # peak rate; small models tolerate large ones
    min_lr: float = 3e-4  # where the cosine ends: about learning_rate / 10 (Chinchilla)
    warmup_iters: int = 50  # ramp the rate up first: Adam's moment estimates are noisy at the start
    beta1: float = 0.9  # Adam's momentum
    beta2: float = 0.99  # 0.99 rather than 0.999: few tokens per step, so average over fewer steps
    weight_decay: float = 0.1  # pulls matrices towards zero (biases, LayerNorm and the like are exempt)
    grad_clip: float = 1.0  # rescale the gradient when its norm exceeds this (0 = off): tames spikes
    eval_interval: int = 300  # evaluate (and write a checkpoint) every this many steps, and at the end
    eval_iters: int = 20  # batches per split per evaluation: more = a less noisy estimate, slower
    log_interval: int = 10  # log a metrics row every this many steps (each log reads the loss: a sync on GPUs)
    # micro-batches per step, all processes together: the global batch is this x batch_size sequences
    gradient_accumulation_steps: int = 1
    device: str = "auto"  # "auto" = gptcourse.env.pick_device(); or "cpu", "cuda", "cuda:1", "mps"
    # "auto": bf16 autocast where the hardware has it (recent GPUs, CPUs with native bf16 matmuls), float16
    # with a gradient scaler on GPUs without bf16 (such as a T4), else float32
    dtype: str = "auto"
    compile: bool = False  # torch.compile: faster steps on GPUs after a minute of compiling
    out_dir: str | None = None  # where ckpt.pt and metrics.jsonl go; None = gptcourse.env.runs_dir() / "run"
    seed: int = 1337  # fixes the initial weights and every batch drawn
    tokenizer: str = "char"  # "char" (65 symbols for Shakespeare) or "gpt2" (50,257 BPE tokens)

    def __post_init__(self) -> None:
        positive = ("batch_size", "eval_interval", "eval_iters", "log_interval", "gradient_accumulation_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("max_iters", "lr_decay_iters", "warmup_iters"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0 < self.learning_rate or not 0 <= self.min_lr <= self.learning_rate:
            raise ValueError(
                f"need 0 < learning_rate and 0 <= min_lr <= learning_rate, got {self.learning_rate} and {self.min_lr}"
            )
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"beta1 and beta2 must be in [0, 1), got {self.beta1} and {self.beta2}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("weight_decay and grad_clip must be >= 0 (grad_clip 0 turns clipping off)")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}")
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}; got {self.tokenizer!r}")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers and strings, as stored in a checkpoint."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild from `to_dict()` (a checkpoint's), ignoring fields this version no longer has."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class Recipe:
    """A named way to train: the model's shape, how to train it, and what it is for."""

    model: GPTConfig
    train: TrainConfig
    note: str = ""


# nanoGPT's shakespeare_char training settings: the GPU recipes below start from it and change what they say.
NANOGPT_SHAKESPEARE = TrainConfig(
    batch_size=64,
    max_iters=5000,
    lr_decay_iters=5000,
    learning_rate=1e-3,
    min_lr=1e-4,
    warmup_iters=100,
    beta2=0.99,
    eval_interval=250,
    eval_iters=200,
    log_interval=10,
)

RECIPES: dict[str, Recipe] = {
    # Lesson 08 on a laptop: 0.8M parameters, val loss 1.83 in about 40 s on two CPU cores (BENCHMARKS.md).
    "shakespeare-cpu": Recipe(MODEL_PRESETS["shakespeare-cpu"], TrainConfig(), "the CPU default (lesson 08)"),
    # nanoGPT's Shakespeare-char model and recipe, for a GPU: 10.7M parameters, context 256.
    "shakespeare-char": Recipe(
        MODEL_PRESETS["shakespeare-char"], NANOGPT_SHAKESPEARE, "the GPU recipe (nanoGPT's shakespeare_char)"
    ),
    # nanoGPT's model on one big GPU in about a minute: twice nanoGPT's batch at a higher rate and half the
    # steps (the same tokens), compiled, bf16, fewer evaluation batches. Prepared for an H200; see BENCHMARKS.md.
    "shakespeare-gpu": Recipe(
        MODEL_PRESETS["shakespeare-char"],
        NANOGPT_SHAKESPEARE.replace(batch_size=128, max_iters=2500, lr_decay_iters=2500, learning_rate=1.5e-3,
                                    min_lr=1.5e-4, eval_interval=500, eval_iters=50, log_interval=50, compile=True),
        "the GPU recipe sized for about a minute on an H200",
    ),
    # nanoGPT's model on Colab's free T4 in about 5 minutes: its batch, 2,000 of its 5,000 steps, fewer
    # evaluation batches. dtype "auto" is float16 with a gradient scaler there (a T4 has no native bf16).
    # Sized by arithmetic, not yet timed on a T4: 71M FLOPs per token x 16,384 tokens a step is about 150 ms
    # a step if the T4 sustains 8 TFLOP/s (12% of its float16 peak), so 2,000 steps take 5 minutes.
    "shakespeare-t4": Recipe(
        MODEL_PRESETS["shakespeare-char"],
        NANOGPT_SHAKESPEARE.replace(max_iters=2000, lr_decay_iters=2000, eval_interval=500, eval_iters=40,
                                    log_interval=50),
        "nanoGPT's model on a T4 (Colab) in about 5 minutes",
    ),
    # Apple silicon through MPS: nanoGPT's model narrowed to 3.2M parameters (4 layers, 256 wide, context
    # 128), where an Apple GPU beats the CPU cores beside it. device "mps" on purpose: on a torch that trains
    # wrongly on MPS (or with no Apple GPU) the run stops at once and says why (gptcourse.env.pick_device);
    # MPS runs in float32 ("auto"). Not yet timed on a Mac: 85 GFLOPs a step, so about 4 minutes if the
    # GPU sustains 1 TFLOP/s.
    "shakespeare-mps": Recipe(
        dataclasses.replace(MODEL_PRESETS["shakespeare-char"], block_size=128, n_layer=4, n_head=4, n_embd=256,
                            dropout=0.1),
        NANOGPT_SHAKESPEARE.replace(batch_size=32, max_iters=3000, lr_decay_iters=3000, eval_interval=500,
                                    eval_iters=40, log_interval=50, device="mps"),
        "Apple silicon (MPS), where the installed torch trains correctly on it",
    ),
    # Exactly nanoGPT README's CPU run, to compare speed and loss against nanoGPT itself.
    "nanogpt-cpu": Recipe(
        GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False,
                  activation="gelu"),  # nanoGPT uses the exact GELU
        NANOGPT_SHAKESPEARE.replace(batch_size=12, max_iters=2000, lr_decay_iters=2000, eval_iters=20, log_interval=1),
        "nanoGPT README's CPU run, for comparison",
    ),
    # For tests: a few seconds on one CPU core.
    "tiny": Recipe(
        GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=2, n_embd=32, bias=False),
        TrainConfig(
            batch_size=8,
            max_iters=40,
            lr_decay_iters=40,
            learning_rate=3e-3,
            min_lr=3e-4,
            warmup_iters=5,
            eval_interval=10,
            eval_iters=4,
            log_interval=1,
            device="cpu",
            dtype="float32",  # the tests compare runs number for number
        ),
        "seconds on a CPU, for tests",
    ),
}


def get_recipe(name: str) -> Recipe:
    """The recipe a preset name stands for; a ValueError that lists the names when there is none."""
    if name not in RECIPES:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(RECIPES)}")
    return RECIPES[name]
