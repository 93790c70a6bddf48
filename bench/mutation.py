"""Bench: mutation scores of the pure core (mutmut), per module, against the reviewed equivalents.

Runs `mutmut run` (configured in pyproject.toml's [tool.mutmut]: the four core modules,
the tests in tests/core, forkserver isolation) on every mutant of the chosen modules, or
on a reproducible sample of them, then reads mutmut's per-file results and prints per
module: mutants, killed, survived, timeouts, equivalent (mutants listed in
bench/mutation_equivalent.txt that survived) and score = killed / (mutants - equivalent).

Too slow for CI (minutes per module on 2 cores); docs/mutation.md has the run times
and the before/after table. Run from the repository root:

    nice -n 19 .venv/bin/python bench/mutation.py [--module gex|scheduler|rules|scoring]
        [--sample N] [--seed 16] [--max-children 2] [--json] [--no-run]

--no-run reports the results of the last run without running anything; --survivors
re-tests only what the last run did not kill and the equivalents list does not name
(valid when tests were only added). With --json,
the last line is {"modules": {"gex": {"mutants", "killed", "survived", "equivalent",
"score"}, ...}}. `mutmut show NAME` prints a mutant's diff; `mutmut browse` walks them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from machine import REPO, describe

MODULES = ("scoring", "gex", "rules", "scheduler")
EQUIVALENT_FILE = REPO / "bench" / "mutation_equivalent.txt"

# mutmut 3.8's exit codes (mutmut.stats.status_by_exit_code), grouped as this report counts them.
KILLED = {1, 3, 37}  # a test failed, pytest broke, or the type checker caught it
SURVIVED = {0}
TIMEOUT = {24, -24, 36, 152}  # SIGXCPU: the mutant ran past its CPU limit
# 255 is -1 from the forkserver's worker: the test runner itself raised. mutmut files it
# under "timeout"; it is neither a kill nor a survival (seen on equivalent mutants too), so
# it is reported as "other" and re-tested by --survivors.
NO_TESTS = {5, 33}


@dataclass
class ModuleResult:
    """One module's tally."""

    mutants: int = 0
    killed: int = 0
    survived: int = 0
    timeouts: int = 0
    equivalent: int = 0
    other: int = 0  # no tests, not checked, suspicious, segfault
    survivors: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        denominator = self.mutants - self.equivalent
        return self.killed / denominator if denominator else 1.0


def mutmut_command() -> list[str]:
    exe = Path(sys.executable).with_name("mutmut")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mutmut"]


def meta_path(module: str) -> Path:
    return REPO / "mutants" / "gexdaemon" / "core" / f"{module}.py.meta"


def load_exit_codes(module: str) -> dict[str, int | None]:
    path = meta_path(module)
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    codes: dict[str, int | None] = data["exit_code_by_key"]
    return codes


def load_equivalent() -> dict[str, str]:
    """Reviewed equivalent mutants: `name  reason` per line, '#' comments."""
    equivalent: dict[str, str] = {}
    if not EQUIVALENT_FILE.exists():
        return equivalent
    for raw in EQUIVALENT_FILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        equivalent[name] = reason.strip()
    return equivalent


