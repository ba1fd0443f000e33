#!/usr/bin/env python3
"""Move benchmark: a cold move of a stopped container (~200 MB rootfs)
between two nlxd daemons on this machine, against tar | zstd over TLS by
hand, in one run.

Two engine roots under ``/var/tmp`` (dir pools, one file system), each
served by its own ``nlxd`` on HTTPS at 127.0.0.1, each trusting the
other's certificate, as two hosts of one cloud. One busybox container is
launched on A and filled once, through exec: ``--random-mb`` of
incompressible data (``dd if=/dev/urandom``) and about ``--text-mb`` of
many small compressible files (a tar of the host's Python standard
library, unpacked inside by busybox ``tar``). Then it is stopped and,
interleaved round by round so that noise hits both alike (the side that
goes first alternates):

* **move**: LXD's pull mode through the API (the unix sockets):
  ``POST /1.0/instances/<name>`` ``{"migration": true}`` on the daemon
  that holds it, ``POST /1.0/instances`` with a ``migration`` source
  (the first operation's URL, secrets and certificate) on the other,
  both operations waited for, then ``DELETE`` of the source, as a move
  does. The container goes A->B, B->A, ... from round to round;
* **floor**: ``tar -C <rootfs> -cf - . | zstd -T0 -3`` streamed over a
  TLS socket on 127.0.0.1 (Python ``ssl``, a self-signed certificate)
  into ``zstd -d | tar -x`` in a fresh directory under the receiving
  root, from the rootfs where the container is at that moment; removed
  again afterwards (not timed).

One warm-up round of each is not counted. Medians, the ratio move/floor
and the throughput (rootfs bytes over time) are printed and, with
``--json``, written. Daemons are stopped and roots removed on every exit.

    sudo .venv/bin/python benchmarks/move.py [--rounds 6] [--json out]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

from _stats import summary, write_json

from nova_lxd.cli.transport import UNIX_BASE
from nova_lxd.daemon.auth.tls import make_certificate
from nova_lxd.engine.api import Engine
from nova_lxd.engine.config import EngineConfig
from nova_lxd.testing.busybox import build_busybox_tarball
from nova_lxd.testing.daemon import DaemonProcess

BASE = Path("/var/tmp/nova-lxd-bench")
NAME = "mover"
TEXT_SOURCE = Path(sys.base_prefix) / "lib" / \
    f"python{sys.version_info[0]}.{sys.version_info[1]}"
LXC_OPTIONS = {"stop_timeout": 10, "lock_timeout": 30}
"""As ``DaemonProcess`` writes them: an engine in this process on the
same root must agree."""
CHUNK = 1 << 20


class Host:
    """One 'host': an engine root and its daemon, driven over the unix
    socket (root is trusted there)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.root = Path(tempfile.mkdtemp(prefix=f"move-{label}-", dir=BASE))
        self.root.chmod(0o711)
        self.daemon = DaemonProcess(self.root).start()
        self.session = self.daemon.unix_session()

    def api(self, method: str, path: str, **kwargs) -> dict:
        response = self.session.request(method, UNIX_BASE + path,
                                        timeout=600, **kwargs)
        return response.json()

    def wait(self, op: dict) -> dict:
        done = self.api("GET", f"/1.0/operations/{op['id']}/wait",
                        params={"timeout": 600})["metadata"]
        if done["status"] != "Success":
            raise SystemExit(f"{self.label}: {done['description']} failed:"
                             f" {done['err']}")
        return done

    def engine(self) -> Engine:
        return Engine(EngineConfig(root=self.root, **LXC_OPTIONS))

    def close(self) -> None:
        try:
            self.session.close()
            if self.daemon.proc is not None:
                self.daemon.stop()
            engine = Engine(EngineConfig(root=self.root, **LXC_OPTIONS),
                            recover=True)
            for record in engine.list():
                engine.delete(record.name, force=True)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def text_tarball(limit: int) -> bytes:
    """An uncompressed tar of up to ``limit`` bytes of the host's Python
    library: many small compressible files."""
    buffer, total = io.BytesIO(), 0
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(TEXT_SOURCE.rglob("*")):
            if total >= limit:
                break
            if path.is_symlink() or not path.is_file():
                continue
            info = tar.gettarinfo(str(path), "text/" + str(
                path.relative_to(TEXT_SOURCE)))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            with open(path, "rb") as f:
                tar.addfile(info, f)
            total += info.size
    return buffer.getvalue()


