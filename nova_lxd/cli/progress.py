"""Progress on stderr: a byte bar for uploads, a ticker for operations.

Bars are drawn only when stderr is a terminal (``--quiet`` turns them
off), so scripts and tests see clean output.
"""

from __future__ import annotations

import os
import sys
import time
from typing import BinaryIO

from tqdm import tqdm


def enabled(quiet: bool = False) -> bool:
    return not quiet and sys.stderr.isatty()


class UploadReader:
    """A file object for ``requests`` that knows its length (so the
    request carries Content-Length, not chunks) and moves a bar as the
    body is read."""

    def __init__(self, f: BinaryIO, desc: str, show: bool) -> None:
        self.f = f
        self.len = os.fstat(f.fileno()).st_size - f.tell()
        self.bar = tqdm(total=self.len, desc=desc, unit="B",
                        unit_scale=True, unit_divisor=1024,
                        file=sys.stderr, disable=not show, leave=False)

    def __len__(self) -> int:
        return self.len

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n if n and n > 0 else 1 << 20)
        self.bar.update(len(data))
        return data

    def close(self) -> None:
        self.bar.close()


class OperationTicker:
    """Shows an operation's description, its progress metadata when the
    server gives one, and the time spent."""

    def __init__(self, desc: str, show: bool) -> None:
        self.show = show
        self.desc = desc
        self.started = time.monotonic()
        self.bar: tqdm | None = None

    def __call__(self, op: dict) -> None:
        if not self.show:
            return
        if self.bar is None:
            self.bar = tqdm(total=None, desc=self.desc, file=sys.stderr,
                            leave=False, bar_format="{desc}: {elapsed}"
                            " {postfix}")
        meta = op.get("metadata") or {}
        note = ""
        if isinstance(meta, dict):
            note = " ".join(f"{v}" for k, v in sorted(meta.items())
                            if k.endswith("_progress"))
        self.bar.set_postfix_str(note, refresh=False)
        self.bar.update(0)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
