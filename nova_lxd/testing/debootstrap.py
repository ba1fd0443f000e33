"""A Debian minbase rootfs for tests and benchmarks, built once and cached.

``debootstrap --variant=minbase`` takes ~35 s and reaches Debian's mirror
(the one registry these machines can reach); the result is kept under
``/var/cache/nova-lxd-tests`` so later runs reuse it. Concurrent callers
wait for one build under a lock.

``cloud_init_rootfs`` is the same minbase plus ``cloud-init`` (and
``openssh-server``, whose ``ssh-keygen`` cloud-init's ssh module uses),
cached next to it, for tests of metadata injection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
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
# debootstrap does not resolve virtual packages: python3-cryptography
# (via python3-oauthlib) needs python3-cffi-backend-api-*, which only
# python3-cffi-backend provides.
CLOUD_INIT = ("cloud-init", "openssh-server", "python3-cffi-backend")


def minbase_rootfs(suite: str | None = None, cache: Path = CACHE) -> Path:
    """Path of a cached minbase tree (root-owned, do not modify it)."""
    return _cached_tree(suite or host_suite(), cache, "init", INCLUDE)


def cloud_init_rootfs(suite: str | None = None,
                      cache: Path = CACHE) -> Path:
    """Path of a cached minbase tree with cloud-init (do not modify it)."""
    return _cached_tree(suite or host_suite(), cache, "cloud-init",
                        INCLUDE + CLOUD_INIT, _generate_en_us_locale)


def _generate_en_us_locale(tree: Path) -> None:
    """cloud-init's locale module sets its default, en_US.UTF-8, with
    ``update-locale``, which fails unless that locale exists; Debian's
    ``locale-gen`` ignores the locale cloud-init passes it and builds
    what /etc/locale.gen lists."""
    with open(tree / "etc/locale.gen", "a") as locale_gen:
        locale_gen.write("en_US.UTF-8 UTF-8\n")
    subprocess.run(["chroot", str(tree), "locale-gen"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _cached_tree(suite: str, cache: Path, variant: str,
                 include: tuple[str, ...],
                 prepare: Callable[[Path], None] | None = None) -> Path:
    """Build ``minbase-<suite>-<variant>`` once, then ``prepare`` it; one
    lock per suite."""
    target = cache / f"minbase-{suite}-{variant}"
    stamp = target / ".nova-lxd-complete"
    if stamp.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with FileLock(cache / f"minbase-{suite}.lock", timeout=1800):
        if stamp.exists():
            return target
        shutil.rmtree(target, ignore_errors=True)
        partial = cache / f".minbase-{suite}-{variant}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            subprocess.run(["debootstrap", "--variant=minbase",
                            "--include=" + ",".join(include), suite,
                            str(partial), MIRROR], check=True,
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        except subprocess.CalledProcessError as exc:
            log = partial / "debootstrap/debootstrap.log"
            detail = exc.stderr or (log.read_text(errors="replace")
                                    if log.exists() else "")
            shutil.rmtree(partial, ignore_errors=True)
            raise RuntimeError(f"debootstrap {suite} failed: "
                               f"{detail[-2000:]}") from exc
        if prepare is not None:
            prepare(partial)
        # Apt's caches are not part of an image.
        shutil.rmtree(partial / "var/cache/apt/archives",
                      ignore_errors=True)
        (partial / "var/cache/apt/archives/partial").mkdir(parents=True)
        os.rename(partial, target)
        stamp.write_text(suite + "\n")
    return target
