"""Machine and library facts printed at the top of every benchmark."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata


def describe(
    packages: tuple[str, ...] = ("duckdb", "pyarrow", "numpy", "msgspec", "pydantic", "aiohttp"),
) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            mem_kb = int(fh.readline().split()[1])
        mem = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        mem = "?"
    versions = []
    for name in packages:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return (
        f"machine: {platform.system()} {platform.release()} {platform.machine()}, {cpu}, "
        f"{os.cpu_count()} CPUs, {mem} RAM\n"
        f"python: {sys.version.split()[0]} ({platform.python_implementation()}); "
        + ", ".join(versions)
    )
