"""The autograder: `check("attention.causal", my_fn)` in a notebook, `python -m gptcourse grade` in the shell.

A check takes the learner's own object, runs it on fresh random inputs against the package's reference
(shape, then properties, then values), and reports one of: pass, fail (with a hint naming the likely
mistake), todo (the stub still raises NotImplementedError), error (the learner's exception's last line, or
the grader's own internal error, said as such), timeout. Raising, hanging, printing, exiting, changing
global state, patching torch or the grader, hooks, tensor subclasses: none of it changes a verdict or
breaks the notebook. It is a tutor, not a proctor: code written on purpose to defeat it (walking the
interpreter's stack, reading the reference implementation) can; see the README's threat model.
"""

from .core import STATUSES, Result, check, registry
from .preview import preview

__all__ = ["check", "checks", "preview", "Result", "STATUSES"]


def checks() -> list[str]:
    """The names of every check, in lesson order."""
    return list(registry())


registry()  # last: load the checks now and capture the state they rely on, before any learner's code runs in one
