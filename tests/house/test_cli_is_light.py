"""A remote verb loads the client and the renderers only: a desk scripting `status` in a
loop, or typing it, does not wait for the daemon, DuckDB, pyarrow, numpy or Textual."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

HEAVY = ("duckdb", "pyarrow", "numpy", "textual", "aiohttp", "watchfiles", "structlog")
PROBE = """
import json, sys
from gexdaemon.cli.main import main
code = main({argv!r})
print(json.dumps({{"code": code, "modules": sorted(sys.modules)}}))
"""


def modules_loaded_by(*argv: str) -> tuple[int, list[str]]:
    ran = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=list(argv))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = json.loads(ran.stdout.strip().splitlines()[-1])
    return found["code"], found["modules"]


@pytest.mark.parametrize(
    "argv",
    [
        ("status", "--socket", "/nonexistent/gexd.sock"),
        ("jobs", "--socket", "/nonexistent/gexd.sock"),
        ("gex", "SPX", "--socket", "/nonexistent/gexd.sock"),
        (
            "rules",
            "test",
            "--name",
            "x",
            "--condition",
            "urgent",
            "--score",
            "0.5",
            "--socket",
            "/nonexistent/gexd.sock",
        ),
    ],
)
def test_a_remote_verb_loads_no_heavy_library(argv: tuple[str, ...]) -> None:
    code, modules = modules_loaded_by(*argv)
    assert code == 3  # no daemon answers there: the verb ran as far as the socket
    loaded = sorted({m.split(".")[0] for m in modules} & set(HEAVY))
    assert loaded == []
    assert not any(m.startswith(("gexdaemon.daemon", "gexdaemon.storage")) for m in modules)


def test_help_loads_no_configuration_either() -> None:
    code, modules = modules_loaded_by("--help")
    assert code == 0
    assert "pydantic" not in {m.split(".")[0] for m in modules}
