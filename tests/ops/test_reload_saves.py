"""How the reloader sees a config.yaml that an editor saves in place, in pieces: never
half of it (a cut-off file can be valid YAML with rules missing), never the empty file
between truncating and writing (that would be reported as a broken edit)."""

from __future__ import annotations

import os
from pathlib import Path

from monitor.config import Config, ConfigError, load_config
from monitor.reload import ConfigReloader, Rejected

CONFIG = """\
database: "sqlite:///{db}"
notifiers:
  out:
    type: console
feeds:
  - name: wire
    url: http://127.0.0.1:9/wire.rss
rules:
  - name: csto-exit
    query: CSTO AND withdraw*
  - name: quake
    query: earthquake OR aftershock*
"""


def _save_in_place(path: Path, text: str) -> None:
    # Truncate and write over the same inode, as vim (backupcopy=yes), nano and
    # many IDEs do; the next write's mtime must differ from this one's.
    with open(path, "r+" if path.exists() else "w", encoding="utf-8") as file:
        file.truncate(0)
        file.write(text)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_a_config_saved_in_place_in_pieces_is_applied_whole_and_never_half(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    first = CONFIG.format(db=tmp_path / "w.db").replace("csto-exit", "csto")
    path.write_text(first)
    applied: list[Config] = []
    rejected: list[Rejected] = []
    reloader = ConfigReloader(
        path=path, load=lambda text: load_config(text, source=str(path), environ={}),
        apply=applied.append, reject=rejected.append, errors=(ConfigError,),
        initial_text=first)

    full = CONFIG.format(db=tmp_path / "w.db")
    cut = full[:full.index("  - name: quake")]  # valid on its own: one rule, not two
    assert [r.name for r in load_config(cut, source="cut", environ={}).rules] == ["csto-exit"]
    looks = []
    for piece in ("", cut, full):
        _save_in_place(path, piece)
        looks.append(reloader.check())
    looks.append(reloader.check())  # the file has stayed as it is since the last look

    assert rejected == []
    assert [[r.name for r in config.rules] for config in applied] == [["csto-exit", "quake"]]
    assert looks == ["changing", "changing", "changing", "applied"]
    assert reloader.check() == "unchanged"


def test_a_file_emptied_for_good_is_rejected_once_it_stays_empty(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    text = CONFIG.format(db=tmp_path / "w.db")
    path.write_text(text)
    rejected: list[Rejected] = []
    reloader = ConfigReloader(
        path=path, load=lambda t: load_config(t, source=str(path), environ={}),
        apply=lambda config: None, reject=rejected.append, errors=(ConfigError,),
        initial_text=text)
    _save_in_place(path, "")
    assert [reloader.check(), reloader.check(), reloader.check()] == [
        "changing", "rejected", "unchanged"]
    [problem] = rejected[0].problems
    assert problem == f"{path}: the file is empty; it needs at least a 'feeds:' list"
    # SIGHUP reads at once, whether or not the file has settled.
    _save_in_place(path, text)
    assert reloader.check(forced=True) == "applied"
