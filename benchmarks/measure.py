"""Peak memory of this process and everything it started (the Spark JVM, its Python workers)."""

from __future__ import annotations

import os
from pathlib import Path


def _status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (ppid := _status(int(entry.name)).get("PPid")):
            children.setdefault(int(ppid), []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def peak_rss_mib() -> float:
    """Sum of the peak resident sizes (VmHWM) of this process tree, in MiB."""
    total_kib = 0
    for pid in _descendants(os.getpid()):
        value = _status(pid).get("VmHWM", "0 kB").split()[0]
        total_kib += int(value)
    return total_kib / 1024
