"""Turning next-token scores into text: temperature, top-k, top-p, and generation with a KV cache.

All randomness comes from an explicit `torch.Generator`: the model's logits are the same every time;
only the draw from them varies.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "next_token_probs",
    "sample_next",
    "entropy",
    "generate",
    "check_sampling_args",
]


def check_sampling_args(temperature: float, top_k: int | None = None, top_p: float | None = None) -> None:
    """Refuse settings outside their ranges, with a sentence that names the range."""
    if not isinstance(temperature, (int, float)) or temperature != temperature or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0 (0 means greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1 (or None for no limit), got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1] (or None for no limit), got {top_p!r}")


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide the logits by T before the softmax: T < 1 sharpens, T > 1 flattens. Needs T > 0."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 to scale logits (use greedy for 0), got {temperature!r}")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits in the last dimension; set the rest to -inf. (..., V) -> (..., V)."""
    k = min(k, logits.size(-1))
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1): the k-th largest
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filtering: keep the fewest most likely tokens whose probabilities sum to at least p."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (..., V)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of the tokens ranked above each one
    drop_sorted = mass_before >= p  # once p is reached, the rest go (the top token always stays)
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def next_token_probs(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """The distribution sampling draws from: (..., V) logits -> (..., V) probabilities.

    Temperature 0 puts all the mass on the argmax (greedy).
    """
    check_sampling_args(temperature, top_k, top_p)
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.size(-1)).float()
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits.softmax(dim=-1)


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per row: (B, V) logits -> (B, 1) ids."""
    if temperature == 0:
        check_sampling_args(temperature, top_k, top_p)
        return logits.argmax(dim=-1, keepdim=True)
    probs = next_token_probs(logits, temperature, top_k, top_p)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats over the last dimension: 0 for a sure thing, ln(V) for uniform."""
    return -(probs * probs.clamp_min(1e-30).log()).sum(dim=-1)


def generate(
    model: nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """Extend idx (B, T) by max_new_tokens sampled tokens -> (B, T + max_new_tokens).

    The model sees at most its last `block_size` tokens. With `use_cache`, keys and values of earlier
    tokens are kept, so each step runs the model on one new token; once the window is full the cache is
    rebuilt from the last `block_size` tokens (positions shift), which gives exactly the tokens of the
    uncached path.
    """
    check_sampling_args(temperature, top_k, top_p)
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if idx.dim() != 2 or idx.size(1) == 0:
        raise ValueError(f"idx must have shape (B, T) with T >= 1, got {tuple(idx.shape)}")
    block_size = model.config.block_size
    B, T0 = idx.shape
    out = idx.new_empty(B, T0 + max_new_tokens)  # filled one column per step: no copy of the text so far
    out[:, :T0] = idx
    was_training = model.training
    model.eval()
    cache = None
    try:
        # no autograd bookkeeping at all: a one-token step is mostly per-operation overhead. `out` was
        # made outside, so the tokens come back as an ordinary tensor
        with torch.inference_mode():
            for t in range(T0, T0 + max_new_tokens):
                if cache is not None and len(cache[0]) < block_size:
                    logits = model(out[:, t - 1 : t], cache=cache)  # only the newest token: (B, 1, V)
                else:
                    context = out[:, max(0, t - block_size) : t]  # (B, <= block_size)
                    cache = model.new_cache() if use_cache else None
                    logits = model(context, cache=cache)
                out[:, t : t + 1] = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)  # (B, 1)
    finally:
        model.train(was_training)
    return out
