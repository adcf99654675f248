"""``python -m monitor`` is the ``wirewatch`` command."""

from __future__ import annotations

import sys

from monitor.cli import main

sys.exit(main())
