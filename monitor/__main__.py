"""``python -m monitor`` is the ``wirewatch`` command."""

from __future__ import annotations

import sys

from monitor.entry import main

sys.exit(main())
