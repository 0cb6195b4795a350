"""Files written whole or not at all: the keystore's keys and manifest, the font's base face.

A reader (another worker starting, a restart after a crash) sees the old file or the whole
new one, never a part: the bytes go to a temporary file next to the target, reach the disk,
and are then renamed over it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace ``path`` with ``data``; the temporary is ``.<name>.<random>.tmp`` beside it
    and is removed if anything fails. ``private``: readable by the owner only (keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    descriptor = os.open(temporary, flags, 0o600 if private else 0o644)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
