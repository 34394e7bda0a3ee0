"""The errors a searcher raises.

    AutoLRError
    ├── SearchError (RuntimeError)       the GP could not be fitted or gave a non-finite posterior
    └── SearchInputError (ValueError)    observations a searcher cannot accept

``SearchError`` is an expected, recoverable failure: the controller catches it and asks a
``RandomSearcher`` instead. ``SearchInputError`` is a bug in the caller and is never caught.
"""

from __future__ import annotations

from autolr.errors import AutoLRError


class SearchError(AutoLRError, RuntimeError):
    """The GP surrogate could not be fitted or evaluated on these observations.

    Raised by ``GPSearcher.propose``; the message says what failed. Fall back to
    ``RandomSearcher`` for this proposal.
    """


class SearchInputError(AutoLRError, ValueError):
    """Observations or arguments that a searcher cannot accept.

    Raised for ``x_unit`` outside [0, 1] or non-finite, non-finite ``y``, lengths that
    differ, an empty observation set where one is needed, or an invalid constructor
    option. The message names the argument, the index and the value.
    """
