"""The LR range test: :func:`find_lr`, its :class:`FinderResult`, and the suggestion rules."""

from lrkit.finder.range_test import find_lr
from lrkit.finder.result import FinderResult
from lrkit.finder.suggest import DEFAULT_RULE, RULES

#: The names of every suggestion rule, the default first.
SUGGESTION_RULES: tuple[str, ...] = (DEFAULT_RULE, *(r for r in RULES if r != DEFAULT_RULE))

__all__ = ["DEFAULT_RULE", "SUGGESTION_RULES", "FinderResult", "find_lr"]
