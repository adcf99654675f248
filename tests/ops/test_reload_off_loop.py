"""A reload loads and compiles the new config while the event loop goes on.

Compiling 10,000 rules takes more than a second; done on the event loop it would
hold polling, delivery and /healthz for that long on every save.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from monitor.reload import ConfigReloader, Rejected


def test_the_loop_runs_other_tasks_while_a_reload_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("version: 1\n")
    released = threading.Event()
    loaded_in: list[str] = []
    applied: list[str] = []
    rejected: list[Rejected] = []
    stop = asyncio.Event()  # bound to no loop until awaited (Python >= 3.10)

    def load(text: str) -> str:
        loaded_in.append(threading.current_thread().name)
        # Finishes only once a task on the event loop has run meanwhile: were the
        # load done on the loop, that task could not run and the wait would time out.
        if not released.wait(timeout=30):
            raise TimeoutError("the event loop did not run while the config loaded")
        return text

    def apply(config: str) -> None:
        applied.append(config)
        stop.set()

    reloader: ConfigReloader[str] = ConfigReloader(
        path=path, load=load, apply=apply, reject=rejected.append, errors=(ValueError,),
        initial_text="version: 1\n", interval=0.05)

    async def release_when_loading() -> None:
        while not loaded_in:
            await asyncio.sleep(0.01)
        released.set()

    async def main() -> None:
        watcher = asyncio.create_task(reloader.run(stop))
        helper = asyncio.create_task(release_when_loading())
        path.write_text("version: 2\n")
        reloader.request()
        await asyncio.wait_for(watcher, timeout=60)
        helper.cancel()

    asyncio.run(main())
    assert applied == ["version: 2\n"]
    assert rejected == []
    assert loaded_in and loaded_in[0] != threading.main_thread().name
