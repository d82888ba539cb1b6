"""`with preview():` turns a stub's NotImplementedError into one TODO line and lets every other error through."""

from __future__ import annotations

import pytest

from gptcourse.grading import preview


class CharTok:
    def __init__(self, text):
        raise NotImplementedError("build the sorted vocabulary")


def causal_mask(T):
    raise NotImplementedError("return the (T, T) boolean mask")


def test_a_stub_prints_todo_with_its_name_and_instruction(capsys):
    with preview():
        print(causal_mask(4))
    with preview():
        CharTok("hello")
    assert capsys.readouterr().out.splitlines() == [
        "TODO causal_mask: not done yet: return the (T, T) boolean mask",
        "TODO CharTok.__init__: not done yet: build the sorted vocabulary",
    ]


def test_a_bare_stub_in_the_cell_itself_is_todo_too(capsys):
    with preview():
        exec(compile("raise NotImplementedError", "<cell>", "exec"))  # as a notebook cell runs its code
    assert capsys.readouterr().out.startswith("TODO this cell: not done yet: replace the `raise NotImplementedError`")


def test_written_code_runs_as_usual_and_its_errors_are_raised(capsys):
    with preview():
        print("tensor([1, 0])")
    assert capsys.readouterr().out == "tensor([1, 0])\n"
    with pytest.raises(ZeroDivisionError), preview():
        print(1 / 0)
