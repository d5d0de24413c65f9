"""Atomic file writes: a temporary file in the same folder, then ``os.replace``.

Below every package that saves a file (spec files, agent checkpoints): each names its own
error through ``error``, so a reader of a spec sees a ``SpecError`` and a saver of an agent an
``AgentCheckpointError``, both saying ``cannot write <path>: <reason>``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Union

__all__ = ["PathLike", "write_text_atomic", "write_bytes_atomic"]

PathLike = Union[str, "os.PathLike[str]"]


def write_text_atomic(
    path: PathLike, text: str, *, error: Callable[[str], Exception] = OSError
) -> None:
    """Write text to ``path`` atomically (temporary file in the same folder + ``os.replace``).

    Args:
        path: Destination file.
        text: Content (UTF-8).
        error: Makes the exception raised from its message (default ``OSError``).

    Raises:
        Exception: ``error("cannot write <path>: <reason>")`` when the file cannot be
            written; the destination is left untouched.
    """
    write_bytes_atomic(path, text.encode("utf-8"), error=error)


def write_bytes_atomic(
    path: PathLike, data: bytes, *, error: Callable[[str], Exception] = OSError
) -> None:
    """Write bytes to ``path`` atomically (temporary file in the same folder + ``os.replace``).

    Args:
        path: Destination file.
        data: Content.
        error: Makes the exception raised from its message (default ``OSError``).

    Raises:
        Exception: ``error("cannot write <path>: <reason>")`` when the file cannot be
            written; the destination is left untouched.
    """
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise error(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise error(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
