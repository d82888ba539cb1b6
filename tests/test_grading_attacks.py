"""The comparison boundary: what a learner's code does to fool a check, or the next one, changes no verdict.

Most tests here are attacks that were tried and seen to work on an earlier grader (issue 15, section 1): a
tensor or int that lies about equality, a monkeypatch of torch or of the grader, a hook on a module the
check uses for its own reference, the expected answer read off the call stack, an error or a hang in the
check's own code reported as the learner's. The others guard the other side: the learner's own errors,
hangs and unusual but honest answers are still judged as before.
"""

from __future__ import annotations

import builtins
import math
import sys
import time

import pytest
import torch
from torch.overrides import TorchFunctionMode

from gptcourse.grading import check, checks
from gptcourse.grading.core import CheckSpec, run_check

from .grading_cases import load
from .grading_cases.l03 import weights_with
from .grading_cases.l05 import gelu

GOOD, WRONG = load()
LIES = {"allclose", "equal", "isclose", "eq", "__eq__", "ne", "__ne__"}


class AlwaysEqual(torch.Tensor):
    """A tensor that answers True to every comparison and False to every inequality."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in LIES:
            return name not in ("ne", "__ne__")
        return super().__torch_function__(func, types, args, kwargs or {})


def lying(value):
    if isinstance(value, torch.Tensor):
        return value.as_subclass(AlwaysEqual)
    if isinstance(value, tuple):
        return tuple(lying(v) for v in value)
    return value


def returns_tensors(name: str) -> bool:
    return name.split(".")[0] not in ("tokens", "params", "scaling") and name not in ("train.get_lr", "train.step")


LYING_CASES = [(n, w, h) for n, w, h in WRONG if returns_tensors(n)]


@pytest.mark.parametrize("name, wrong, hint", LYING_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(LYING_CASES)])
def test_a_tensor_subclass_that_lies_about_equality_changes_nothing(name, wrong, hint):
    result = check(name, lambda *a, **k: lying(wrong(*a, **k)), seed=3, quiet=True)
    assert result.status == "fail" and hint in result.message, result.line


class Yes(int):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = int.__hash__


class YesStr(str):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = str.__hash__


class LyingTokenizer:
    def __init__(self, text):
        self.vocab_size = Yes(1)

    def encode(self, s):
        return [Yes(0)] * len(s)

    def decode(self, ids):
        return YesStr("")


def test_int_and_str_subclasses_that_always_compare_equal_fail():
    result = check("tokens.char_tokenizer", LyingTokenizer, quiet=True)
    assert result.status == "fail", result.line


def test_a_patch_of_torch_passes_neither_its_own_check_nor_the_next():
    real_allclose, real_equal = torch.allclose, torch.equal
    no_cubic = lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * x))  # noqa: E731

    def patcher(x):
        torch.allclose = lambda *a, **k: True
        torch.equal = lambda *a, **k: True
        return no_cubic(x)

    try:
        result = check("ffn.gelu", patcher, quiet=True)
        assert result.status == "fail" and "cubic term" in result.message, result.line
        assert torch.allclose is real_allclose and torch.equal is real_equal
        after = check("attention.weights", lambda q, k: weights_with(q, k, scale=1.0), quiet=True)
        assert after.status == "fail" and "sqrt(head size)" in after.message, after.line
    finally:
        torch.allclose, torch.equal = real_allclose, real_equal


def _patch_grader_close(x):
    import gptcourse.grading.tools as tools

    tools.close = lambda *a, **k: True
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * x))


def _patch_reference_gelu(x):
    import gptcourse.grading.lessons.l05_feed_forward as l05

    wrong = lambda x, approximate="tanh": 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * x))  # noqa: E731
    l05.ref_gelu = wrong
    return wrong(x)


def _patch_torch_tanh(x):
    real = torch.tanh
    torch.tanh = lambda t: real(t / (1 + 0.044715 * t * t))  # makes the reference drop the cubic term, roughly
    return 0.5 * x * (1 + real(math.sqrt(2 / math.pi) * x))


def _patch_math_sqrt(x):
    math.sqrt = lambda v: 1.0
    return 0.5 * x * (1 + torch.tanh(1.0 * (x + 0.044715 * x**3)))


def _patch_builtins_all(x):
    builtins.all = lambda it: True
    builtins.abs = lambda v: 0.0
    return torch.relu(x)


@pytest.mark.parametrize("patcher", [_patch_grader_close, _patch_reference_gelu, _patch_torch_tanh, _patch_math_sqrt,
                                     _patch_builtins_all])
def test_patching_the_grader_torch_math_or_builtins_does_not_pass_and_is_undone(patcher):
    import gptcourse.grading.lessons.l05_feed_forward as l05
    import gptcourse.grading.tools as tools

    saved = (tools.close, l05.ref_gelu, torch.tanh, math.sqrt, builtins.all, builtins.abs)
    try:
        result = check("ffn.gelu", patcher, quiet=True)
        assert result.status == "fail", result.line
        assert (tools.close, l05.ref_gelu, torch.tanh, math.sqrt, builtins.all, builtins.abs) == saved
    finally:
        tools.close, l05.ref_gelu, torch.tanh, math.sqrt, builtins.all, builtins.abs = saved


def test_a_patch_of_a_tensor_method_is_undone_after_the_learners_call():
    real = torch.Tensor.__sub__

    def patcher(n, d):
        torch.Tensor.__sub__ = lambda a, b: torch.zeros(())
        return 2 * n * d

    try:
        result = check("scaling.flops", patcher, quiet=True)
        assert result.status == "fail" and "backward" in result.message, result.line
        assert torch.Tensor.__sub__ is real
    finally:
        torch.Tensor.__sub__ = real


def test_a_patch_made_before_the_check_cannot_change_its_verdict_and_is_kept_for_the_learner():
    real = torch.allclose
    torch.allclose = lambda *a, **k: True  # the learner's own cell, outside any check
    try:
        result = check("ffn.gelu", lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * x)), quiet=True)
        assert result.status == "fail" and "cubic term" in result.message, result.line
        assert torch.allclose is not real  # the learner's session is theirs: put back as it was
    finally:
        torch.allclose = real


class YesMode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in LIES:
            return name not in ("ne", "__ne__")
        return func(*args, **(kwargs or {}))


def test_a_torch_function_mode_left_on_changes_nothing_and_is_taken_off():
    depth = torch._C._len_torch_function_stack()

    def moody(x, nh):
        YesMode().__enter__()  # never left
        return x.view(x.shape[0], nh, x.shape[1], -1)

    try:
        result = check("multihead.split", moody, quiet=True)
        assert result.status == "fail" and "then transpose(1, 2)" in result.message, result.line
        assert torch._C._len_torch_function_stack() == depth
    finally:
        while torch._C._len_torch_function_stack() > depth:
            torch._C._pop_torch_function_stack()


def test_a_global_forward_hook_cannot_change_the_reference():
    from torch.nn.modules import module as nn_module

    def hooked(x, a, m, l1, l2):
        def silence(mod, inputs, out):
            return torch.zeros_like(out) if type(mod).__name__ in ("CausalSelfAttention", "MLP") else out

        nn_module.register_module_forward_hook(silence)
        return x.clone()  # no attention, no MLP

    before = dict(nn_module._global_forward_hooks)
    try:
        result = check("norm.pre_norm_block", hooked, quiet=True)
        assert result.status == "fail", result.line
        assert dict(nn_module._global_forward_hooks) == before
    finally:
        for key in set(nn_module._global_forward_hooks) - set(before):
            del nn_module._global_forward_hooks[key]


def _zero_hook(module, inputs, out):
    return torch.zeros_like(out)


def _hooks_pre_norm(x, a, m, l1, l2):
    a.register_forward_hook(_zero_hook)
    m.register_forward_hook(_zero_hook)
    return x.clone()


def _hooks_multihead(x, c_attn, c_proj, nh):
    c_proj.register_forward_hook(_zero_hook)
    return torch.zeros_like(x)


def _hooks_mlp(x, c_fc, c_proj):
    c_proj.register_forward_hook(_zero_hook)
    return torch.zeros_like(x)


@pytest.mark.parametrize("name, hooker", [("norm.pre_norm_block", _hooks_pre_norm),
                                          ("multihead.attention", _hooks_multihead), ("ffn.mlp", _hooks_mlp)])
def test_hooks_on_the_modules_handed_to_the_learner_cannot_change_the_reference(name, hooker):
    result = check(name, hooker, quiet=True)
    assert result.status == "fail", result.line


def _outer_locals():
    frame = sys._getframe(2)
    while frame is not None:
        yield frame.f_locals
        frame = frame.f_back


def test_the_expected_answer_is_not_on_the_call_stack():
    def thief(model, idx):
        for names in _outer_locals():
            if isinstance(names.get("ref"), torch.Tensor):
                return names["ref"]
        raise LookupError("no reference on the stack")

    result = check("gpt.forward", thief, quiet=True)
    assert result.status != "pass", result.line


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and a.numel() > 1 and torch.equal(a, b)
    if isinstance(a, float) and isinstance(b, float):
        return a != 0 and abs(a - b) <= 1e-12 * abs(a)
    if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool) and not isinstance(b, bool):
        return abs(a) >= 1000 and a == b
    return False


def _values(answer):
    if isinstance(answer, (tuple, list)):
        return [v for part in answer for v in _values(part)]
    return [answer]


def _found(value, wanted, seen) -> bool:
    values = _values(value) if isinstance(value, (tuple, list, dict)) else [value]
    if isinstance(value, dict):
        values = [v for part in value.values() for v in _values(part)]
    return any(_equal(v, w) and not any(_equal(v, s) for s in seen) for v in values for w in wanted)


@pytest.mark.parametrize("name", [n for n in checks() if n != "tokens.char_tokenizer"])
def test_no_frame_holds_the_right_answer_while_the_learners_code_runs(name):
    """A spy with the right answer looks through every outer frame's locals for a value equal to it."""
    good, leaks, seen = GOOD[name], [], []

    def spy(*args, **kwargs):
        answer = good(*args, **kwargs)
        inputs = _values([*args, *kwargs.values()])
        wanted = [v for v in _values(answer) if not any(_equal(v, a) for a in inputs)]
        frame = sys._getframe(1)
        while frame is not None:
            for key, value in frame.f_locals.items():
                if _found(value, wanted, seen):
                    leaks.append(f"{frame.f_code.co_name}:{key}")
            frame = frame.f_back
        seen.extend(_values(answer))
        return answer

    result = check(name, spy, seed=4, quiet=True)
    assert result.status == "pass", result.line
    assert not leaks, f"the right answer sat in {leaks} while the learner's code ran"