def generate_mutants() -> None:
    """Write the mutated copies (and their .meta lists of mutant names) without testing them."""
    code = (
        "from mutmut.__main__ import copy_src_dir, copy_also_copy_files, setup_source_paths, "
        "create_mutants\n"
        "from mutmut.mutation.trampoline import set_mutant_under_test\n"
        "set_mutant_under_test('mutant_generation')\n"
        "copy_src_dir(); copy_also_copy_files(); setup_source_paths(); create_mutants(1)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, stdout=subprocess.DEVNULL)


def tally(module: str, names: list[str], equivalent: dict[str, str]) -> ModuleResult:
    codes = load_exit_codes(module)
    result = ModuleResult()
    for name in names:
        code = codes.get(name)
        result.mutants += 1
        if code in KILLED:
            result.killed += 1
        elif code in SURVIVED:
            if name in equivalent:
                result.equivalent += 1
            else:
                result.survived += 1
                result.survivors.append(name)
        elif code in TIMEOUT:
            result.timeouts += 1
        else:
            result.other += 1
            result.survivors.append(name)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", choices=MODULES, action="append")
    parser.add_argument("--sample", type=int, help="test N mutants per module, chosen by --seed")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-run", action="store_true", help="report the last run only")
    parser.add_argument("--fresh", action="store_true", help="delete mutants/ first")
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="re-test only the mutants the last run did not kill (after adding tests only)",
    )
    args = parser.parse_args()
    modules = args.module or list(MODULES)

    print(describe(("mutmut", "pytest", "hypothesis", "numpy")))
    if args.fresh and (REPO / "mutants").exists():
        shutil.rmtree(REPO / "mutants")
    if not args.no_run or not all(meta_path(m).exists() for m in modules):
        # Incremental (by file time): a changed module gets its new mutants' names now, so a
        # sample or a survivors run chooses among the mutants mutmut is about to test.
        generate_mutants()

    chosen: dict[str, list[str]] = {}
    rng = random.Random(args.seed)
    for module in modules:
        names = sorted(load_exit_codes(module))
        if args.sample and args.sample < len(names):
            names = sorted(rng.sample(names, args.sample))
        chosen[module] = names

    elapsed = 0.0
    if not args.no_run:
        started = time.monotonic()
        targets = [name for names in chosen.values() for name in names]
        if args.survivors:
            codes = {m: load_exit_codes(m) for m in modules}
            listed = load_equivalent()
            targets = [
                n
                for m in modules
                for n in chosen[m]
                if codes[m].get(n) not in KILLED and n not in listed
            ]
        elif not args.sample:
            # Every mutant of the module, re-tested even if an earlier run left a verdict.
            targets = [f"gexdaemon.core.{m}.*" for m in modules]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        run = subprocess.run(
            [*mutmut_command(), "run", "--max-children", str(args.max_children), *targets],
            check=False,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        elapsed = time.monotonic() - started
        if run.returncode != 0:
            lines = run.stdout.replace("\r", "\n").splitlines()
            print("\n".join(lines[-40:]), file=sys.stderr)
            print(f"mutmut run failed with exit code {run.returncode}", file=sys.stderr)
            return run.returncode
        print(f"mutmut run: {elapsed:.0f} s, --max-children {args.max_children}")

    equivalent = load_equivalent()
    results = {m: tally(m, chosen[m], equivalent) for m in modules}
    kind = f"sample of {args.sample} (seed {args.seed})" if args.sample else "full"
    print(
        f"\n{'module':<10} {'mutants':>8} {'killed':>7} {'survived':>9} {'timeouts':>9} "
        f"{'equiv':>6} {'other':>6} {'score':>7}   ({kind})"
    )
    for module, r in results.items():
        print(
            f"{module:<10} {r.mutants:>8} {r.killed:>7} {r.survived:>9} {r.timeouts:>9} "
            f"{r.equivalent:>6} {r.other:>6} {r.score:>7.1%}"
        )
    for module, r in results.items():
        if r.survivors:
            print(f"\nsurvivors in {module} (mutmut show NAME):")
            for name in r.survivors:
                print(f"  {name}")
    stale = [n for n in equivalent if not any(n in chosen[m] for m in modules)]
    if stale and not args.sample and len(modules) == len(MODULES):
        print(f"\nlisted as equivalent but no longer a mutant: {', '.join(stale)}")
    if args.json:
        print(
            json.dumps(
                {
                    "modules": {
                        m: {
                            "mutants": r.mutants,
                            "killed": r.killed,
                            "survived": r.survived,
                            "timeouts": r.timeouts,
                            "equivalent": r.equivalent,
                            "score": round(r.score, 4),
                        }
                        for m, r in results.items()
                    },
                    "sample": args.sample,
                    "seconds": round(elapsed, 1),
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
