"""Small helpers shared by the benchmarks: medians, 90th percentiles and
the JSON result file."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any


def p90(values: list[float]) -> float:
    """The 90th percentile, nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * 9 // 10) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    """Median, 90th percentile, minimum and maximum of ``values``."""
    return {"median": statistics.median(values), "p90": p90(values),
            "min": min(values), "max": max(values)}


def write_json(path: Path | None, result: dict[str, Any]) -> None:
    """``result`` as indented JSON at ``path`` (nothing when None)."""
    if path is not None:
        path.write_text(json.dumps(result, indent=2) + "\n")
