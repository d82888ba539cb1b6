"""Lesson 09: temperature, sampling, top-k and top-p, checked by their properties and against gptcourse.sampling;
one attention step with a KV cache, checked against attention over the whole sequence."""

from __future__ import annotations

import math

import torch

from ...attention import CausalSelfAttention, causal_mask
from ...sampling import entropy, next_token_probs, top_k_filter, top_p_filter
from ..core import Context, register
from ..tools import Fail, call, call_explained, close, expect_close, expect_tensor, randomise

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


def _greedy(logits: torch.Tensor) -> torch.Tensor:
    """The T = 0 answer, a one-hot on each row's argmax (made where it is compared, never kept on the stack)."""
    return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()


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
    if not torch.allclose(cold, _greedy(logits), atol=1e-3):
        raise Fail("as T -> 0 all the probability should go to the largest logit (the argmax)")
    zero = expect_tensor(call(fn, logits, 0.0, names=("logits",)), (B, V), "temperature_probs(logits, 0)",
                         nan_hint="T = 0 means greedy: return a one-hot on the argmax instead of dividing by 0")
    if not zero.is_floating_point():
        raise Fail(f"at T = 0 you returned {zero.dtype}: return float probabilities, a one-hot of 0.0 and 1.0 "
                   "(F.one_hot gives integers: add .float())")
    if not torch.allclose(zero.float(), _greedy(logits), atol=1e-6):
        raise Fail("T = 0 means greedy: a one-hot on the argmax of each row")
    for bad in (-1.0, -0.5, float("nan")):
        if not _expect_rejected(fn, logits, bad):
            raise Fail(f"temperature {bad} should be rejected: raise ValueError for a negative or NaN temperature")
    return "T = 1 is the softmax, T -> 0 the argmax, entropy grows with T, invalid temperatures are rejected"


def _telling_row(ctx: Context, V: int, T: float) -> torch.Tensor:
    """(1, V) logits whose softmax(logits / T) is at least 3 FREQ_TOL away from what the usual mistakes sample
    (always the argmax, T = 1, uniform), so that no seed's draws can pass a mistake (a sweep found 6% did)."""
    while True:
        row = ctx.randn(1, V, scale=1.5)
        want = (row[0] / T).softmax(-1)
        others = (torch.nn.functional.one_hot(want.argmax(), V).float(), row[0].softmax(-1), torch.full((V,), 1 / V))
        if all((want - other).abs().max() >= 3 * FREQ_TOL for other in others):
            return row


@register("sampling.sample", lesson=9, title="sample function")
def sample(fn, ctx: Context) -> str:
    V, T = ctx.choice([4, 6]), ctx.choice([0.5, 0.7])
    row = _telling_row(ctx, V, T)
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


TOP_P_RULE = ("keep the token that crosses p: drop a token only when the tokens ranked above it already hold at "
              "least p, so the most likely token always stays and at p = 1 every token is kept")
SORTED_ORDER = ("the keep/drop decision is still in sorted order: put it back in vocabulary order with "
                "drop_sorted.scatter(-1, order, drop_sorted) before masking the logits")
GATHERED = ("gather(-1, order) moves the decision the wrong way: sorted position i belongs to vocabulary id "
            "order[i], so put it back with drop_sorted.scatter(-1, order, drop_sorted)")
RAW_LOGITS = ("the cumulative sum runs over probabilities: take the softmax of the sorted logits before "
              "cumsum (you summed the raw logits)")
ASCENDING = "keep the MOST likely tokens: sort by probability, descending, before the cumulative sum"