def test_an_error_in_the_checks_own_code_is_the_graders_not_the_learners():
    def broken_check(fn, ctx):
        from gptcourse.grading.tools import call

        call(fn, 1.0)
        return {}["missing"]  # the check's own bug

    result = run_check(CheckSpec("test.broken", 1, "a function", broken_check), lambda x: x)
    assert result.status == "error" and result.points == 0
    assert result.message.startswith("internal error in the check test.broken"), result.line
    assert "please report" in result.message and "KeyError" in result.message


def test_the_learners_own_error_stays_the_learners():
    def a_check(fn, ctx):
        from gptcourse.grading.tools import call

        call(fn, 1.0)
        return "fine"

    def mine(x):
        raise ValueError("my own mistake")

    result = run_check(CheckSpec("test.mine", 1, "a function", a_check), mine)
    assert result.status == "error" and result.message.startswith("ValueError: my own mistake"), result.line


def test_a_hang_in_the_checks_own_reference_is_the_graders_timeout():
    def slow_reference(fn, ctx):
        from gptcourse.grading.tools import call

        call(fn, 1.0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the reference itself runs past the limit
            pass
        return "never"

    start = time.perf_counter()
    result = run_check(CheckSpec("test.slow", 1, "a function", slow_reference, timeout=0.3), lambda x: x)
    assert time.perf_counter() - start < 3
    assert result.status == "error" and "internal error in the check test.slow" in result.message, result.line
    assert "loop that never ends" not in result.message


def test_a_limit_the_learners_code_used_up_is_the_learners_timeout():
    def busy_check(fn, ctx):
        from gptcourse.grading.tools import call

        call(fn, 1.0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the check's own bit of work crosses the limit...
            pass
        return "never"

    def slow(x):  # ...but the learner's code had used most of it
        time.sleep(0.3)
        return x

    result = run_check(CheckSpec("test.busy", 1, "a function", busy_check, timeout=0.4), slow)
    assert result.status == "timeout", result.line


def test_the_learners_hang_is_still_a_timeout():
    def a_check(fn, ctx):
        from gptcourse.grading.tools import call

        call(fn, 1.0)
        return "fine"

    def hang(x):
        while True:
            pass

    result = run_check(CheckSpec("test.hang", 1, "a function", a_check, timeout=0.3), hang)
    assert result.status == "timeout" and "loop that never ends" in result.message, result.line


def test_a_list_the_learner_changes_cannot_steer_the_reference():
    from gptcourse import scaling

    calls = []

    def steer(x, y):
        calls.append(1)
        if len(calls) == 1:
            law = scaling.fit_power_law(x, y)
            return law.a, law.alpha
        y[:] = [1.0 / v for v in x]  # the exact power law a = 1, alpha = 1
        return 1.0, 1.0

    result = check("scaling.fit_power_law", steer, quiet=True)
    assert result.status == "fail", result.line


def test_an_input_turned_into_a_lying_subclass_cannot_steer_the_reference():
    def turncoat(x, nh):
        x.__class__ = AlwaysEqual  # the check's own tensor, if it handed over the original
        return x.view(x.shape[0], nh, x.shape[1], -1)

    result = check("multihead.split", turncoat, quiet=True)
    assert result.status == "fail" and "then transpose(1, 2)" in result.message, result.line


def test_a_parameter_returned_as_an_answer_is_still_graded():
    result = check("ffn.gelu", lambda x: torch.nn.Parameter(gelu(x)), quiet=True)  # a Tensor subclass
    assert result.passed, result.line


def test_copying_the_packages_objects_is_not_taken_for_a_patch():
    """`copy.deepcopy` caches a class's slot names on the class; that must not cost a full put-back per call."""
    from gptcourse import GPTConfig
    from gptcourse.block import Block
    from gptcourse.grading import isolation
    from gptcourse.grading.tools import call

    seen = []

    def a_check(fn, ctx):
        config = GPTConfig(n_layer=1, n_head=1, n_embd=4, vocab_size=5, block_size=4)
        call(fn, config, Block(config))
        return "fine"

    def learner(config, block):  # runs on the deep copies that `call` made
        seen.append(isolation._untouched(isolation._PRISTINE[0]))

    assert run_check(CheckSpec("test.copy", 1, "a function", a_check), learner).passed
    assert seen == [True]

def test_a_patch_made_before_the_check_cannot_change_the_inputs_it_draws():
    real = torch.randn
    torch.randn = lambda *shape, **kw: torch.zeros(*shape, dtype=kw.get("dtype"))  # all-zero scores: any scale fits
    try:
        result = check("attention.weights", lambda q, k: weights_with(q, k, scale=1.0), quiet=True)
        assert result.status == "fail" and "sqrt(head size)" in result.message, result.line
        assert torch.randn is not real
    finally:
        torch.randn = real
