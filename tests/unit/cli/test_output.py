"""Tables, JSON/YAML/CSV and sizes."""

from __future__ import annotations

import io
import json

import yaml

from nova_lxd.cli import output


def test_table_is_boxed_sorted_and_grows_for_multiline_cells():
    text = output.table(["NAME", "IPV4"],
                        [["b", "10.0.0.2 (eth0)\n10.0.1.2 (eth1)"],
                         ["a", None]])
    assert text.splitlines() == [
        "+------+-----------------+",
        "| NAME | IPV4            |",
        "+------+-----------------+",
        "| a    |                 |",
        "+------+-----------------+",
        "| b    | 10.0.0.2 (eth0) |",
        "|      | 10.0.1.2 (eth1) |",
        "+------+-----------------+",
    ]


def test_empty_table_has_headers():
    assert "| NAME |" in output.table(["NAME"], [])


def test_emit_formats():
    data = [{"name": "a", "public": True}]
    rows = [["a", True]]
    for fmt, check in (
            ("json", lambda t: json.loads(t) == data),
            ("yaml", lambda t: yaml.safe_load(t) == data),
            ("csv", lambda t: t == "a,YES\n"),
            ("table", lambda t: "| a    | YES    |" in t)):
        out = io.StringIO()
        output.emit(fmt, data, ["NAME", "PUBLIC"], rows, out=out)
        assert check(out.getvalue()), (fmt, out.getvalue())


def test_emit_human_text_unless_machine_format():
    out = io.StringIO()
    output.emit("human", {"a": 1}, human="A is 1", out=out)
    assert out.getvalue() == "A is 1\n"
    out = io.StringIO()
    output.emit("json", {"a": 1}, human="A is 1", out=out)
    assert json.loads(out.getvalue()) == {"a": 1}


def test_size():
    assert output.size(None) == ""
    assert output.size(512) == "512B"
    assert output.size(1536) == "1.50KiB"
    assert output.size(3 * 1024 ** 3) == "3.00GiB"


def test_mapping():
    assert output.mapping({"b": {"c": 1}, "a": [1, 2]}) == (
        "a: 1, 2\nb:\n  c: 1")
