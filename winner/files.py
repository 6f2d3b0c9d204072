"""Writing the winner package's text files (result.json, prediction CSVs) all at once or not at all."""

from __future__ import annotations

import os
from pathlib import Path

from winner.errors import WinnerError


def write_text_atomically(path: Path, text: str, failure: str) -> None:
    """Write `text` to a temporary name beside `path`, then rename it into place: a reader never
    sees half a file. An OSError becomes one WinnerError line, `failure` followed by the reason."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, newline="")
        os.replace(tmp, path)
    except OSError as error:
        raise WinnerError(f"{failure} ({error.strerror or error})") from None
    finally:
        tmp.unlink(missing_ok=True)
