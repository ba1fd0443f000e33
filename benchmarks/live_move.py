#!/usr/bin/env python3
"""Live-move benchmark: the downtime of a running busybox container moved
live (CRIU dump, stream, restore) between two nlxd daemons on this
machine, as its own processes see it, and where that time goes.

Two engine roots under ``/var/tmp`` (dir pools), each served by its own
``nlxd`` on HTTPS at 127.0.0.1, each trusting the other's certificate
(``move.Host``).
One stateful busybox container (``migration.stateful``) is launched on A
with a workload of its own session (``setsid``, so CRIU can dump it)::

    while :; do echo | ts %.s >> /stamps; usleep 10000; done

busybox ``date`` has no ``%N``; busybox ``ts '%.s'`` stamps each line with
the wall clock in microseconds, and one ``ts`` per line flushes each stamp
at once (a long-running ``ts`` buffers its output). Stamps come every
~13 ms. Each round moves the container live, A->B then B->A, ...,
through LXD's pull mode (``POST /1.0/instances/<name>``
``{"migration": true, "live": true}`` on the holder, ``POST
/1.0/instances`` with a ``migration`` source on the other, both waited
for, then ``DELETE`` of the stopped source). A live move keeps the
container's host id range, which is each root's first one, free on the
other side once the source is deleted. After each move the stamps are
read from the new holder's rootfs: the largest gap between consecutive
stamps around the move is the **downtime** (the normal gap, ~13 ms, is
reported too).

Phases come from wrappers put first on the daemons' ``PATH`` (no engine
or daemon change): ``lxc-checkpoint`` (the engine runs that tool for
CRIU) logs when each dump and restore starts and ends (bash
``$EPOCHREALTIME``, the wall clock ``ts`` uses too), and ``criu`` (which
liblxc runs) logs when a dump starts and ends and when a restore starts
(a restore is exec'd: its tasks must stay liblxc's children):

* **dump**: ``lxc-checkpoint -s`` (CRIU freezes, dumps, the container
  stops): its start-up until ``criu`` runs, ``criu dump`` itself, its
  exit;
* **transfer**: from the end of the dump to the start of the restore:
  rootfs tar, dump, TLS websocket, unpack and commit on the target;
* **restore**: ``lxc-checkpoint -r``, every attempt (the engine tries
  again when CRIU races itself): start-up until ``criu`` runs, then
  ``criu restore`` until ``lxc-checkpoint`` exits;
* **api**: the whole move, from the first POST until both operations are
  done (without the delete).

One warm-up round is not counted. Medians and maxima are printed and,
with ``--json``, written. Daemons are stopped and roots removed on every
exit.

    sudo .venv/bin/python benchmarks/live_move.py [--rounds 5] [--json out]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _stats import summary, write_json
from move import BASE, Host, pull_move, trusting_pair

from nova_lxd.engine.containers import criu
from nova_lxd.testing.busybox import build_busybox_tarball

NAME = "livemover"
GOAL = 0.300
WORKLOAD = ("setsid sh -c 'while :; do echo | ts %.s >> /stamps; "
            "usleep 10000; done' </dev/null >/dev/null 2>&1 &")
SETTLE = 1.0
"""Seconds of stamps after a move before they are read."""

WRAPPER = """#!/bin/bash
# lxc-checkpoint, timed for benchmarks/live_move.py
log={log}
dir=
args=("$@")
for ((i = 0; i < ${{#args[@]}}; i++)); do
    [ "${{args[i]}}" = -D ] && dir=${{args[i+1]}}
done
kind=dump
for a in "$@"; do [ "$a" = -r ] && kind=restore; done
start=$EPOCHREALTIME
size=$(du -sb "$dir" 2>/dev/null | cut -f1)
{real} "$@"
rc=$?
end=$EPOCHREALTIME
[ $kind = dump ] && size=$(du -sb "$dir" 2>/dev/null | cut -f1)
echo "$kind $start $end $rc ${{size:-0}} -" >> "$log"
exit $rc
"""

CRIU_WRAPPER = """#!/bin/bash
# criu, timed for benchmarks/live_move.py: a dump runs as a child; any
# other command is exec'd (a restore's tasks must be liblxc's children)
case " $* " in
*" dump "*)
    start=$EPOCHREALTIME
    {real} "$@"
    rc=$?
    echo "criu-dump $start $EPOCHREALTIME $rc 0 -" >> {log}
    exit $rc;;
*" restore "*)
    echo "criu-restore $EPOCHREALTIME 0 0 0 -" >> {log};;
esac
exec {real} "$@"
"""

def install_wrapper(workdir: Path) -> Path:
    """A timing ``lxc-checkpoint`` first on this process's ``PATH`` (the
    daemons inherit it); returns the log it appends to."""
    real = shutil.which(criu.LXC_CHECKPOINT)
    if real is None:
        raise SystemExit("lxc-checkpoint is missing")
    bindir = workdir / "bin"
    bindir.mkdir()
    log = workdir / "phases.log"
    wrapper = bindir / criu.LXC_CHECKPOINT
    wrapper.write_text(WRAPPER.format(log=log, real=real))
    wrapper.chmod(0o755)
    real = shutil.which(criu.CRIU)
    if real is None:
        raise SystemExit("criu is missing")
    wrapper = bindir / criu.CRIU
    wrapper.write_text(CRIU_WRAPPER.format(log=log, real=real))
    wrapper.chmod(0o755)
    os.environ["PATH"] = f"{bindir}:{os.environ.get('PATH', '')}"
    return log


def read_phases(log: Path, since: float) -> list[dict]:
    """The wrapper's entries that started after ``since``."""
    entries = []
    if not log.exists():
        return entries
    for line in log.read_text().splitlines():
        kind, start, end, rc, size, _ = line.split(" ", 5)
        if float(start) >= since:
            entries.append({"kind": kind, "start": float(start),
                            "end": float(end), "rc": int(rc),
                            "bytes": int(size)})
    return entries


def stamps(host: Host) -> list[float]:
    path = host.engine().containers.rootfs(NAME) / "stamps"
    values = []
    for line in path.read_text().splitlines():
        try:
            values.append(float(line.split()[0]))
        except (ValueError, IndexError):
            continue                    # a line cut by the dump
    return values


def live_move(src: Host, dst: Host) -> tuple[float, float, float]:
    """(start, end of both operations, end of the delete), wall clock
    (the container's stamps are wall clock too)."""
    return pull_move(src, dst, name=NAME, live=True, clock=time.time)


def measure(src: Host, dst: Host, log: Path) -> dict:
    started, moved, deleted = live_move(src, dst)
    time.sleep(SETTLE)
    values = [v for v in stamps(dst) if started - 1 <= v <= moved + SETTLE]
    gaps = [(b - a, a) for a, b in zip(values, values[1:], strict=False)]
    if not gaps:
        raise SystemExit("the workload wrote no stamps around the move")
    downtime, gap_start = max(gaps)
    after = [v for v in stamps(dst) if v > moved]
    if not after:
        raise SystemExit("the workload does not run after the move")
    phases = read_phases(log, started)
    dumps = [p for p in phases if p["kind"] == "dump"]
    restores = [p for p in phases if p["kind"] == "restore"]
    if len(dumps) != 1 or dumps[0]["rc"] or not restores or \
            restores[-1]["rc"]:
        raise SystemExit(f"unexpected lxc-checkpoint runs: {phases}")
    # The engine tries a restore again when CRIU races itself
    # (criu.RESTORE_ATTEMPTS): all attempts are restore time.
    dump = dumps[0]
    restore = {"start": restores[0]["start"], "end": restores[-1]["end"]}
    # CRIU itself, within lxc-checkpoint's runs (the daemon's own CRIU
    # probe dumps a throwaway process once, outside them).
    criu_dumps = [p for p in phases if p["kind"] == "criu-dump"
                  and dump["start"] <= p["start"] <= dump["end"]]
    criu_restores = [p for p in phases if p["kind"] == "criu-restore"
                     and restore["start"] <= p["start"] <= restore["end"]]
    criu_dump = criu_dumps[-1] if criu_dumps else None
    criu_restore = criu_restores[-1]["start"] if criu_restores else None
    return {
        "downtime": downtime,
        "normal_gap": statistics.median(g for g, _ in gaps),
        "api": moved - started,
        "delete": deleted - moved,
        "before_dump": dump["start"] - started,
        "dump": dump["end"] - dump["start"],
        "checkpoint_startup": criu_dump and
        criu_dump["start"] - dump["start"],
        "criu_dump": criu_dump and criu_dump["end"] - criu_dump["start"],
        "checkpoint_exit": criu_dump and dump["end"] - criu_dump["end"],
        "transfer": restore["start"] - dump["end"],
        "restore": restore["end"] - restore["start"],
        "restore_attempts": len(restores),
        "restore_startup": criu_restore and
        criu_restore - restores[-1]["start"],
        "criu_restore": criu_restore and restore["end"] - criu_restore,
        "after_restore": moved - restore["end"],
        "dump_to_restored": restore["end"] - dump["start"],
        "gap_start": gap_start - dump["start"],
        "gap_end": gap_start + downtime - restore["end"],
        "dump_bytes": dump["bytes"],
    }


KEYS = ("downtime", "api", "before_dump", "dump", "checkpoint_startup",
        "criu_dump", "checkpoint_exit", "transfer", "restore",
        "restore_startup", "criu_restore", "after_restore", "delete")


def ms(value: float | None) -> str:
    return "?" if value is None else f"{value * 1e3:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root: containers are started", file=sys.stderr)
        return 2
    if criu.problem():
        print(f"CRIU does not work here: {criu.problem()}", file=sys.stderr)
        return 2
    BASE.mkdir(parents=True, exist_ok=True)
    BASE.chmod(0o711)
    workdir = Path(tempfile.mkdtemp(prefix="live-move-", dir=BASE))
    hosts: list[Host] = []
    rounds: list[dict] = []
    try:
        log = install_wrapper(workdir)
        a, b = trusting_pair(hosts)
        engine = a.engine()
        engine.import_image(build_busybox_tarball(workdir / "busybox.tar.gz"),
                            aliases=("busybox",))
        engine.launch(NAME, "busybox", stateful=True)
        result = engine.execute(NAME, ["sh", "-c", WORKLOAD])
        if result.exit_code != 0:
            raise SystemExit(f"the workload did not start: {result!r}")
        time.sleep(SETTLE)
        if len(stamps(a)) < 10:
            raise SystemExit("the workload writes no stamps")
        where = [a, b]
        for i in range(args.rounds + 1):   # round 0 warms the caches
            src, dst = where
            found = measure(src, dst, log)
            where.reverse()
            print(f"round {i}{' (warm-up)' if not i else ''} "
                  f"{src.label}->{dst.label}: downtime "
                  f"{found['downtime'] * 1e3:.0f} ms (normal gap "
                  f"{found['normal_gap'] * 1e3:.0f} ms); api "
                  f"{found['api'] * 1e3:.0f} ms = before dump "
                  f"{found['before_dump'] * 1e3:.0f} + dump "
                  f"{found['dump'] * 1e3:.0f} (start-up "
                  f"{ms(found['checkpoint_startup'])}, CRIU "
                  f"{ms(found['criu_dump'])}, exit "
                  f"{ms(found['checkpoint_exit'])}) + transfer "
                  f"{found['transfer'] * 1e3:.0f} + restore "
                  f"{found['restore'] * 1e3:.0f} ("
                  f"{found['restore_attempts']} tries; last: start-up "
                  f"{ms(found['restore_startup'])}, CRIU "
                  f"{ms(found['criu_restore'])}) + after "
                  f"{found['after_restore'] * 1e3:.0f}; dump "
                  f"{found['dump_bytes'] / 1e6:.1f} MB; gap from dump "
                  f"start {found['gap_start'] * 1e3:+.0f} ms to restore "
                  f"end {found['gap_end'] * 1e3:+.0f} ms", flush=True)
            if i:
                rounds.append(found)
    finally:
        for host in hosts:
            host.close()
        shutil.rmtree(workdir, ignore_errors=True)
    stats = {key: summary([r[key] for r in rounds if r[key] is not None]
                          or [float("nan")]) for key in KEYS}
    for key in KEYS:
        print(f"{key:14s} median {stats[key]['median'] * 1e3:6.0f} ms  "
              f"max {stats[key]['max'] * 1e3:6.0f} ms")
    median = stats["downtime"]["median"]
    print(f"downtime median {median * 1e3:.0f} ms, max "
          f"{stats['downtime']['max'] * 1e3:.0f} ms (goal <= "
          f"{GOAL * 1e3:.0f} ms: {'met' if median <= GOAL else 'missed'})")
    write_json(args.json, {"rounds": args.rounds, "goal": GOAL,
                           "workload": WORKLOAD, **stats,
                           "samples": rounds})
    return 0


if __name__ == "__main__":
    sys.exit(main())
