"""Run a tool on an untrusted image under resource limits.

``qemu-img`` and ``sfdisk`` parse tenant-supplied bytes; a crafted image
must not make them spin, balloon or outlive us. Each runs as::

    setpriv --pdeathsig KILL -- prlimit --cpu=N --as=M [--fsize=F] -- tool

``setpriv`` (util-linux) makes the kernel SIGKILL the tool when the thread
that started it dies, even by SIGKILL, so no orphan keeps writing into a
scratch directory; ``prlimit`` (util-linux, exec'd: no extra Python
interpreter as oslo.concurrency's prlimit wrapper would start) sets the
CPU-time, address-space and file-size limits. ``MALLOC_ARENA_MAX=2`` keeps
glibc from reserving 64 MiB of address space per thread, which made
``qemu-img convert`` abort under a 1 GiB limit on this 2-core VM.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence

from nova_lxd.engine import errors

GiB = 1024 ** 3

_ENV = {"LC_ALL": "C", "MALLOC_ARENA_MAX": "2",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def command(argv: Sequence[str], *, cpu_seconds: int, memory: int,
            file_size: int | None = None) -> list[str]:
    """``argv`` wrapped in the death signal and the limits."""
    limits = [f"--cpu={int(cpu_seconds)}", f"--as={int(memory)}"]
    if file_size is not None:
        limits.append(f"--fsize={int(file_size)}")
    return ["setpriv", "--pdeathsig", "KILL", "--", "prlimit", *limits,
            "--", *argv]


def environment() -> dict[str, str]:
    return dict(_ENV)


def run(argv: Sequence[str], *, source: str, cpu_seconds: int = 30,
        memory: int = 1 * GiB, file_size: int | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` confined; with ``check`` a failure is an InvalidImage
    naming ``source`` and the tool's last words."""
    try:
        proc = subprocess.run(
            command(argv, cpu_seconds=cpu_seconds, memory=memory,
                    file_size=file_size),
            capture_output=True, text=True, errors="replace",
            env=environment(), stdin=subprocess.DEVNULL, check=False)
    except OSError as exc:
        raise errors.HostError(reason=f"cannot run {argv[0]}: {exc}")
    if check and proc.returncode != 0:
        raise failure(argv[0], proc.returncode, proc.stderr, source=source,
                      cpu_seconds=cpu_seconds, memory=memory)
    return proc


def failure(tool: str, returncode: int, stderr: str, *, source: str,
            cpu_seconds: int, memory: int) -> errors.EngineError:
    """The typed error for a confined tool that failed."""
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return errors.InvalidImage(
            source=source, reason=f"{tool} used more than its {cpu_seconds}"
            f" s of CPU time on it")
    if returncode < 0:
        return errors.InvalidImage(
            source=source, reason=f"{tool} died of signal {-returncode} "
            f"(address space limit {memory // (1024 * 1024)} MiB)")
    last = last_line(stderr)
    return errors.InvalidImage(
        source=source, reason=f"{tool} failed: {last or f'exit {returncode}'}")


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)
