"""Ingest before/after: this tree against a git ref, interleaved in one run, wall and CPU time.

Run from the repository root:  python bench/ingest_ab.py --ref 145ed4a [--rounds 4]

A shared machine makes one bench run's wall time a guess, so this alternates the two
code trees round by round (the order flips each round), each in a fresh process on
the same inputs, and prints medians over rounds of
  (a) the full SPX CBOE JSON end to end (compute + Parquet + DuckDB, as ingest_bench.py
      measures it): wall ms and CPU ms (process time, every thread);
  (b) the 1.5-million-contract long Parquet file, no profile: contracts/s by wall and by CPU;
and the levels both trees computed, which must be identical.
The ref's tree comes from `git archive` into a temporary folder; both use this venv.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# One measurement in a child process whose sys.path starts with the tree under test.
CHILD = r"""
import json, statistics, sys, tempfile, time, uuid
from pathlib import Path
tree, long_file, repeats, long_reps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, str(tree / "bench"))
import ingest_bench as b
import pyarrow.parquet as pq
from gexdaemon.core.settings import GexSettings
from gexdaemon.pipeline.snapshot import compute_snapshot
from gexdaemon.storage.snapshots import persist_snapshot
settings = GexSettings()
wall, cpu = [], []
with tempfile.TemporaryDirectory() as tmp:
    store = b.open_store(Path(tmp))
    for i in range(repeats + 2):
        t0, c0 = time.perf_counter(), time.process_time()
        r = compute_snapshot(b.SPX_JSON, job_id=uuid.uuid4(), symbol_hint=None, settings=settings, now=b.NOW, context=b.CTX)
        persist_snapshot(store, Path(tmp) / "gex", r.record)
        if i >= 2:  # warm-up as in ingest_bench.py
            wall.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
    store.close()
n = pq.ParquetFile(long_file).metadata.num_rows
lw, lc = [], []
for _ in range(long_reps):
    t0, c0 = time.perf_counter(), time.process_time()
    compute_snapshot(long_file, job_id=uuid.uuid4(), symbol_hint="SPX", settings=settings, now=b.NOW, context=b.CTX, with_profile=False)
    lw.append(time.perf_counter() - t0)
    lc.append(time.process_time() - c0)
m = statistics.median
s = r.snapshot
print(json.dumps({"spx_e2e_ms": m(wall), "spx_e2e_cpu_ms": m(cpu), "long_per_s": n / m(lw),
                  "long_per_s_cpu": n / m(lc),
                  "levels": [s.total_gex, s.zero_gamma, s.call_wall, s.put_wall, s.abs_gamma_strike]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="the git ref to compare against")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7, help="SPX runs per round")
    parser.add_argument("--contracts", type=int, default=1_500_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gexd-ingest-ab-") as tmp:
        root = Path(tmp)
        base = root / "ref"
        base.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", args.ref], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        sys.path.insert(0, str(REPO / "bench"))
        import ingest_bench  # after sys.path: the bench folder is not a package

        long_file = root / "long.parquet"
        ingest_bench.make_opra_scale_file(long_file, args.contracts)
        trees = {f"before ({args.ref})": base, "after (this tree)": REPO}
        found: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
        for i in range(args.rounds):
            order = list(trees) if i % 2 == 0 else list(trees)[::-1]
            for name in order:
                tree = trees[name]
                env = {**os.environ, "PYTHONPATH": str(tree)}
                out = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        CHILD,
                        str(tree),
                        str(long_file),
                        str(args.repeats),
                        "3",
                    ],
                    env=env,
                    cwd=tree,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                found[name].append(json.loads(out.strip().splitlines()[-1]))
                print(f"round {i + 1} {name}: {found[name][-1]}", flush=True)
    print()
    for name, runs in found.items():
        med = {
            k: statistics.median(float(r[k]) for r in runs)  # type: ignore[arg-type]
            for k in ("spx_e2e_ms", "spx_e2e_cpu_ms", "long_per_s", "long_per_s_cpu")
        }
        print(
            f"{name}: SPX JSON end to end {med['spx_e2e_ms']:.1f} ms wall, "
            f"{med['spx_e2e_cpu_ms']:.1f} ms CPU; long Parquet {med['long_per_s']:,.0f} "
            f"contracts/s wall, {med['long_per_s_cpu']:,.0f} by CPU ({len(runs)} rounds)"
        )
    levels = {json.dumps(r["levels"]) for runs in found.values() for r in runs}
    print(f"levels identical in every run: {len(levels) == 1} {sorted(levels)[0]}")


if __name__ == "__main__":
    main()
