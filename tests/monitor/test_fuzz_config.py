"""`wirewatch check` on mangled copies of the example config.yaml: lines deleted,
duplicated, re-indented or tabbed, values swapped between list, scalar and mapping, stray
bytes, a BOM, very long lines. Each ends in OK or in problems with their lines, never in
a traceback."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.cli import main

EXAMPLE = (Path(__file__).resolve().parents[2] / "config.yaml").read_bytes().split(b"\n")

SNIPPETS = [
    b"\t", b"\xff\xfe", b"\xef\xbb\xbf", b"\x00", b"\x1b", b"  ", b"- ", b": ", b"[", b"]",
    b"{", b"}", b"&a", b"*a", b"<<: *a", b"!!python/object/apply:os.system", b"? ", b"|",
    b"'", b'"', b"#", b"---", b"...", b"~", b"1e999", b"-1", b"0x10", b"yes", b"!!binary aGk=",
    b"2026-01-01", b"${X}", b"${", b"$", b"\xc3", b"\xed\xa0\x80", b"\r", b"\xc2\x85",
    b"\xe2\x80\xa8", b"@", b"\xe2\x80\x9c", b"NEAR/0", "ОДКБ".encode(), b"x" * 20_000,
]
VALUES = [
    b"[x, y]", b"{a: 1}", b"x", b"", b"1", b"[]", b"{}", b"[[1]]", b"{name: x}",
    b"!!binary aGk=", b"true", b"3.5", b"null", b"\"\xe2\x80\x9c\"", b"'@nowhere'",
]


def mutate(lines: list[bytes], edits: list[tuple[str, int, int]]) -> bytes:
    lines = list(lines)
    for kind, at, arg in edits:
        lines = lines or [b""]
        i = at % len(lines)
        line = lines[i]
        body = line.lstrip(b" ")
        indent = line[: len(line) - len(body)]
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, line)
        elif kind == "indent":
            lines[i] = b" " * (arg % 9) + body
        elif kind == "tab":
            lines[i] = indent + b"\t" + body
        elif kind == "insert":
            cut = arg % (len(line) + 1)
            lines[i] = line[:cut] + SNIPPETS[arg % len(SNIPPETS)] + line[cut:]
        elif kind == "new line":
            lines.insert(i, SNIPPETS[arg % len(SNIPPETS)])
        elif kind == "swap value" and b":" in line:
            lines[i] = line.split(b":", 1)[0] + b": " + VALUES[arg % len(VALUES)]
        elif kind == "list/scalar":
            lines[i] = indent + (body[2:] if body.startswith(b"- ") else b"- " + body)
        elif kind == "bom":
            lines[0] = b"\xef\xbb\xbf" + lines[0]
        elif kind == "long line":
            lines[i] = line + b"a" * (arg * 997)
    return b"\n".join(lines)


edit = st.tuples(
    st.sampled_from(["delete", "duplicate", "indent", "tab", "insert", "new line",
                     "swap value", "list/scalar", "bom", "long line"]),
    st.integers(0, len(EXAMPLE) - 1),
    st.integers(0, 300),
)


def check(path: Path, tmp_path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    environ = {"WIREWATCH_DATABASE": f"sqlite:///{tmp_path / 'w.db'}"}
    code = main(["--config", str(path), "check"], stdout=out, stderr=err, environ=environ)
    return code, out.getvalue(), err.getvalue()


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edits=st.lists(edit, min_size=1, max_size=4))
def test_check_of_a_mangled_example_config(
    edits: list[tuple[str, int, int]], tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(mutate(EXAMPLE, edits))
    code, out, err = check(path, tmp_path)
    assert "Traceback" not in out + err
    if code == 0:
        assert re.search(r": OK \(\d+ feeds, \d+ rules, \d+ notifiers\)\n$", out)
        return
    assert code == 1
    headline, *problems = err.splitlines()
    if headline.startswith("wirewatch: "):  # not UTF-8
        assert headline.startswith(f"wirewatch: {path}: cannot read: 'utf-8' codec can't decode")
        return
    assert re.fullmatch(rf"{re.escape(str(path))}: \d+ problems?:", headline)
    # One `file:line: path: message` per problem; a query's caret lines follow its own.
    located = [p for p in problems if p.startswith(f"{path}:")]
    assert located
    for problem in located:
        assert re.match(rf"{re.escape(str(path))}:\d+: ", problem), problem


OK = ": OK (4 feeds, 4 rules, 1 notifiers)"
JOINED = b"\n".join(EXAMPLE)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xef\xbb\xbf" + JOINED, OK),
        (b"\r\n".join(EXAMPLE), OK),
        (JOINED.replace(b"\n  ", b"\n\t"), "config.yaml:19: invalid YAML at column 1: "
         "found character '\\t' that cannot start any token"),
        (JOINED + b"\n# " + b"x" * 1_000_000 + b"\n", OK),
        (JOINED.replace(b"exit OR", b"exit OR " + b"a OR " * 200_000), OK),
        (b"", "the file is empty; it needs at least a 'feeds:' list"),
        (b"\xef\xbb\xbf", "the file is empty; it needs at least a 'feeds:' list"),
        (bytes(range(256)), "cannot read: 'utf-8' codec can't decode byte 0x80 in position 128"),
    ],
    ids=["BOM", "CRLF", "tabs", "1 MB comment", "1 MB query", "empty", "only a BOM", "binary"],
)
def test_check_of_awkward_whole_files(data: bytes, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(data)
    code, out, err = check(path, tmp_path)
    assert (code, expected in (out if code == 0 else err)) == (0 if expected == OK else 1, True)
