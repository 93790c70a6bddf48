"""The demo shows every state a desk must recognise within two minutes, and the docs run as written."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gexdaemon.client import Client
from gexdaemon.core.rules import RuleConditionError, compile_condition
from tests.conftest import REPO
from tests.daemon.harness import demo_banner, wait_until

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Demo:
    root: Path  # where a user would stand: var/ is the data directory
    proc: subprocess.Popen[str]
    port: int
    banner: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return self.root / "var" / "run" / "gexd.sock"


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    root = Path(tempfile.mkdtemp(prefix="gxdesk-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEXD")}
    env["GEXD_DATA_DIR"] = str(root / "var")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gexdaemon", "demo", "--minutes", "3", "--seed", "7",
         "--feed-port", str(port)],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    started = Demo(root, proc, port, demo_banner(proc), env)
    try:
        yield started
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def test_the_demo_shows_every_state_a_desk_must_recognise_within_two_minutes(demo: Demo) -> None:
    """Item 16: at risk, breach, an open circuit, a retry and a rejected drop file, each within
    two minutes of the start, and the banner says to expect them."""
    for words in ("rejected drop file", "open circuit", "retries", "at risk", "breached"):
        assert words in demo.banner, demo.banner
    seen: dict[str, float] = {}
    started = time.monotonic()
    with Client(demo.socket) as c:

        def look() -> bool:
            now = time.monotonic() - started
            for job in c.jobs(limit=300).jobs:
                if job.at_risk:
                    seen.setdefault("at risk", now)
                if job.sla_status.value == "breached" and job.priority_level.value == "critical":
                    seen.setdefault("breach", now)
                if job.retry_count:
                    seen.setdefault("retry", now)
            if any(s.circuit_state.value == "open" for s in c.sources().sources):
                seen.setdefault("open circuit", now)
            if list((demo.root / "var" / "drop" / "rejected").glob("*.error.json")):
                seen.setdefault("rejected drop file", now)
            return len(seen) == 5

        wait_until(look, timeout=120, every=0.5, what=f"every state (seen so far: {seen})")


def runnable_blocks(text: str) -> list[tuple[str, str]]:
    """The README's blocks marked `<!-- runs-with-the-demo -->`: (language, body)."""
    return re.findall(r"<!-- runs-with-the-demo -->\n```(\w+)\n(.*?)```", text, re.S)


def test_the_readme_examples_run_as_written(demo: Demo) -> None:
    """Item 17: the README's examples run against the demo as they are written (from the
    folder holding var/, with the venv as .venv/); only the demo's feed port is the one this
    test was given instead of 8765."""
    blocks = runnable_blocks((REPO / "README.md").read_text())
    assert {lang for lang, _ in blocks} == {"sh", "python"} and len(blocks) >= 3
    venv = demo.root / ".venv"
    if not venv.exists():
        venv.mkdir()
        (venv / "bin").symlink_to(BIN)
    for lang, body in blocks:
        code = body.replace("127.0.0.1:8765", f"127.0.0.1:{demo.port}")
        if lang == "python":
            ran = subprocess.run(
                [sys.executable, "-c", code], cwd=demo.root, env=demo.env,
                capture_output=True, text=True, timeout=90,
            )  # fmt: skip
            assert ran.returncode == 0, ran.stderr
            assert re.fullmatch(r"\d+(\.\d+)?\n", ran.stdout), ran.stdout  # the zero gamma level
            continue
        for command in _commands(code):
            # The dashboard itself is tested in tests/tui; here: that the command is there.
            line = ".venv/bin/gextui --help" if command.startswith(".venv/bin/gextui") else command
            ran = subprocess.run(
                ["bash", "-c", f"set -e\n{_assignments(code)}\n{line}"], cwd=demo.root,
                env=demo.env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert ran.returncode == 0, f"{line}\n{ran.stdout}\n{ran.stderr}"
            assert ran.stdout.strip(), line
            assert '"error"' not in ran.stdout, f"{line}\n{ran.stdout}"


def _commands(code: str) -> list[str]:
    """Shell lines (continuations joined), leaving out variable assignments."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not re.match(r"^[A-Z_]+=", line.strip())
    ]


def _assignments(code: str) -> str:
    return "\n".join(line for line in code.splitlines() if re.match(r"^[A-Z_]+=", line))


def test_the_rule_language_examples_in_the_docs_compile_and_its_errors_read_as_shown() -> None:
    """Item 17: every example condition in docs/rules.md compiles, and every error example
    is the error the compiler gives."""
    text = (REPO / "docs" / "rules.md").read_text()
    blocks = re.findall(r"```text\n(.*?)```", text, re.S)
    examples = next(b for b in blocks if "# the seed's two examples" in b)
    conditions = [line for line in examples.splitlines() if line and not line.startswith("#")]
    assert len(conditions) >= 8
    for condition in conditions:
        compile_condition(condition)
    errors = next(b for b in blocks if "calls are not allowed" in b).strip().splitlines()
    assert len(errors) % 2 == 0
    for condition, said in zip(errors[::2], errors[1::2], strict=True):
        with pytest.raises(RuleConditionError) as info:
            compile_condition(condition)
        assert info.value.explanation == said.strip(), condition


def test_user_docs_never_point_into_the_design_folder() -> None:
    """Item 17: the README, the docs and the default config stand on their own: a user has
    no `../shared` (the team's design notes) on their machine."""
    pages = [REPO / "README.md", REPO / "config.toml", *sorted((REPO / "docs").glob("*.md"))]
    assert len(pages) >= 5
    for page in pages:
        text = page.read_text()
        for needle in ("../shared", "shared/reference", "shared/seed"):
            assert needle not in text, f"{page.name} points into the design folder ({needle})"
