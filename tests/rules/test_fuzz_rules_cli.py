"""`wirewatch rules test` and `check` on bytes that are not UTF-8: in arguments, paths,
standard input or the --file, a clear answer or a message, never a traceback."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.cli import main

CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def strict_stream(data: bytes = b"", errors: str = "strict") -> io.TextIOWrapper:
    """A standard stream as Python opens it in a UTF-8 locale (or, with surrogateescape,
    in the C locale)."""
    return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors=errors)


def output_of(stream: io.TextIOWrapper) -> str:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8")


def test_rules_test_echoes_a_title_that_is_not_utf8_escaped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The shell passes $'CSTO \xff said'; Python decodes the byte to a lone surrogate.
    stdout = strict_stream()
    monkeypatch.setattr(sys, "stdout", stdout)
    err = io.StringIO()
    argv = ["--config", str(tmp_path / "unused.yaml"), "rules", "test", "CSTO",
            "--title", "CSTO \udcff said"]
    assert main(argv, stderr=err, environ={}) == 0
    assert output_of(stdout) == (
        "MATCH\n  terms:   title:'CSTO'\n  snippet: **CSTO** \\udcff said\n"
    )
    assert err.getvalue() == ""


def test_check_of_a_config_path_that_is_not_utf8_says_ok(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "desk-\udcff.yaml"  # the file desk-\xff.yaml
    path.write_bytes(CONFIG.read_bytes())
    stdout = strict_stream()
    monkeypatch.setattr(sys, "stdout", stdout)
    environ = {"WIREWATCH_DATABASE": f"sqlite:///{tmp_path / 'w.db'}"}
    assert main(["--config", str(path), "check"], stderr=io.StringIO(), environ=environ) == 0
    assert output_of(stdout).startswith(f"{tmp_path}/desk-\\udcff.yaml: OK (")


BYTES = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.sampled_from([b"CSTO ", b"\xff", b"\xfe\xff", b"\x00", b"\xef\xbb\xbf", b"\xed\xa0\x80",
                         b"\xc3", "ОДКБ ".encode(), b"\x1b[31m", b"\r\n", b"withdrawal "]),
        max_size=30,
    ).map(b"".join),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=BYTES, stdin_errors=st.sampled_from(["strict", "surrogateescape"]))
def test_rules_test_on_any_bytes_from_stdin_or_a_file(
    data: bytes, stdin_errors: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    body = tmp_path / "item.bin"
    body.write_bytes(data)
    try:
        data.decode("utf-8")
        readable = True
    except UnicodeDecodeError:
        readable = False
    for source in ("-", str(body)):
        monkeypatch.setattr(sys, "stdin", strict_stream(data, stdin_errors))
        stdout = strict_stream()
        monkeypatch.setattr(sys, "stdout", stdout)
        err = io.StringIO()
        argv = ["--config", str(tmp_path / "unused.yaml"), "rules", "test",
                "CSTO AND withdraw*", "--file", source]
        code = main(argv, stderr=err, environ={})
        # In the C locale standard input reads any bytes; a file is always read as UTF-8.
        if readable or (source == "-" and stdin_errors == "surrogateescape"):
            expected = "MATCH" if code == 0 else "NO MATCH"
            assert code in (0, 1)
            assert output_of(stdout).splitlines()[0] == expected
        else:
            assert code == 2
            assert err.getvalue().startswith("wirewatch: cannot read --file ")
            assert "can't decode byte" in err.getvalue()
