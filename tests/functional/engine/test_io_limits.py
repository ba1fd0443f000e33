"""Disk and network IO limits of real containers."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest

from nova_lxd.engine import errors
from nova_lxd.engine.containers import traffic

from .helpers import cgroup_file

MiB = 1024 * 1024


def _disk(engine) -> str:
    if engine.host.disk_device is None:
        pytest.skip(f"no disk limits here: {engine.host.disk_problem}")
    return engine.host.disk_device


def _throttle(pid: int, name: str) -> str:
    return cgroup_file(pid, "blkio", f"blkio.throttle.{name}")


def test_disk_limits_in_blkio_files(engine, image):
    dev = _disk(engine)
    if engine.host.cgroups.blkio != "v1":
        pytest.skip("this test reads the v1 blkio files")
    engine.launch("diskio", "busybox", limits={
        "limits.disk.read": "10MB,100iops",
        "limits.disk.write": "1MiB,50iops"})
    pid = engine.state("diskio").pid
    assert _throttle(pid, "read_bps_device") == f"{dev} 10000000"
    assert _throttle(pid, "read_iops_device") == f"{dev} 100"
    assert _throttle(pid, "write_bps_device") == f"{dev} {MiB}"
    assert _throttle(pid, "write_iops_device") == f"{dev} 50"


def _timed(engine, name: str, *command: str) -> float:
    start = time.monotonic()
    result = engine.execute(name, list(command))
    assert result.exit_code == 0, result.stderr
    return time.monotonic() - start


def _serviced(pid: int, dev: str, op: str) -> int:
    return sum(int(line.split()[2])
               for line in _throttle(pid, "io_service_bytes").splitlines()
               if line.startswith(dev + " ") and line.split()[1] == op)


def test_direct_io_is_throttled(engine, image):
    dev = _disk(engine)
    if engine.host.cgroups.blkio != "v1":
        pytest.skip("this test reads the v1 blkio files")
    engine.launch("slowdisk", "busybox", limits={
        "limits.disk.write": "1MiB", "limits.disk.read": "2MiB"})
    pid = engine.state("slowdisk").pid
    # O_DIRECT: the page cache would absorb buffered writes (cgroup v1
    # does not charge writeback to the writer).
    wrote = _timed(engine, "slowdisk", "dd", "if=/dev/zero",
                   "of=/root/blob", "bs=64k", "count=48", "oflag=direct")
    read = _timed(engine, "slowdisk", "dd", "if=/root/blob", "of=/dev/null",
                  "bs=64k", "iflag=direct")
    if _serviced(pid, dev, "Write") == 0:
        pytest.skip(f"blkio accounts no IO to {dev} on this host (3 MiB "
                    f"written in {wrote:.2f} s): cannot show enforcement")
    assert _serviced(pid, dev, "Write") >= 3 * MiB
    assert _serviced(pid, dev, "Read") >= 3 * MiB
    # 3 MiB at 1 MiB/s and at 2 MiB/s; the first throttle slice lets a
    # little through at once.
    assert 2.5 <= wrote < 10, wrote
    assert 1.2 <= read < 10, read


def test_disk_limits_refused_without_a_disk(engine, image, monkeypatch):
    import dataclasses
    fake = dataclasses.replace(engine.host, disk_device=None,
                               disk_problem="it is on tmpfs")
    monkeypatch.setattr(engine.containers, "host", fake)
    with pytest.raises(errors.InvalidLimits, match="it is on tmpfs"):
        engine.create("nodisk", "busybox",
                      limits={"limits.disk.read": "1MB"})
    assert engine.list() == []


# -- network --------------------------------------------------------------

MBIT = 1_000_000


def tc_json(*args: str) -> list[dict]:
    out = subprocess.run(["tc", "-j", *args], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out or "[]")


def root_tbf(dev: str) -> dict:
    qdiscs = [q for q in tc_json("qdisc", "show", "dev", dev)
              if q.get("root")]
    assert [q["kind"] for q in qdiscs] == ["tbf"], qdiscs
    return qdiscs[0]["options"]


@pytest.fixture
def bridge():
    """A bridge of our own, up, that joins nothing but our veths."""
    name = "nlxio" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "link", "add", name, "type", "bridge"],
                   check=True)
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    yield name
    subprocess.run(["ip", "link", "del", name], capture_output=True)


def _nic(bridge: str, **limits) -> dict:
    return {"name": "eth0", "host_name": "tap" + uuid.uuid4().hex[:8],
            "link": bridge, **limits}


def test_ingress_limit_on_the_host_veth_after_each_start(engine, image,
                                                         bridge):
    nic = _nic(bridge, ingress=20 * MBIT, ingress_burst=100_000)
    engine.launch("shaped", "busybox", nics=[nic])
    tap = nic["host_name"]
    options = root_tbf(tap)
    assert options["rate"] * 8 == 20 * MBIT  # tc -j says bytes/s
    assert options["burst"] == 100_000
    engine.restart("shaped", force=True)
    assert root_tbf(tap)["rate"] * 8 == 20 * MBIT
    engine.stop("shaped", force=True)
    engine.start("shaped")
    assert root_tbf(tap)["rate"] * 8 == 20 * MBIT


def test_ingress_limit_survives_a_reboot_from_inside(engine, image,
                                                    bridge):
    nic = _nic(bridge, ingress=10 * MBIT)
    engine.launch("reboots", "busybox", nics=[nic])
    pid = engine.state("reboots").pid
    engine.execute("reboots", ["reboot"])
    deadline = time.monotonic() + 30
    while engine.state("reboots").pid in (None, pid):
        assert time.monotonic() < deadline, "no reboot"
        time.sleep(0.2)
    # liblxc made a new veth and ran the start-host hook, not the engine.
    assert root_tbf(nic["host_name"])["rate"] * 8 == 10 * MBIT


def test_egress_limit_is_policed_or_refused(engine, image, bridge):
    nic = _nic(bridge, egress=5 * MBIT)
    problem = traffic.egress_problem()
    if problem:
        # This VM's kernel has no tc police action: refused up front.
        with pytest.raises(errors.InvalidNic, match="police"):
            engine.create("policed", "busybox", nics=[nic])
        assert engine.list() == []
        pytest.skip(f"egress limits cannot work here: {problem}")
    engine.launch("policed", "busybox", nics=[nic])
    text = subprocess.run(
        ["tc", "filter", "show", "dev", nic["host_name"], "parent",
         "ffff:"], check=True, capture_output=True, text=True).stdout
    assert "police" in text and "5Mbit" in text, text
    kinds = {q["kind"] for q in tc_json("qdisc", "show", "dev",
                                        nic["host_name"])}
    assert "ingress" in kinds


def test_failed_limit_stops_the_container(engine, image, bridge,
                                          monkeypatch):
    nic = _nic(bridge, ingress=10 * MBIT)
    engine.create("unshaped", "busybox", nics=[nic])
    monkeypatch.setattr(traffic, "TC", "/nonexistent/tc")
    with pytest.raises(errors.TrafficLimitFailed, match=nic["host_name"]):
        engine.start("unshaped")
    assert engine.state("unshaped").status.lower() == "stopped"


def test_ingress_rate_between_two_containers(engine, image, bridge):
    limit = 8 * MBIT  # 1 MB/s
    engine.launch("rx", "busybox", nics=[_nic(bridge, ingress=limit)])
    engine.launch("tx", "busybox", nics=[_nic(bridge)])
    for name, address in (("rx", "192.0.2.1"), ("tx", "192.0.2.2")):
        result = engine.execute(name, ["ip", "addr", "add",
                                       f"{address}/24", "dev", "eth0"])
        assert result.exit_code == 0, result.stderr
    # The receiver counts what reaches it and answers with the count,
    # so the sender's nc ends when the last byte has been received.
    server = engine.execute("rx", ["sh", "-c",
                                   "nc -l -p 5001 -e wc -c </dev/null "
                                   ">/dev/null 2>&1 &"])
    assert server.exit_code == 0, server.stderr
    time.sleep(0.5)
    start = time.monotonic()
    sent = engine.execute("tx", [
        "sh", "-c", "dd if=/dev/zero bs=64k count=48 2>/dev/null"
                    " | nc 192.0.2.1 5001"], timeout=60)
    elapsed = time.monotonic() - start
    assert sent.exit_code == 0, sent.stderr
    count = int(sent.stdout.decode())
    assert count == 48 * 65536
    rate = count * 8 / elapsed
    print(f"RATE {rate:.0f} bit/s for a {limit} bit/s limit")
    assert 0.5 * limit < rate < 1.25 * limit, rate
