"""Which process this is, among the instances sharing a database."""

from __future__ import annotations

import os
import socket


def default_instance_id() -> str:
    """``hostname:pid``: what an instance is called unless WIREWATCH_INSTANCE_ID names it."""
    return f"{socket.gethostname()}:{os.getpid()}"
