"""The peers' own virtual environment: saq and arq, away from the project's redis-py 8.

arq pins redis<6 and saq redis<8, so they cannot share the project's environment. They live in
<repo>/.bench-peers, made with `python -m venv` on first use and reused after; a marker file
holds the requirements it was installed with, so a change of pins below reinstalls.

    from peers.env import peer_python      # with bench/ on sys.path
    python = peer_python()                 # Path to .bench-peers/bin/python

Run `python bench/peers/env.py` to set it up and print the versions.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".bench-peers"

# Bounded to the versions the figures in bench/peers/README.md were taken with.
REQUIREMENTS = (
    "saq[redis,hiredis]>=0.26,<0.27",
    "arq>=0.28,<0.29",  # brings redis[hiredis]<6
    "typing-extensions>=4.6",  # saq 0.26 imports it without declaring it
)

_MARKER = VENV / ".installed"
_LOCK = VENV / ".lock"


def _python() -> Path:
    if os.name == "nt":  # pragma: no cover - the benches run on Linux and macOS
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def _wanted() -> str:
    return "\n".join(REQUIREMENTS) + "\n"


def _ready() -> bool:
    return _python().exists() and _MARKER.exists() and _MARKER.read_text() == _wanted()


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip()[-2000:]
        raise RuntimeError(f"{what} failed (exit {done.returncode}):\n{tail}")


def peer_python() -> Path:
    """The venv's python, creating the venv and installing saq and arq first if needed."""
    if _ready():
        return _python()
    VENV.mkdir(parents=True, exist_ok=True)  # venv makes its tree in an existing folder
    # One installer at a time (two benches started together).
    with _LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _ready():
                return _python()
            print(
                f"bench peers: installing {', '.join(REQUIREMENTS)} into {VENV} (once)",
                file=sys.stderr,
                flush=True,
            )
            with contextlib.suppress(FileNotFoundError):
                _MARKER.unlink()
            if not _python().exists():
                _run([sys.executable, "-m", "venv", str(VENV)], "python -m venv")
            _run(
                [
                    str(_python()),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    *REQUIREMENTS,
                ],
                "pip install " + " ".join(REQUIREMENTS),
            )
            _MARKER.write_text(_wanted())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return _python()


def versions(python: Path | None = None) -> dict[str, str]:
    """The installed versions of saq, arq, redis-py and hiredis in the peers' venv."""
    python = python or peer_python()
    code = (
        "import json, importlib.metadata as m;"
        "print(json.dumps({n: m.version(n) for n in ('saq', 'arq', 'redis', 'hiredis')}))"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def main() -> int:
    python = peer_python()
    print(f"python: {python}")
    for name, version in versions(python).items():
        print(f"{name}: {version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