def fill(engine: Engine, random_mb: int, text_mb: int) -> None:
    for argv, stdin in (
            (["sh", "-c", f"dd if=/dev/urandom of=/random bs=1M "
                          f"count={random_mb} 2>/dev/null"], None),
            (["tar", "-x", "-C", "/"], text_tarball(text_mb << 20)),
            (["sync"], None)):
        result = engine.execute(NAME, argv, stdin=stdin, timeout=600)
        if result.exit_code != 0:
            raise SystemExit(f"filling the rootfs failed: {argv}: "
                             f"{result.stderr!r}")


def tree_bytes(path: Path) -> tuple[int, int]:
    """(apparent bytes, files) under ``path``."""
    total = files = 0
    for top, _dirs, names in os.walk(path):
        for name in names:
            total += os.lstat(os.path.join(top, name)).st_size
            files += 1
    return total, files


def daemon_cpu(host: Host) -> float:
    """CPU seconds of a daemon and of its children it waited for (tar,
    zstd) so far."""
    fields = Path(f"/proc/{host.daemon.proc.pid}/stat").read_text(
        ).rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """CPU seconds of this process and of its children waited for."""
    return sum(resource.getrusage(who).ru_utime +
               resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def api_move(src: Host, dst: Host) -> tuple[float, float, float, float]:
    """(transfer, transfer + delete of the source) in seconds, and the
    CPU seconds the source and the target daemon spent on it."""
    cpu = daemon_cpu(src), daemon_cpu(dst)
    started, moved, done = pull_move(src, dst)
    return (moved - started, done - started, daemon_cpu(src) - cpu[0],
            daemon_cpu(dst) - cpu[1])


def trusting_pair(hosts: list[Host]) -> tuple[Host, Host]:
    """Hosts a and b (appended to ``hosts`` as they start, for the
    clean-up), each daemon trusting the other's certificate."""
    a = Host("a")
    hosts.append(a)
    b = Host("b")
    hosts.append(b)
    a.daemon.trust(b.daemon.certificate_pem, "host-b")
    b.daemon.trust(a.daemon.certificate_pem, "host-a")
    return a, b


def pull_move(src: Host, dst: Host, *, name: str = NAME,
              live: bool = False,
              clock=time.perf_counter) -> tuple[float, float, float]:
    """Move ``name`` from ``src`` to ``dst`` as a client does (offer on
    the source, pull on the target, delete the source): ``clock`` at the
    start, once both operations ended, and after the delete."""
    started = clock()
    reply = src.api("POST", f"/1.0/instances/{name}",
                    json={"migration": True, "live": live})
    if reply.get("type") != "async":
        raise SystemExit(f"move refused: {reply.get('error')}")
    source_op = reply["metadata"]
    target_op = dst.api("POST", "/1.0/instances", json={
        "name": name, "source": {
            "type": "migration", "mode": "pull",
            "operation": f"{src.daemon.url}/1.0/operations/"
                         f"{source_op['id']}",
            "certificate": src.daemon.certificate_pem,
            "secrets": source_op["metadata"]}})["metadata"]
    dst.wait(target_op)
    src.wait(source_op)
    moved = clock()
    src.wait(src.api("DELETE", f"/1.0/instances/{name}")["metadata"])
    return started, moved, clock()


class Floor:
    """tar | zstd -T0 -3 -> TLS on 127.0.0.1 -> zstd -d | tar -x."""

    def __init__(self, workdir: Path) -> None:
        cert, key = make_certificate("move-floor")
        (workdir / "floor.crt").write_bytes(cert)
        (workdir / "floor.key").write_bytes(key)
        self.server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server.load_cert_chain(workdir / "floor.crt",
                                    workdir / "floor.key")
        # The sender closes without close_notify: that is the end. No
        # session tickets: unread by the client, they would make its close
        # a reset that can drop the last data still in flight.
        self.server.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        self.server.num_tickets = 0
        self.client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.client.check_hostname = False
        self.client.load_verify_locations(cadata=cert.decode())

    def run(self, rootfs: Path, dest: Path) -> tuple[float, float]:
        """(seconds, CPU seconds of this process and its children)."""
        dest.mkdir(parents=True)
        listener = socket.create_server(("127.0.0.1", 0))
        failures: list[str] = []

        def receive() -> None:
            conn, _ = listener.accept()
            with self.server.wrap_socket(conn, server_side=True) as tls:
                unzstd = subprocess.Popen(["zstd", "-d", "-q", "-c"],
                                          stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE)
                untar = subprocess.Popen(
                    ["tar", "--numeric-owner", "-C", str(dest), "-xf", "-"],
                    stdin=unzstd.stdout)
                unzstd.stdout.close()
                while data := tls.recv(CHUNK):
                    unzstd.stdin.write(data)
                unzstd.stdin.close()
                if [unzstd.wait(), untar.wait()] != [0, 0]:
                    failures.append("zstd -d | tar -x failed")

        cpu = own_cpu()
        started = time.perf_counter()
        receiver = threading.Thread(target=receive)
        receiver.start()
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", "-", "."],
            stdout=subprocess.PIPE)
        zstd = subprocess.Popen(["zstd", "-T0", "-3", "-q", "-c"],
                                stdin=tar.stdout, stdout=subprocess.PIPE)
        tar.stdout.close()
        with self.client.wrap_socket(socket.create_connection(
                listener.getsockname())) as tls:
            while chunk := zstd.stdout.read1(CHUNK):
                tls.sendall(chunk)
        if [tar.wait(), zstd.wait()] != [0, 0]:
            failures.append("tar | zstd failed")
        receiver.join()
        elapsed = time.perf_counter() - started
        listener.close()
        if failures:
            raise SystemExit(f"floor: {'; '.join(failures)}")
        return elapsed, own_cpu() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--random-mb", type=int, default=150)
    parser.add_argument("--text-mb", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: containers are started", file=sys.stderr)
        return 2
    BASE.mkdir(parents=True, exist_ok=True)
    BASE.chmod(0o711)
    hosts: list[Host] = []
    samples: dict[str, list[float]] = {
        "move": [], "transfer": [], "floor": [], "cpu_source": [],
        "cpu_target": [], "cpu_floor": []}
    try:
        a, b = trusting_pair(hosts)
        engine = a.engine()
        engine.import_image(build_busybox_tarball(a.root / "busybox.tar.gz"),
                            aliases=("busybox",))
        engine.launch(NAME, "busybox")
        started = time.perf_counter()
        fill(engine, args.random_mb, args.text_mb)
        engine.stop(NAME)
        rootfs = engine.containers.rootfs(NAME)
        size, files = tree_bytes(rootfs)
        print(f"rootfs: {size / 1e6:.1f} MB in {files} files, written in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        floor = Floor(a.root)
        where = [a, b]                  # [holder, the other one]

        def floor_round(i: int) -> tuple[float, float]:
            src, dst = where
            rootfs = src.engine().containers.rootfs(NAME)
            try:
                return floor.run(rootfs, dst.root / "floor" / f"r{i}")
            finally:
                shutil.rmtree(dst.root / "floor", ignore_errors=True)

        def move_round(_i: int) -> tuple[float, ...]:
            src, dst = where
            times = api_move(src, dst)
            where.reverse()
            return times

        for i in range(args.rounds + 1):      # round 0 warms the caches
            direction = f"{where[0].label}->{where[1].label}"
            order = ["floor", "move"] if i % 2 == 0 else ["move", "floor"]
            result = {side: (floor_round if side == "floor"
                             else move_round)(i) for side in order}
            if i:
                for key, value in zip(
                        ("transfer", "move", "cpu_source", "cpu_target",
                         "floor", "cpu_floor"),
                        (*result["move"], *result["floor"]), strict=True):
                    samples[key].append(value)
                print(f"round {i} move {direction}: "
                      f"{result['move'][1]:.2f} s (transfer "
                      f"{result['move'][0]:.2f} s; CPU source "
                      f"{result['move'][2]:.2f} s, target "
                      f"{result['move'][3]:.2f} s), floor "
                      f"{result['floor'][0]:.2f} s (CPU "
                      f"{result['floor'][1]:.2f} s)", flush=True)
    finally:
        for host in hosts:
            host.close()
    stats = {side: summary(values) for side, values in samples.items()}
    ratio = stats["move"]["median"] / stats["floor"]["median"]
    ratio_transfer = stats["transfer"]["median"] / stats["floor"]["median"]
    for side in ("move", "transfer", "floor"):
        median = stats[side]["median"]
        print(f"{side:8s} median {median:6.2f} s  p90 "
              f"{stats[side]['p90']:6.2f} s  {size / 1e6 / median:6.1f} MB/s")
    print(f"CPU medians: source daemon {stats['cpu_source']['median']:.2f}"
          f" s, target daemon {stats['cpu_target']['median']:.2f} s, "
          f"floor {stats['cpu_floor']['median']:.2f} s")
    print(f"ratio move/floor (medians): {ratio:.2f} (goal <= 1.3); "
          f"transfer alone/floor: {ratio_transfer:.2f}")
    write_json(args.json, {
        "rounds": args.rounds, "rootfs_bytes": size, "rootfs_files": files,
        **{side: {**stats[side],
                  "mb_per_s": size / 1e6 / stats[side]["median"]}
           for side in ("move", "transfer", "floor")},
        **{side: stats[side] for side in stats if side.startswith("cpu")},
        "ratio": ratio, "ratio_transfer": ratio_transfer,
        "samples": samples})
    return 0


if __name__ == "__main__":
    sys.exit(main())
