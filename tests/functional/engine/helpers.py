"""Host-side views of a running container, read without the engine."""

from __future__ import annotations

from pathlib import Path


def proc_status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def cgroup_file(pid: int, controller: str, filename: str) -> str:
    """Read a cgroup file of the process's cgroup on the host (v1
    controller hierarchy if there is one, else the unified one)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            base = Path("/sys/fs/cgroup") / controller
            return (base / path.lstrip("/") / filename).read_text().strip()
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            path = line[3:]
            for base in (Path("/sys/fs/cgroup"),
                         Path("/sys/fs/cgroup/unified")):
                candidate = base / path.lstrip("/") / filename
                if candidate.exists():
                    return candidate.read_text().strip()
    raise FileNotFoundError(f"{controller}/{filename} of pid {pid}")


def sh(engine, name: str, script: str) -> str:
    """Run ``script`` with the container's sh; its stdout (must succeed)."""
    result = engine.execute(name, ["sh", "-c", script])
    assert result.exit_code == 0, result
    return result.stdout.decode()
