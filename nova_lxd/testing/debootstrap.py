"""A Debian minbase rootfs for tests and benchmarks, built once and cached.

``debootstrap --variant=minbase`` takes ~35 s and reaches Debian's mirror
(the one registry these machines can reach); the result is kept under
``/var/cache/nova-lxd-tests`` so later runs reuse it. Concurrent callers
wait for one build under a lock.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from nova_lxd.engine.locks import FileLock

CACHE = Path(os.environ.get("NOVA_LXD_TEST_CACHE",
                            "/var/cache/nova-lxd-tests"))
MIRROR = os.environ.get("NOVA_LXD_DEBIAN_MIRROR",
                        "http://deb.debian.org/debian")


def host_suite() -> str:
    """The host's Debian codename (bookworm, trixie, ...)."""
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME" and value:
            return value.strip('"')
    return "bookworm"


# minbase has no init; systemd-sysv makes it bootable as a container.
INCLUDE = ("systemd-sysv",)


def minbase_rootfs(suite: str | None = None, cache: Path = CACHE) -> Path:
    """Path of a cached minbase tree (root-owned, do not modify it)."""
    suite = suite or host_suite()
    target = cache / f"minbase-{suite}-init"
    stamp = target / ".nova-lxd-complete"
    if stamp.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(cache / f"minbase-{suite}.lock", timeout=1800):
        if stamp.exists():
            return target
        shutil.rmtree(target, ignore_errors=True)
        partial = cache / f".minbase-{suite}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            subprocess.run(["debootstrap", "--variant=minbase",
                            "--include=" + ",".join(INCLUDE), suite,
                            str(partial), MIRROR], check=True,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise RuntimeError(f"debootstrap {suite} failed: "
                               f"{exc.stderr[-2000:]}") from exc
        # Apt's caches are not part of an image.
        shutil.rmtree(partial / "var/cache/apt/archives",
                      ignore_errors=True)
        (partial / "var/cache/apt/archives/partial").mkdir(parents=True)
        os.rename(partial, target)
        stamp.write_text(suite + "\n")
    return target
