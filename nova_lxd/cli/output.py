"""How results are printed: human tables, or JSON/YAML for scripts.

Tables look like ``lxc``'s (boxed, one row per object, sorted by the
first column); ``--format json`` prints the server's own objects so
scripts see every field, not just the columns a human wants.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import yaml

FORMATS = ("table", "json", "yaml", "csv")


def add_format(parser: argparse.ArgumentParser,
               default: str = "table") -> None:
    parser.add_argument("-f", "--format", choices=FORMATS, default=default,
                        help=f"output format (default: {default})")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A boxed table; multi-line cells grow their row."""
    cells = [[_cell(c) for c in row] for row in rows]
    cells.sort(key=lambda r: r[0] if r else "")
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            for line in cell.split("\n"):
                widths[i] = max(widths[i], len(line))
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [rule, _line(headers, widths), rule]
    for row in cells:
        lines = [c.split("\n") for c in row]
        for j in range(max((len(x) for x in lines), default=1)):
            out.append(_line([x[j] if j < len(x) else "" for x in lines],
                             widths))
        out.append(rule)
    return "\n".join(out)


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "|" + "|".join(f" {c:<{w}} " for c, w in zip(cells, widths,
                                                          strict=True)) + "|"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "YES" if value else "NO"
    return str(value)


def csv_lines(rows: Iterable[Sequence[Any]]) -> str:
    import csv
    import io
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow([_cell(c) for c in row])
    return buf.getvalue().rstrip("\n")


def emit(fmt: str, data: Any, headers: Sequence[str] = (),
         rows: Iterable[Sequence[Any]] = (),
         human: str | None = None, out: TextIO | None = None) -> None:
    """Print ``data`` as JSON/YAML, or ``rows`` as a table/CSV (or
    ``human`` text where a table does not fit, as for ``info``)."""
    out = out or sys.stdout
    if fmt == "json":
        text = json.dumps(data, indent=2, sort_keys=True, default=str)
    elif fmt == "yaml":
        text = yaml.safe_dump(data, sort_keys=True,
                              default_flow_style=False).rstrip("\n")
    elif human is not None:
        text = human
    elif fmt == "csv":
        text = csv_lines(rows)
    else:
        text = table(headers, rows)
    if text:
        print(text, file=out)


def size(n: int | float | None) -> str:
    """Bytes in binary units, as lxc shows sizes."""
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return (f"{value:.0f}{unit}" if unit == "B"
                    else f"{value:.2f}{unit}")
        value /= 1024
    return str(n)


def mapping(data: dict, indent: int = 0) -> str:
    """A nested dict as indented ``key: value`` lines."""
    pad = "  " * indent
    lines = []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            if value:
                lines.append(mapping(value, indent + 1))
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: {', '.join(map(str, value))}")
        else:
            lines.append(f"{pad}{key}: {_cell(value)}")
    return "\n".join(lines)


def when(text: str | None) -> str:
    """An API timestamp as ``2026/11/25 08:14 UTC`` (raw if odd)."""
    if not text or text.startswith("0001-01-01"):
        return ""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z",
                                                              "+00:00"))
    except ValueError:
        return text
    return moment.strftime("%Y/%m/%d %H:%M %Z").strip()
