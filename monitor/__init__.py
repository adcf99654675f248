"""wirewatch: a newsroom feed monitor with alerting.

The core pipeline: config, scheduling, fetching, parsing, storing, delivering.
"""

from __future__ import annotations

__version__ = "0.1.0"
