"""Watch host files for any open or read, with inotify, to prove that an
image conversion never touched them (a qcow2 backing file pointing at
/etc/shadow must be refused before anything opens it)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
from pathlib import Path

IN_ACCESS = 0x001
IN_MODIFY = 0x002
IN_OPEN = 0x020
_EVENT = struct.Struct("iIII")

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class Canary:
    """A file with unique content, watched while the context is open."""

    def __init__(self, path: Path, content: bytes | None = None) -> None:
        self.path = Path(path)
        self.content = content or os.urandom(16).hex().encode()
        self._fd = -1
        self.events: list[int] = []

    def __enter__(self) -> Canary:
        self.path.write_bytes(self.content)
        self._fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        wd = _libc.inotify_add_watch(self._fd, str(self.path).encode(),
                                     IN_ACCESS | IN_MODIFY | IN_OPEN)
        if wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")
        return self

    def __exit__(self, *exc: object) -> None:
        self.poll()
        os.close(self._fd)

    def poll(self) -> list[int]:
        while select.select([self._fd], [], [], 0)[0]:
            data = os.read(self._fd, 65536)
            offset = 0
            while offset < len(data):
                _, mask, _, length = _EVENT.unpack_from(data, offset)
                self.events.append(mask)
                offset += _EVENT.size + length
        return self.events

    @property
    def touched(self) -> bool:
        return bool(self.poll())

    @property
    def unchanged(self) -> bool:
        return self.path.read_bytes() == self.content