def _top_p_mistakes(logits: torch.Tensor) -> dict[str, list]:
    """hint -> kept-mask makers (p -> (B, V) bool, vocabulary order) of the usual top-p mistakes."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    probs = sorted_logits.softmax(dim=-1)
    rising, rising_order = torch.sort(logits, dim=-1)  # (B, V), least likely first

    def keep_sorted(values: torch.Tensor, p: float) -> torch.Tensor:  # the right rule, over `values`
        return ~(values.cumsum(-1) - values >= p)

    def keep_cum_at_most(values: torch.Tensor, p: float) -> torch.Tensor:  # keep while the running sum <= p
        keep = values.cumsum(-1) <= p
        return torch.cat((torch.ones_like(keep[..., :1]), keep[..., 1:]), dim=-1)

    def back(keep: torch.Tensor, by: torch.Tensor = order) -> torch.Tensor:  # sorted -> vocabulary order
        return keep.scatter(-1, by, keep)

    return {
        SORTED_ORDER: [lambda p: keep_sorted(probs, p)],
        GATHERED: [lambda p: keep_sorted(probs, p).gather(-1, order)],
        RAW_LOGITS: [lambda p: back(keep_sorted(sorted_logits, p)),
                     lambda p: back(keep_cum_at_most(sorted_logits, p)),
                     lambda p: back(sorted_logits.cumsum(-1) <= p)],
        ASCENDING: [lambda p: back(keep_sorted(rising.softmax(-1), p), rising_order)],
    }


def _below(mass: float, p: float) -> str:
    """`mass` (< p) with enough digits to show that it is below p: never a rounded number that reads as p."""
    for digits in range(3, 16):
        text = f"{mass:.{digits}f}"
        if float(text) < p:
            return text
    return repr(mass)


@register("sampling.top_p", lesson=9, title="top_p_filter function")
def top_p(fn, ctx: Context) -> str:
    B, V = 4, ctx.choice([10, 20])
    logits = ctx.randn(B, V, scale=2.0)
    ps = (1.0, ctx.choice([0.5, 0.7]), 0.9, 1e-4)
    outs = {}
    for p in ps:
        out = expect_tensor(call(fn, logits, p, names=("logits",)), (B, V), f"top_p_filter(logits, {p})",
                            finite=False)
        if torch.isnan(out).any():
            raise Fail("the result contains NaN: set the dropped logits to -inf")
        outs[p] = out
    kept = {p: torch.isfinite(out) for p, out in outs.items()}
    want = {p: torch.isfinite(top_p_filter(logits, p)) for p in ps}
    wrong = [p for p in ps if not torch.equal(kept[p], want[p])]
    # a mistake is named only when it explains every p, so the hint is the same whatever the seed
    for hint, makers in (_top_p_mistakes(logits).items() if wrong else ()):
        if any(all(torch.equal(kept[p], make(p)) for p in ps) for make in makers):
            raise Fail(hint)
    for p in ps:
        if not torch.equal(outs[p][kept[p]], logits[kept[p]]):
            raise Fail("the logits you keep should stay as they were (only the others become -inf)")
    if not wrong:
        return "keeps the fewest most likely tokens holding at least p; p = 1 keeps all; tiny p keeps the argmax"
    p = wrong[0]
    mine, right = kept[p], want[p]
    if not mine.gather(-1, logits.argmax(-1, keepdim=True)).all():
        if not mine.any(-1).all():
            raise Fail(f"a row kept no token at p = {p:g}: {TOP_P_RULE}")
        raise Fail(f"the most likely token was dropped at p = {p:g}: {ASCENDING}")
    if not (mine & ~right).any():  # a strict subset of the right tokens: too few
        row = int((mine != right).any(-1).nonzero()[0])
        mass = (logits[row].double().softmax(-1) * mine[row]).sum().item()
        n, need = int(mine[row].sum()), int(right[row].sum())
        raise Fail(f"at p = {p:g} a row kept {n} of the {need} tokens it needs, holding {_below(mass, p)} of the "
                   f"probability: {TOP_P_RULE}")
    if not (right & ~mine).any():
        raise Fail(f"at p = {p:g} you kept more tokens than needed: keep the fewest most likely tokens whose "
                   "probabilities sum to at least p")
    raise Fail(ASCENDING)


# --- the KV cache: one attention step on the new tokens, with the earlier keys and values kept ---------------

KV_POSITIONS = ("positions not offset by the cache length: the new tokens sit at positions past..past+T-1 "
                "(past = k_cache.shape[2]), so rotate with attn.rotary(q, past) and attn.rotary(k, past), not from 0")
KV_NO_ROPE = "RoPE is missing: rotate q and k with attn.rotary(q, past) and attn.rotary(k, past) before attending"
KV_APPEND = ("the cache was not appended: return torch.cat([k_cache, k], dim=2) and the same for v (past + T "
             "positions), so that the next step sees these tokens too")
KV_ONLY_NEW = ("the new queries attended only to the new keys: attend over every key, the cached ones and the new "
               "ones (the concatenated k and v)")
KV_TOP_MASK = ("the mask was applied as if the new queries were at positions 0..T-1: they are the last T of past + T "
               "positions, so new query i sees keys 0..past + i (mask rows past..past+T-1: "
               "causal_mask(past + T)[past:])")
KV_NO_MASK = ("with several new tokens at once (a prompt), each may see the cache and the new tokens up to itself, "
              "not the later ones: apply the causal mask, offset by past (causal_mask(past + T)[past:])")
KV_AXIS = "concatenate along the positions axis: the caches are (B, nh, T, hs), so torch.cat([k_cache, k], dim=2)"
KV_MASK_SHAPE = ("the mask needs one row per new query and one column per key (past + T of them), not T x T: "
                 "causal_mask(past + T)[past:]")
KV_SCALE = "scores are not scaled: divide q @ k^T by sqrt(head size) before the softmax"
KV_NO_PROJ = "the output projection is missing: merge the heads to (B, T, C), then attn.c_proj"
KV_CONTENT = ("the returned k_cache should hold the keys after RoPE (each rotated at its own position) and v_cache "
              "the values, oldest first")


def _kv_step(attn, x: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, flaw: str = ""):
    """The cached attention step with one known mistake (`flaw`), to recognise a learner's output by it."""
    B, T, C = x.shape
    nh = attn.n_head
    past = k_cache.size(2)
    q, k, v = attn.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
    q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
    k_plain = k
    if flaw != "no_rope":
        start = 0 if flaw == "no_offset" else past
        q, k = attn.rotary(q, start), attn.rotary(k, start)
    dim = {"cat_dim0": 0, "cat_dim1": 1, "cat_last": -1}.get(flaw, 2)
    k_all, v_all = torch.cat([k_cache, k], dim=dim), torch.cat([v_cache, v], dim=dim)  # (B, nh, past + T, hs)
    keys, values = (k, v) if flaw == "only_new" else (k_all, v_all)
    Tk = keys.size(2)
    scores = q @ keys.transpose(-2, -1)  # (B, nh, T, Tk)
    if flaw != "no_scale":
        scores = scores / math.sqrt(C // nh)
    if flaw == "mask_TxT":
        scores = scores.masked_fill(~causal_mask(T), float("-inf"))
    elif flaw != "no_mask":
        allowed = causal_mask(Tk)[:T] if flaw == "top_mask" else causal_mask(Tk)[Tk - T :]  # (T, Tk)
        scores = scores.masked_fill(~allowed, float("-inf"))
    y = (scores.softmax(-1) @ values).transpose(1, 2).reshape(B, T, C)  # (B, T, C)
    if flaw == "unrotated_cache":  # attends with the rotated keys, but keeps the plain ones
        k_all = torch.cat([k_cache, k_plain], dim=2)
    return (y if flaw == "no_proj" else attn.c_proj(y)), k_all, v_all


def _kv_run(attn, x: torch.Tensor, chunks: list[int], flaw: str) -> torch.Tensor:
    """Outputs (B, T, C) of the flawed step fed chunk by chunk from an empty cache, its own cache carried on."""
    B, _, C = x.shape
    k = v = x.new_zeros(B, attn.n_head, 0, C // attn.n_head)
    outs, start = [], 0
    for n in chunks:
        y, k, v = _kv_step(attn, x[:, start : start + n], k, v, flaw)
        outs.append(y)
        start += n
    return torch.cat(outs, dim=1)


KV_VALUE_MISTAKES = {KV_POSITIONS: "no_offset", KV_NO_ROPE: "no_rope", KV_ONLY_NEW: "only_new",
                     KV_TOP_MASK: "top_mask", KV_NO_MASK: "no_mask", KV_SCALE: "no_scale", KV_NO_PROJ: "no_proj",
                     KV_CONTENT: "unrotated_cache"}
KV_ERROR_MISTAKES = {KV_AXIS: ("cat_dim0", "cat_dim1", "cat_last"), KV_MASK_SHAPE: ("mask_TxT",)}


@register("sampling.kv_cache", lesson=9, title="cached attention step function")
def kv_cache(fn, ctx: Context) -> str:
    nh, hs = ctx.choice([2, 4]), ctx.choice([4, 8])
    C, B = nh * hs, 2
    torch.manual_seed(ctx.seed)  # the layer's initialisation draws from the global generator (restored after)
    attn = randomise(CausalSelfAttention(C, nh, block_size=16, bias=ctx.choice([True, False]), rope=True), ctx,
                     scale=0.3, add=True).eval()
    prompt = ctx.choice([3, 4])
    chunks = [prompt, 1, 1, 2, 1, 1]  # a prompt at once, single tokens, and two at once in the middle
    x = ctx.randn(B, sum(chunks), C)

    def refuse(*args, **kwargs):
        raise Fail("write the step from the layer's parts (c_attn, rotary, c_proj): calling attn(x) itself is "
                   "not the exercise")

    attn.forward = refuse  # instance attribute: attn(x) now lands here, in the learner's copies too
    k_cache = v_cache = x.new_zeros(B, nh, 0, hs)
    outs, start = [], 0
    try:
        for n in chunks:
            past, new = k_cache.size(2), x[:, start : start + n]
            errors = [(hint, lambda f=f, a=(new, k_cache, v_cache): _kv_step(attn, *a, f))
                      for hint, flaws in KV_ERROR_MISTAKES.items() for f in flaws]
            out = call_explained(fn, attn, new, k_cache, v_cache, names=("attn", "x", "k_cache", "v_cache"),
                                 errors=errors)
            if not isinstance(out, (tuple, list)) or len(out) != 3:
                raise Fail("return three things: (y, k_cache, v_cache), the output for the new tokens and both "
                           "caches with the new keys and values appended")
            y = expect_tensor(out[0], (B, n, C), f"y for {n} new token(s) after {past} cached",
                              hint="one output row per new token")
            for name, cache in zip(("k_cache", "v_cache"), out[1:]):
                if isinstance(cache, torch.Tensor) and cache.dim() == 4 and cache.shape[2] != past + n \
                        and cache.shape[2] in (past, n):
                    raise Fail(KV_APPEND)  # the old cache, or the new keys alone
                expect_tensor(cache, (B, nh, past + n, hs), f"the returned {name} after {past} cached + {n} new",
                              hint=KV_AXIS)
            k_cache, v_cache = out[1].detach(), out[2].detach()
            outs.append(y)
            start += n
    finally:
        del attn.forward
    with torch.no_grad():
        ref = attn(x)  # (B, T, C): attention over the whole sequence at once, no cache
        mistakes = {hint: (lambda f=flaw: _kv_run(attn, x, chunks, f)) for hint, flaw in KV_VALUE_MISTAKES.items()}
        expect_close(torch.cat(outs, dim=1), ref, atol=1e-4, rtol=1e-4,
                     what="the outputs, step by step with the cache, against attention over the whole sequence",
                     mistakes=mistakes)
        _, ref_k, ref_v = attn.project_qkv(x)  # (B, nh, T, hs) each, keys rotated
        if not (close(k_cache, ref_k, 1e-4, 1e-4) and close(v_cache, ref_v, 1e-4, 1e-4)):
            raise Fail(KV_CONTENT)
    return (f"fed as a prompt of {prompt}, single tokens and a pair, the cached step equals attention over the "
            "whole sequence; the caches hold every rotated key and value")
