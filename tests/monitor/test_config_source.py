"""YAML with line numbers and ${VAR} expansion (monitor.yamlsource)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.yamlsource import SourceProblem, read_yaml


def test_every_key_and_item_keeps_its_line() -> None:
    document = read_yaml("feeds:\n  - name: bbc\n    tags:\n      - uk\n      - wire\n", environ={})
    assert document.data == {"feeds": [{"name": "bbc", "tags": ["uk", "wire"]}]}
    assert document.lines == {
        (): 1,
        ("feeds",): 1,
        ("feeds", 0): 2,
        ("feeds", 0, "name"): 2,
        ("feeds", 0, "tags"): 3,
        ("feeds", 0, "tags", 0): 4,
        ("feeds", 0, "tags", 1): 5,
    }
    assert document.problems == ()


def test_keys_are_taken_as_written() -> None:
    # YAML 1.1 would read `on` as True and `null` as None; a config key is its text.
    document = read_yaml("on: yes\nnull: 1\n", environ={})
    assert document.data == {"on": True, "null": 1}


def test_expanded_values_are_remembered_by_path() -> None:
    document = read_yaml("a: ${X}\nb: ${Y:-fallback}\nc: ${X}-${Z}\n", environ={"X": "1", "Z": "2"})
    assert document.data == {"a": "1", "b": "fallback", "c": "1-2"}
    # A default written in the file is not a value from the environment.
    assert document.expanded == {("a",): ("X",), ("c",): ("X", "Z")}


def test_keys_are_not_expanded() -> None:
    assert read_yaml("${X}: 1\n", environ={"X": "a"}).data == {"${X}": 1}


def test_numbers_in_quotes_stay_text_and_expansion_stays_text() -> None:
    document = read_yaml("a: '5'\nb: ${N}\nc: 5\n", environ={"N": "5"})
    assert document.data == {"a": "5", "b": "5", "c": 5}


PROBLEMS: list[tuple[str, str, dict[str, str], SourceProblem]] = [
    (
        "duplicate key",
        "a: 1\nb: 2\na: 3\n",
        {},
        SourceProblem(3, ("a",), "duplicate key 'a' (first written on line 1)"),
    ),
    (
        "missing variable",
        "a:\n  b: ${NOPE}\n",
        {},
        SourceProblem(
            2,
            ("a", "b"),
            "environment variable NOPE is not set (set it, or write ${NOPE:-default})",
        ),
    ),
    (
        "unclosed reference",
        "a: ${NOPE\n",
        {},
        SourceProblem(1, ("a",), "'${' is not closed; write $${ for a literal ${"),
    ),
    (
        "nested reference",
        "a: ${A:-${B}}\n",
        {},
        SourceProblem(
            1,
            ("a",),
            "cannot read '${A:-${B}': write ${NAME} or ${NAME:-default}, or $${ for a literal ${",
        ),
    ),
    (
        "recursive alias",
        "a: &x [1, *x]\n",
        {},
        SourceProblem(1, ("a", 1), "an alias refers to a node that contains it"),
    ),
    (
        "a list as a key",
        "[a, b]: 1\n",
        {},
        SourceProblem(1, (), "a key must be plain text, not a list or mapping"),
    ),
    (
        "an unknown tag",
        "a: !vault secret\n",
        {},
        SourceProblem(1, ("a",), "could not determine a constructor for the tag '!vault'"),
    ),
    (
        "two documents",
        "a: 1\n---\nb: 2\n",
        {},
        SourceProblem(
            2,
            (),
            "invalid YAML at column 1: expected a single document in the stream, "
            "but found another document",
        ),
    ),
    (
        "a control character",
        "a: \x07\n",
        {},
        SourceProblem(
            1,
            (),
            "invalid YAML at column 4: unacceptable character #x0007: "
            "special characters are not allowed",
        ),
    ),
    (
        "a NUL in a query further down",
        "a: 1\r\nrules:\n  - name: r\n    query: CSTO\x00 AND x\n",
        {},
        SourceProblem(
            4,
            (),
            "invalid YAML at column 16: unacceptable character #x0000: "
            "special characters are not allowed",
        ),
    ),
]


@pytest.mark.parametrize(
    ("text", "environ", "problem"), [c[1:] for c in PROBLEMS], ids=[c[0] for c in PROBLEMS]
)
def test_problems(text: str, environ: dict[str, str], problem: SourceProblem) -> None:
    assert read_yaml(text, environ=environ).problems == (problem,)


def test_alias_bomb_is_refused_not_expanded() -> None:
    # "Billion laughs": nine levels of ten aliases each would be 10**9 values.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    document = read_yaml("\n".join(lines) + "\n", environ={})
    assert document.data is None
    assert document.problems == (
        SourceProblem(None, (), "the document expands to more than 200000 values"),
    )


def test_empty_text_is_an_empty_document() -> None:
    document = read_yaml("# only a comment\n", environ={})
    assert (document.data, document.problems) == (None, ())


def test_libyaml_and_pure_python_read_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    if getattr(yaml, "CSafeLoader", None) is None:
        pytest.skip("PyYAML built without libyaml")
    example = (Path(__file__).resolve().parents[2] / "config.yaml").read_text(encoding="utf-8")
    texts = [
        example,
        "d: &d {interval: 10m, tags: [a]}\nfeeds:\n  - <<: *d\n    name: x\n    tags: [b]\n",
        "a: ${X:-1}\nb: 'quoted: ${X}'\nc: [1, 2.5, true, null, ~]\na: again\n",
    ]
    with_libyaml = [read_yaml(text, environ={"X": "x"}) for text in texts]
    monkeypatch.delattr(yaml, "CSafeLoader")
    assert [read_yaml(text, environ={"X": "x"}) for text in texts] == with_libyaml
