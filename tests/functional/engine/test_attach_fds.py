"""Commands run in a container never hold the host's descriptors that
the engine's own process inherited (a shell's, a service manager's):
they would reach host files and pipes from inside, and CRIU refuses to
dump a process holding a host mount's file."""

from __future__ import annotations

import os


def test_inherited_descriptors_stay_on_the_host(engine, image):
    engine.launch("fds", "busybox")
    host_file = os.open("/etc/hostname", os.O_RDONLY)
    read_end, write_end = os.pipe()
    try:
        for fd in (host_file, read_end, write_end):
            os.set_inheritable(fd, True)
        result = engine.execute("fds", ["sh", "-c",
                                        "ls /proc/self/fd; sleep 0"])
        inside = {int(fd) for fd in result.stdout.split()}
        assert not inside & {host_file, read_end, write_end}, inside
        # stdio, plus the descriptor ls opens to list the directory.
        assert inside <= {0, 1, 2, 3}, inside
    finally:
        for fd in (host_file, read_end, write_end):
            os.close(fd)
