"""Lesson 09: temperature, sampling, top-k and top-p, checked by their properties and against gptcourse.sampling."""

from __future__ import annotations

import torch

from ...sampling import entropy, next_token_probs, top_k_filter, top_p_filter
from ..core import Context, register
from ..tools import Fail, call, expect_close, expect_tensor

FREQ_TOL = 0.02  # sampled frequencies vs probabilities, absolute; 20,000 draws give a std of at most 0.0035
DRAWS = 20_000


def _expect_rejected(fn, *args) -> bool:
    try:
        call(fn, *args)
    except ValueError:
        return True
    except Exception as err:
        raise Fail(f"temperature {args[-1]} should raise ValueError (say what is allowed), "
                   f"not {type(err).__name__}") from None
    return False


@register("sampling.temperature", lesson=9, title="temperature_probs function")
def temperature(fn, ctx: Context) -> str:
    B, V = 3, ctx.choice([6, 10])
    logits = ctx.randn(B, V, scale=2.0)
    logits[torch.arange(B), logits.argmax(-1)] += 0.5  # a clear winner, so that T = 0.001 is one-hot to 1e-3
    out = expect_tensor(call(fn, logits, 1.0, names=("logits",)), (B, V), "temperature_probs(logits, 1.0)",
                        hint="one probability per vocabulary entry")
    if not torch.allclose(out.sum(-1), torch.ones(B), atol=1e-5):
        raise Fail("rows do not sum to one: divide the logits by T first, then take the softmax "
                   "(temperature applied after the softmax breaks this)")
    expect_close(out, logits.softmax(-1), atol=1e-5, what="the probabilities at T = 1",
                 hint="at T = 1 the probabilities are exactly softmax(logits)")
    probs = {}
    for T in (0.25, 0.5, 2.0, 4.0):
        p = expect_tensor(call(fn, logits, T, names=("logits",)), (B, V), f"temperature_probs(logits, {T})")
        if not torch.allclose(p.sum(-1), torch.ones(B), atol=1e-5):
            raise Fail(f"at T = {T} rows do not sum to one: divide the logits by T before the softmax; "
                       "a temperature applied after the softmax breaks the probabilities")
        probs[T] = p
    probs[1.0] = out
    temps = sorted(probs)
    ent = [entropy(probs[T]).mean().item() for T in temps]
    if not all(a < b for a, b in zip(ent, ent[1:])):
        raise Fail("the entropy should grow with the temperature (T > 1 flattens, T < 1 sharpens): "
                   "divide the logits by T, don't multiply")
    for T in temps:
        expect_close(probs[T], next_token_probs(logits, T), atol=1e-5, what=f"the probabilities at T = {T}",
                     mistakes={"the temperature divides the logits: softmax(logits / T)":
                               lambda T=T: (logits * T).softmax(-1)})
    cold = expect_tensor(call(fn, logits, 1e-3, names=("logits",)), (B, V), "temperature_probs(logits, 0.001)")
    greedy = torch.nn.functional.one_hot(logits.argmax(-1), V).float()
    if not torch.allclose(cold, greedy, atol=1e-3):
        raise Fail("as T -> 0 all the probability should go to the largest logit (the argmax)")
    zero = expect_tensor(call(fn, logits, 0.0, names=("logits",)), (B, V), "temperature_probs(logits, 0)",
                         nan_hint="T = 0 means greedy: return a one-hot on the argmax instead of dividing by 0")
    if not torch.allclose(zero, greedy, atol=1e-6):
        raise Fail("T = 0 means greedy: a one-hot on the argmax of each row")
    for bad in (-1.0, -0.5, float("nan")):
        if not _expect_rejected(fn, logits, bad):
            raise Fail(f"temperature {bad} should be rejected: raise ValueError for a negative or NaN temperature")
    return "T = 1 is the softmax, T -> 0 the argmax, entropy grows with T, invalid temperatures are rejected"


