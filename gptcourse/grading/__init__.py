"""The autograder: `check("attention.causal", my_fn)` in a notebook, `python -m gptcourse grade` in the shell.

A check takes the learner's own object, runs it on fresh random inputs against the package's reference
(shape, then properties, then values), and reports one of: pass, fail (with a hint naming the likely
mistake), todo (the stub still raises NotImplementedError), error (the learner's exception's last line),
timeout. Nothing the learner's code does escapes a check.
"""

from .core import STATUSES, Result, check, registry

__all__ = ["check", "checks", "Result", "STATUSES"]


def checks() -> list[str]:
    """The names of every check, in lesson order."""
    return list(registry())
