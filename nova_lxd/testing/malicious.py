"""A corpus of hostile images, each built from scratch, for the tests that
prove the image pipeline refuses them without touching the host.

Every builder returns a ``Hostile`` naming the attack, the file, the
typed error expected and, where the attack aims at host files, those
files (canaries the tests watch with inotify).
"""

from __future__ import annotations

import dataclasses
import io
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import zstandard

from nova_lxd.engine import errors


@dataclasses.dataclass(frozen=True)
class Hostile:
    attack: str
    path: Path
    error: type[errors.EngineError]
    targets: tuple[Path, ...] = ()


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]],
         fmt: int = tarfile.PAX_FORMAT) -> Path:
    with tarfile.open(path, "w", format=fmt) as tar:
        base = tarfile.TarInfo("./etc")
        base.type = tarfile.DIRTYPE
        base.mode = 0o755
        tar.addfile(base)
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "",
          mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = mode
    return info


def build_tar_corpus(directory: Path, canary_dir: Path) -> list[Hostile]:
    """Tarball attacks; ``canary_dir`` is the host directory they aim at."""
    d = Path(directory)
    victim = canary_dir / "victim"
    corpus = [
        Hostile("absolute path", _tar(d / "absolute.tar", [
            (_info(str(victim)), b"pwned")]), errors.UnsafeImage,
            (victim,)),
        Hostile("dot-dot escape", _tar(d / "dotdot.tar", [
            (_info("./etc/../../../../" + str(victim).lstrip("/")),
             b"pwned")]), errors.UnsafeImage, (victim,)),
        Hostile("write through a symlink", _tar(d / "symlink.tar", [
            (_info("./etc/evil", tarfile.SYMTYPE, str(canary_dir)), b""),
            (_info("./etc/evil/victim"), b"pwned")]), errors.UnsafeImage,
            (victim,)),
        Hostile("hardlink to a host file", _tar(d / "hardlink.tar", [
            (_info("./etc/passwd", tarfile.LNKTYPE, str(victim)), b"")]),
            errors.UnsafeImage, (victim,)),
        Hostile("hardlink escaping with ..", _tar(d / "hardlink2.tar", [
            (_info("./etc/shadow", tarfile.LNKTYPE,
                   "../../../../" + str(victim).lstrip("/")), b"")]),
            errors.UnsafeImage, (victim,)),
        Hostile("NUL in a name", _nul_name(d / "nul.tar"),
                errors.InvalidImage),
        Hostile("name component over 255 bytes", _tar(d / "long.tar", [
            (_info("./etc/" + "x" * 300), b"")]), errors.UnsafeImage),
        Hostile("truncated archive", _truncated(d / "truncated.tar.gz"),
                errors.InvalidImage),
        Hostile("not an image at all", _write(d / "garbage.tar",
                                              b"\x7fELF" + b"\0" * 4096),
                errors.InvalidImage),
    ]
    return corpus


def build_bomb(directory: Path, expanded: int) -> Hostile:
    """A zstd tarball of zeros: tiny on disk, ``expanded`` bytes inside."""
    path = Path(directory) / "bomb.tar.zst"
    cctx = zstandard.ZstdCompressor(level=19)
    with open(path, "wb") as raw, cctx.stream_writer(raw) as out, \
            tarfile.open(fileobj=out, mode="w|") as tar:
        info = _info("./zeros")
        info.size = expanded
        tar.addfile(info, _Zeros(expanded))
    return Hostile("compression bomb", path, errors.ImageTooLarge)


def build_inode_bomb(directory: Path, count: int) -> Hostile:
    path = Path(directory) / "inodes.tar"
    with tarfile.open(path, "w") as tar:
        for i in range(count):
            tar.addfile(_info(f"./f{i}"), io.BytesIO(b""))
    return Hostile("inode bomb", path, errors.ImageTooLarge)


def build_disk_corpus(directory: Path, canary: Path) -> list[Hostile]:
    """Disk images that would make qemu-img read host files."""
    d = Path(directory)
    backing = d / "backing.qcow2"
    _qemu_img("create", "-f", "qcow2", "-b", str(canary), "-F", "raw",
              str(backing), "64M")
    data_file = d / "datafile.qcow2"
    _qemu_img("create", "-f", "qcow2", "-o",
              f"data_file={canary},data_file_raw=on", str(data_file), "64M")
    descriptor = _write(d / "descriptor.vmdk", (
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\n"
        "parentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\n"
        f"RW 2048 FLAT \"{canary}\" 0\n\n"
        "ddb.virtualHWVersion = \"4\"\n").encode())
    huge = d / "huge.qcow2"
    _qemu_img("create", "-f", "qcow2", str(huge), "16T")
    return [
        Hostile("qcow2 backing file on the host", backing,
                errors.UnsafeImage, (canary,)),
        Hostile("qcow2 external data file on the host", data_file,
                errors.UnsafeImage, (canary,)),
        Hostile("vmdk descriptor naming a host file", descriptor,
                errors.UnsafeImage, (canary,)),
        Hostile("virtual size of 16 TiB", huge, errors.ImageTooLarge),
    ]


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = min(len(buf), self.left)
        buf[:n] = bytes(n)
        self.left -= n
        return n


def _nul_name(path: Path) -> Path:
    """A pax ``path`` record with a NUL inside: the name the header field
    shows differs from the one tarfile reports."""
    info = _info("./etc/innocent")
    info.pax_headers = {"path": "./etc/a\x00/../../../victim"}
    return _tar(path, [(info, b"x")])


def _truncated(path: Path) -> Path:
    import gzip
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        tar.addfile(_info("./etc/big"), io.BytesIO(b"x" * 200_000))
    packed = gzip.compress(data.getvalue())
    return _write(path, packed[: len(packed) // 2])


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


Builder = Callable[[Path], list[Hostile]]
