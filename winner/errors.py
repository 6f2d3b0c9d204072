"""The one error type of the winner package: a bad model file, run id, format or option, named in one line."""

from __future__ import annotations


class WinnerError(ValueError):
    """A user mistake or an unusable file; the message names the file, id or value and what is wrong."""
