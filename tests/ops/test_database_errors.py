"""A database that cannot be used: exit 1 and a message that says what to do.

Real SQLite files on disk (a missing directory, a read-only one, a damaged file)
and URLs of databases wirewatch does not store in.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from monitor.cli import main
from monitor.store import Store, StoreError
from monitor.store.base import describe_database_error
from tests.dbs import postgres_url  # noqa: F401  (fixture)
from tests.ops.daemon import REPO

# Missing directories and damaged files are SQLite's own failures: the PostgreSQL pass
# must not move these stores onto PostgreSQL.
pytestmark = pytest.mark.sqlite_files

FEEDS = """\
feeds:
  - name: wire
    url: http://127.0.0.1:9/wire.xml
"""


def _cli(tmp_path: Path, database: str, *argv: str) -> tuple[int, str]:
    config = tmp_path / "config.yaml"
    config.write_text(f'database: "{database}"\n' + FEEDS)
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(config), *argv], stdout=out, stderr=err, environ={})
    return code, err.getvalue()


def test_missing_directory_is_named_with_the_fix(tmp_path: Path) -> None:
    code, err = _cli(tmp_path, f"sqlite:///{tmp_path}/state/ww.db", "run", "--once")
    assert code == 1
    assert f"the directory {tmp_path}/state does not exist: create it" in err


def _damage(path: Path) -> None:
    # Every page but the first overwritten, as a failing disk or a torn copy leaves
    # them: the file still looks like SQLite, and its tables cannot be read.
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.seek(4096)
        file.write(b"\xa5" * (size - 4096))


@pytest.mark.parametrize("command", [["feeds"], ["hits"], ["stats", "--format", "json"],
                                     ["run", "--once", "--deliver-timeout", "0"]])
def test_damaged_sqlite_file_exits_1_naming_the_file_and_the_backup(
        tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "ww.db"
    Store.open(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as connection:  # fold the WAL into the file, then damage it
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _damage(path)

    code, err = _cli(tmp_path, f"sqlite:///{path}", *command)

    assert code == 1
    assert "Traceback" not in err
    assert f"{path} is damaged or not an SQLite database" in err
    assert "restore the latest backup" in err


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "ww.db"
    path.write_text("notes, not a database\n" * 200)
    code, err = _cli(tmp_path, f"sqlite:///{path}", "feeds")
    assert code == 1
    assert f"{path} is damaged or not an SQLite database" in err


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare for a read-only mount")
def test_read_only_directory_is_named_with_the_fix(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    Store.open(f"sqlite:///{state}/ww.db").close()
    config = tmp_path / "config.yaml"
    config.write_text(f'database: "sqlite:///{state}/ww.db"\n' + FEEDS)
    # Root ignores file modes, so the directory is made read-only by a mount, as a
    # systemd unit's ProtectSystem= does to a path missing from ReadWritePaths=.
    script = (f"mount --bind -o ro {state} {state} && "
              f"exec {sys.executable} -m monitor --config {config} feeds")
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    if "mount" in result.stderr and "Operation not permitted" in result.stderr:
        pytest.skip("mount namespaces are not available here")
    assert result.returncode == 1, result.stderr
    assert f"the directory {state} is not writable by this user" in result.stderr


@pytest.mark.parametrize("url", ["mysql://desk@127.0.0.1/wirewatch",
                                 "postgres://desk@127.0.0.1/wirewatch"])
def test_a_database_wirewatch_does_not_store_in_is_a_config_problem(
        tmp_path: Path, url: str) -> None:
    code, err = _cli(tmp_path, url, "check")
    assert code == 1
    assert "database: wirewatch stores its data in SQLite or PostgreSQL" in err


def test_a_driver_that_is_not_installed(tmp_path: Path) -> None:
    pytest.importorskip("sqlalchemy.dialects.postgresql.pg8000")
    if importlib.util.find_spec("pg8000") is not None:
        pytest.skip("pg8000 is installed here")
    code, err = _cli(tmp_path, "postgresql+pg8000://desk@127.0.0.1/wirewatch", "feeds")
    assert code == 1
    assert "Traceback" not in err
    assert "wirewatch: cannot open database postgresql+pg8000://" in err


def _connection_settings(url: str) -> dict[str, str]:
    """The libpq settings a store opened on ``url`` connects with."""
    store = Store.open(url)
    try:
        with store.engine.connect() as connection:
            driver = connection.connection.driver_connection
            assert driver is not None
            return dict(driver.info.get_parameters())
    finally:
        store.close()


def test_postgres_connections_time_out_instead_of_waiting_for_ever(
    request: pytest.FixtureRequest,
) -> None:
    # libpq waits for ever by default: a server gone silent would hold every store
    # call, and the event loop with it. The URL's own settings win.
    server: str = request.getfixturevalue("postgres_url")
    settings = _connection_settings(server)
    assert {key: settings.get(key) for key in ("connect_timeout", "keepalives_idle",
                                               "tcp_user_timeout")} == {
        "connect_timeout": "10", "keepalives_idle": "30", "tcp_user_timeout": "60000"}
    separator = "&" if "?" in server else "?"
    assert _connection_settings(f"{server}{separator}connect_timeout=3")["connect_timeout"] == "3"


def test_a_postgres_server_that_never_answers_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    silent = socket.create_server(("127.0.0.1", 0))  # listens, never accepts nor answers
    port = silent.getsockname()[1]
    try:
        with pytest.raises(StoreError, match="cannot open database"):
            Store.open(f"postgresql+psycopg://postgres@127.0.0.1:{port}/x?connect_timeout=1")
    finally:
        silent.close()


def test_a_locked_database_names_the_holder_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "ww.db"
    url = f"sqlite:///{path}"
    Store.open(url).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # an sqlite3 shell left inside a transaction
    # Waiting 0 s instead of wirewatch's 30 gives SQLite's own error at once.
    engine = create_engine(url, connect_args={"timeout": 0})
    try:
        with pytest.raises(OperationalError) as caught, engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
    finally:
        engine.dispose()
        holder.close()
    message = describe_database_error(url, caught.value)
    assert message.startswith(f"database {url}: another process held the write lock on {path}")
    assert "close any `sqlite3` shell" in message