@register("sampling.sample", lesson=9, title="sample function")
def sample(fn, ctx: Context) -> str:
    V, T = ctx.choice([4, 6]), ctx.choice([0.5, 0.7])
    row = ctx.randn(1, V, scale=1.5)
    logits = row.expand(DRAWS, V).clone()  # (N, V): every row the same distribution, one draw each
    seed = int(ctx.randint(0, 2**31 - 1, (1,)))
    names = ("logits",)
    ids = expect_tensor(call(fn, logits, T, torch.Generator().manual_seed(seed), names=names), (DRAWS, 1),
                        "sample(logits, T, generator)", hint="one id per row: (B, V) -> (B, 1)")
    if ids.dtype != torch.int64 or ids.min() < 0 or ids.max() >= V:
        raise Fail(f"ids should be int64 in [0, {V}), got {ids.dtype} from {int(ids.min())} to {int(ids.max())}")
    again = expect_tensor(call(fn, logits, T, torch.Generator().manual_seed(seed), names=names), (DRAWS, 1))
    if not torch.equal(ids, again):
        raise Fail("the same seed gave different draws: pass the generator on, "
                   "torch.multinomial(probs, 1, generator=generator)")
    freq = torch.bincount(ids.flatten(), minlength=V).double() / DRAWS
    want = (row[0] / T).softmax(-1).double()
    if (freq - want).abs().max() > FREQ_TOL:
        if freq.max() == 1.0:
            raise Fail("every draw is the most likely token: sample from the probabilities "
                       "(torch.multinomial), don't take the argmax")
        if (freq - row[0].softmax(-1).double()).abs().max() <= FREQ_TOL:
            raise Fail(f"the frequencies follow T = 1, not T = {T}: divide the logits by the temperature first")
        if (freq - 1.0 / V).abs().max() <= FREQ_TOL:
            raise Fail("the draws are uniform: sample from softmax(logits / T), not from the token ids")
        raise Fail(f"sampled frequencies {[round(f, 3) for f in freq.tolist()]} differ from softmax(logits / T) "
                   f"{[round(f, 3) for f in want.tolist()]} by more than {FREQ_TOL}")
    greedy = expect_tensor(call(fn, logits[:5], 0.0, torch.Generator().manual_seed(seed), names=names), (5, 1))
    if not torch.equal(greedy.flatten(), logits[:5].argmax(-1)):
        raise Fail("T = 0 should pick the argmax every time (greedy)")
    return (f"{DRAWS:,} seeded draws match softmax(logits / {T}) within {FREQ_TOL}; "
            "same seed, same draws; T = 0 is greedy")


@register("sampling.top_k", lesson=9, title="top_k_filter function")
def top_k(fn, ctx: Context) -> str:
    B, V = 4, ctx.choice([10, 20])
    logits = ctx.randn(B, V, scale=2.0)
    for k in (1, ctx.choice([3, 5]), V):
        out = expect_tensor(call(fn, logits, k, names=("logits",)), (B, V), f"top_k_filter(logits, {k})",
                            finite=False)
        if torch.isnan(out).any():
            raise Fail("the result contains NaN: set the dropped logits to -inf")
        kept = torch.isfinite(out)
        if kept.sum(-1).tolist() != [k] * B:
            if ((out == 0) & (logits != 0)).any():
                raise Fail("dropped logits should be -inf, not 0: softmax gives exp(0) > 0 to a 0 logit")
            n = kept.sum(-1).tolist()
            raise Fail(f"with k = {k} each row should keep exactly {k} logits, yours kept {n}"
                       + (": an off-by-one in the cut (compare with the k-th largest, >=)" if n[0] in (k - 1, k + 1)
                          else ""))
        if not torch.equal(kept, torch.isfinite(top_k_filter(logits, k))):
            raise Fail("keep the k LARGEST logits (torch.topk(logits, k).values[..., -1:] is the k-th largest)")
        if not torch.equal(out[kept], logits[kept]):
            raise Fail("the logits you keep should stay as they were (only the others become -inf)")
    return "exactly k logits kept per row, the largest, unchanged; the rest -inf"


@register("sampling.top_p", lesson=9, title="top_p_filter function")
def top_p(fn, ctx: Context) -> str:
    B, V = 4, ctx.choice([10, 20])
    logits = ctx.randn(B, V, scale=2.0)
    for p in (1.0, ctx.choice([0.5, 0.7]), 0.9, 1e-4):
        out = expect_tensor(call(fn, logits, p, names=("logits",)), (B, V), f"top_p_filter(logits, {p})",
                            finite=False)
        if torch.isnan(out).any():
            raise Fail("the result contains NaN: set the dropped logits to -inf")
        kept, ref_kept = torch.isfinite(out), torch.isfinite(top_p_filter(logits, p))
        if not kept.any(-1).all():
            raise Fail(f"a row kept no token at p = {p}: the most likely token always stays")
        if torch.equal(kept, ref_kept):
            if not torch.equal(out[kept], logits[kept]):
                raise Fail("the logits you keep should stay as they were (only the others become -inf)")
            continue
        if not kept.gather(-1, logits.argmax(-1, keepdim=True)).all():
            raise Fail("the most likely token was dropped: keep the MOST likely tokens (sort descending "
                       "before the cumulative sum)")
        probs = logits.softmax(-1)
        mass = (probs * kept).sum(-1)
        if (mass < p - 1e-6).any():
            raise Fail(f"at p = {p} the kept tokens hold only {mass.min().item():.3f} of the probability: "
                       "keep the token that crosses p too (drop a token only when the mass before it is >= p)")
        if (kept.sum(-1) > ref_kept.sum(-1)).any():
            raise Fail(f"at p = {p} you kept more tokens than needed: keep the fewest most likely tokens whose "
                       "probabilities sum to at least p")
        raise Fail("keep the MOST likely tokens: sort by probability, descending, before the cumulative sum")
    return "keeps the fewest most likely tokens holding at least p; p = 1 keeps all; tiny p keeps the argmax"
