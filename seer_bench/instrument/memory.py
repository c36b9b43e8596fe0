"""Host memory of this process, read with psutil."""

from __future__ import annotations

import psutil

_PROCESS = psutil.Process()


def rss_bytes() -> int:
    return _PROCESS.memory_info().rss
