"""Exceptions that are both an ``AlgalonError`` and a built-in exception."""

from __future__ import annotations

from ._algalon import AlgalonError


class ServeError(AlgalonError, OSError):
    """``Monitor.serve`` could not listen: the port is in use, not allowed, or the address is not this host's.

    An ``OSError`` too (``errno`` is the operating system's), so code that
    catches ``OSError`` keeps working. The message names the address and
    what to do.
    """
