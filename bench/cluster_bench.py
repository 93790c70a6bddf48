"""Cluster bench: nodes as separate processes on one real redis-server (AOF, fsync always).

Run: python bench/cluster_bench.py [--quick] [--json] [--skip-peers]

- scaling: 50 ms jobs, 8 slots a node, 1, 2 and 4 nodes; jobs/s and the speedup of 4
  nodes over one (target: >= 3.7x; quick >= 3.5x). On a 2-core machine the nodes share
  two cores, so this measures the cluster's coordination (the leader's one scheduler,
  leases, fencing), not CPU work: a job is 50 ms of waiting, as a fetch is.
- noop: no-op jobs end to end (submit -> leader -> node -> FINISH), and the single submit's
  acknowledgement latency (one SUBMIT script, fsynced); saq and arq on the same Redis in
  their own environment (bench/peers) as the comparison lines.
- chaos: a steady flood while worker nodes are SIGKILLed, the leader is SIGKILLed,
  redis-server is SIGKILLed (and restarted on its AOF), and nodes are SIGSTOPped past their
  lease; then a reader independent of the nodes checks every acknowledged job: lost,
  duplicate terminal states (from the event stream), duplicate or missing published
  snapshots, staging files left; and how long dispatch took to resume after each leader death.
- shares: 3 nodes under 1.3x overload of the levels' mix: CRITICAL on time, each level's
  share of the work against the weights, LOW's share (never starved).

The nodes run the real ClusterNode (heartbeats, reaper, leader, workers) with a work
function that sleeps the job's time and stages/publishes a file the way the daemon stages
a snapshot, so the chaos checks count real publications.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gexdaemon.cluster.board import Board  # noqa: E402
from gexdaemon.cluster.keys import Keys  # noqa: E402
from gexdaemon.cluster.localredis import LocalRedis, free_port  # noqa: E402
from gexdaemon.cluster.node import Attempt, ClusterNode, new_job  # noqa: E402
from gexdaemon.core.settings import (  # noqa: E402
    ClusterSettings,
    RetrySettings,
    Settings,
    SourcesSettings,
)
from gexdaemon.core.vocab import PriorityLevel  # noqa: E402

NAME = "bench"
LEVELS = list(PriorityLevel)
SLA_MS = {
    PriorityLevel.CRITICAL: 30_000,
    PriorityLevel.HIGH: 300_000,
    PriorityLevel.MEDIUM: 1_800_000,
}


# -- a node process ---------------------------------------------------------------------


def node_settings(redis_url: str, lease_s: float, leader_ttl_s: float) -> Settings:
    return Settings(
        cluster=ClusterSettings(
            redis_url=redis_url, name=NAME, lease_s=lease_s, leader_ttl_s=leader_ttl_s
        ),
        # The bench measures the cluster, not a source's politeness: no caps, no rate.
        sources=SourcesSettings(max_concurrency=256, rate_per_s=1e9, burst=10**9),
        retry=RetrySettings(base_delay_s=0.05, max_delay_s=0.2),
    )


async def run_node(args: argparse.Namespace) -> None:
    from gexdaemon.cluster.link import connect

    settings = node_settings(args.redis, args.lease, args.leader_ttl)
    client = await connect(settings.cluster)
    staging, published = Path(args.staging), Path(args.published)

    async def work(job_id: str, job: Mapping[str, str]) -> Attempt:
        seconds = float(job.get("work_s") or args.job_s)
        if seconds > 0:
            await asyncio.sleep(seconds)
        if not args.files:
            return Attempt(ok=True)
        token = job["token"]
        staged = staging / f"{job_id}.{token}.staged"
        staged.write_bytes(b"snapshot")

        async def publish() -> None:
            staged.replace(published / f"{job_id}.{token}.snap")

        async def discard() -> None:
            staged.unlink(missing_ok=True)

        return Attempt(ok=True, publish=publish, discard=discard)

    board = Board(client, Keys(NAME))
    # As the daemon does at start: what a previous run of this node staged is published
    # when its FINISH was accepted (killed between FINISH and the rename), else dropped.
    leftovers = await asyncio.to_thread(lambda: sorted(staging.glob("*.staged")))
    for staged in leftovers:
        job_id, token, _ = staged.name.split(".", 2)
        h = await board.job(job_id) or {}
        if (
            h.get("status") == "completed"
            and h.get("token") == token
            and h.get("node") == args.node
        ):
            staged.replace(published / f"{job_id}.{token}.snap")
        else:
            staged.unlink()
    node = ClusterNode(board, settings, node_id=args.node, slots=args.slots, work=work)
    await node.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await node.stop(grace_s=2.0)
    await client.aclose()


class Nodes:
    """Node processes of one run."""

    def __init__(
        self,
        redis: LocalRedis,
        root: Path,
        *,
        slots: int,
        job_s: float,
        lease_s: float = 3.0,
        leader_ttl_s: float = 1.0,
        files: bool = False,
    ) -> None:
        self.redis, self.root = redis, root
        self.slots, self.job_s, self.files = slots, job_s, files
        self.lease_s, self.leader_ttl_s = lease_s, leader_ttl_s
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.count = 0
        root.mkdir(parents=True, exist_ok=True)

    def spawn(self, node_id: str | None = None) -> str:
        node_id = node_id or f"n{self.count}"
        self.count += 1
        argv = [
            sys.executable, __file__, "--node", node_id, "--redis", self.redis.url,
            "--slots", str(self.slots), "--job-s", str(self.job_s),
            "--lease", str(self.lease_s), "--leader-ttl", str(self.leader_ttl_s),
            "--staging", str(self.root / "staging" / node_id),
            "--published", str(self.root / "published"),
        ] + (["--files"] if self.files else [])  # fmt: skip
        log = (self.root / f"{node_id}.log").open("ab")
        self.procs[node_id] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        return node_id

    def kill(self, node_id: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(node_id)
        proc.send_signal(sig)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


# -- the driver --------------------------------------------------------------------------


async def board_for(redis: LocalRedis) -> Board:
    from gexdaemon.cluster.link import connect

    settings = node_settings(redis.url, 3.0, 1.0)
    return Board(await connect(settings.cluster), Keys(NAME))


async def wait_nodes(board: Board, count: int, within: float = 30.0) -> None:
    give_up = time.monotonic() + within
    while time.monotonic() < give_up:
        nodes = await board.nodes()
        holder, _ = await board.leader()
        if len(nodes) >= count and holder:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{count} nodes did not join within {within:.0f} s")


async def submit_jobs(
    board: Board,
    ids: list[str],
    *,
    mix: list[PriorityLevel] | None = None,
    work_s: float | None = None,
    batch: int = 200,
) -> None:
    now = await board.time_ms()
    jobs = []
    for i, job_id in enumerate(ids):
        level = (mix or [PriorityLevel.HIGH])[i % len(mix or [PriorityLevel.HIGH])]
        sla = SLA_MS.get(level)
        fields: dict[str, Any] = {} if work_s is None else {"work_s": work_s}
        jobs.append(
            new_job(
                job_id,
                level,
                source=f"src{i % 512}",
                estimate_s=work_s or 0.05,
                enqueued_ms=now,
                deadline_ms=None if sla is None else now + sla,
                fields=fields,
            )
        )
    for start in range(0, len(jobs), batch):
        await board.submit(jobs[start : start + batch])


async def finish_marks(
    board: Board, total: int, fractions: tuple[float, ...], within: float
) -> list[float]:
    """When (monotonic) each fraction of `total` jobs had finished; waits for all of them."""
    marks: list[float] = []
    start = time.monotonic()
    while True:
        done = await finished_count(board)
        now = time.monotonic()
        while len(marks) < len(fractions) and done >= fractions[len(marks)] * total:
            marks.append(now)
        if done >= total:
            return marks
        if now - start > within:
            raise RuntimeError(f"only {done} of {total} jobs finished in {within:.0f} s")
        await asyncio.sleep(0.005)


async def finished_count(board: Board) -> int:
    return int(await board.client.zcard(board.keys.finished))


async def wait_finished(board: Board, total: int, within: float) -> float:
    start = time.monotonic()
    while await finished_count(board) < total:
        if time.monotonic() - start > within:
            raise RuntimeError(
                f"only {await finished_count(board)} of {total} jobs finished in {within:.0f} s"
            )
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def fresh_redis(root: Path) -> LocalRedis:
    return LocalRedis(folder=root / f"redis-{free_port()}", port=free_port()).start()


async def scaling(root: Path, quick: bool) -> dict[str, Any]:
    counts = [1, 2, 4]
    rates = []
    for n in counts:
        redis = fresh_redis(root)
        nodes = Nodes(redis, root / f"scale{n}", slots=8, job_s=0.05)
        try:
            for _ in range(n):
                nodes.spawn()
            board = await board_for(redis)
            await wait_nodes(board, n)
            total = (400 if quick else 1200) * n
            ids = [f"s{n}-{i}" for i in range(total)]
            start = time.monotonic()
            await submit_jobs(board, ids)
            # Steady state: the rate between 10% and 90% of the jobs finished (the ramp-up
            # and the tail, when fewer jobs than slots are left, are not the cluster's pace).
            marks = await finish_marks(board, total, (0.1, 0.9), within=180)
            elapsed = time.monotonic() - start
            steady = 0.8 * total / (marks[1] - marks[0])
            rates.append(steady)
            print(
                f"scaling: {n} node(s) x 8 slots, 50 ms jobs: {total} jobs in {elapsed:.2f} s "
                f"({total / elapsed:,.0f} jobs/s end to end), steady {steady:,.0f} jobs/s "
                f"(ideal {n * 8 / 0.05:,.0f})"
            )
            await board.client.aclose()
        finally:
            nodes.stop_all()
            redis.stop()
    speedup = rates[-1] / rates[0]
    print(
        f"scaling: 4 nodes / 1 node = {speedup:.2f}x in the steady state "
        "(target >= 3.7x; quick >= 3.5x)"
    )
    return {
        "nodes": counts,
        "jobs_per_s": [round(r, 1) for r in rates],
        "speedup_4": round(speedup, 2),
    }


async def noop(root: Path, quick: bool) -> dict[str, Any]:
    redis = fresh_redis(root)
    nodes = Nodes(redis, root / "noop", slots=64, job_s=0.0)
    try:
        for _ in range(2):
            nodes.spawn()
        board = await board_for(redis)
        await wait_nodes(board, 2)
        total = 3000 if quick else 10000
        ids = [f"z{i}" for i in range(total)]
        start = time.monotonic()
        await submit_jobs(board, ids, batch=500)
        await wait_finished(board, total, within=300)
        rate = total / (time.monotonic() - start)
        # single submit acknowledgement: one SUBMIT script, fsynced by Redis
        lat = []
        now = await board.time_ms()
        for i in range(500):
            job = new_job(
                f"one{i}",
                PriorityLevel.LOW,
                source="single",
                estimate_s=0.0,
                enqueued_ms=now,
                deadline_ms=None,
            )
            t0 = time.perf_counter()
            await board.submit([job])
            lat.append((time.perf_counter() - t0) * 1000)
        lat.sort()
        p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
        print(
            f"noop: {total} no-op jobs end to end on 2 nodes: {rate:,.0f} jobs/s; single submit "
            f"ack p50 {p50:.2f} ms, p99 {p99:.2f} ms (target p99 <= 10 ms)"
        )
        await board.client.aclose()
        return {
            "gexd_jobs_per_s": round(rate, 1),
            "submit_p50_ms": round(p50, 3),
            "submit_p99_ms": round(p99, 3),
            "redis_url": redis.url,
        }
    finally:
        nodes.stop_all()
        redis.stop()


def peers(quick: bool) -> dict[str, Any]:
    """saq and arq, each in the peers' own environment, on a fresh Redis (AOF always)."""
    out: dict[str, Any] = {}
    try:
        from peers.env import peer_python  # type: ignore[import-not-found]

        python = peer_python()
    except Exception as exc:  # no network for the peers' install, say so
        print(f"peers: not run ({type(exc).__name__}: {exc})")
        return {"saq_jobs_per_s": None, "arq_jobs_per_s": None}
    root = Path(tempfile.mkdtemp(prefix="gxpeer-"))
    for lib in ("saq", "arq"):
        redis = fresh_redis(root)
        try:
            done = subprocess.run(
                [
                    str(python),
                    str(Path(__file__).parent / "peers" / f"{lib}_noop.py"),
                    "--redis",
                    redis.url,
                    "--jobs",
                    "3000" if quick else "10000",
                ],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            last = (done.stdout.strip().splitlines() or ["{}"])[-1]
            found = json.loads(last) if last.startswith("{") else {}
            out[f"{lib}_jobs_per_s"] = found.get("jobs_per_s")
            out[f"{lib}_enqueue_p99_ms"] = found.get("enqueue_p99_ms")
            print(
                f"peers: {lib} {found.get('version', '?')}: {found.get('jobs_per_s')} no-op jobs/s, "
                f"enqueue p99 {found.get('enqueue_p99_ms')} ms"
                + (
                    ""
                    if done.returncode == 0
                    else f" (exit {done.returncode}: {done.stderr[-300:]})"
                )
            )
        finally:
            redis.stop()
    return out


async def chaos(root: Path, quick: bool) -> dict[str, Any]:
    """Kill things under a steady flood; then check every acknowledged job independently."""
    rng = random.Random(7)
    redis = fresh_redis(root)
    base = root / "chaos"
    nodes = Nodes(redis, base, slots=8, job_s=0.05, lease_s=2.0, leader_ttl_s=1.0, files=True)
    plan = (
        {"worker": 10, "leader": 2, "redis": 2, "stop": 3}
        if quick
        else {"worker": 30, "leader": 5, "redis": 5, "stop": 10}
    )
    acked: list[str] = []
    failovers: list[float] = []
    for _ in range(3):
        nodes.spawn()
    board = await board_for(redis)
    await wait_nodes(board, 3)
    stop_flood = asyncio.Event()

    async def flood() -> None:
        i = 0
        while not stop_flood.is_set():
            ids = [f"c{i + k}" for k in range(20)]
            i += 20
            try:
                await submit_jobs(board, ids, mix=LEVELS)
                acked.extend(ids)  # acknowledged: Redis answered the SUBMIT
            except Exception:
                await asyncio.sleep(0.2)  # not acknowledged (redis down): nothing promised
            await asyncio.sleep(0.1)

    async def leader_node() -> str | None:
        with contextlib.suppress(Exception):
            holder, _ = await board.leader()
            return holder or None
        return None

    flooding = asyncio.create_task(flood())
    events = (
        ["worker"] * plan["worker"]
        + ["leader"] * plan["leader"]
        + ["redis"] * plan["redis"]
        + ["stop"] * plan["stop"]
    )
    rng.shuffle(events)
    kills = Counter[str]()
    for what in events:
        await asyncio.sleep(rng.uniform(0.3, 0.8))
        if what == "redis":
            await asyncio.to_thread(redis.restart)
            kills["redis"] += 1
            continue
        holder = await leader_node()
        victims = [n for n in nodes.procs if (n == holder) == (what == "leader")]
        if not victims:
            continue
        victim = rng.choice(victims)
        if what == "stop":  # paused past its lease, then resumed
            nodes.procs[victim].send_signal(signal.SIGSTOP)
            await asyncio.sleep(nodes.lease_s + 1.0)
            nodes.procs[victim].send_signal(signal.SIGCONT)
            kills["stop"] += 1
            continue
        died = time.monotonic()
        nodes.kill(victim)
        kills[what] += 1
        nodes.spawn(victim)  # its supervisor starts it again, as systemd would
        if what == "leader":
            # dispatch resumes when a new leader assigns: the fencing token counter moves
            token = int(await board.client.get(board.keys.tokens) or 0)
            while True:
                with contextlib.suppress(Exception):
                    holder2, _ = await board.leader()
                    now_token = int(await board.client.get(board.keys.tokens) or 0)
                    if holder2 and now_token > token:  # a leader (maybe the restarted one) assigns
                        break
                if time.monotonic() - died > 60:
                    break
                await asyncio.sleep(0.02)
            failovers.append(time.monotonic() - died)
    stop_flood.set()
    await flooding
    await wait_finished(board, len(acked), within=180)
    await asyncio.sleep(1.0)  # let publications after FINISH land
    nodes.stop_all()
    report = await check(board, acked, base)
    await board.client.aclose()
    redis.stop()
    report.update(
        kills=sum(kills[k] for k in ("worker", "leader")),
        worker_kills=kills["worker"],
        leader_kills=kills["leader"],
        redis_kills=kills["redis"],
        sigstops=kills["stop"],
        acked=len(acked),
        leader_failover_s=round(max(failovers), 2) if failovers else None,
        leader_failover_median_s=round(statistics.median(failovers), 2) if failovers else None,
    )
    print("chaos: " + json.dumps(report))
    return report


async def check(board: Board, acked: list[str], base: Path) -> dict[str, Any]:
    """The independent reader: Redis' job hashes and event stream, and the folders."""
    hashes = await board.jobs(acked)
    lost = [
        j
        for j, h in zip(acked, hashes, strict=True)
        if h is None or h.get("status") not in ("completed", "failed", "cancelled")
    ]
    terminal = Counter[str]()
    after = "0-0"
    while True:
        found = await board.events_after(after, count=5000)
        if not found:
            break
        after = found[-1][0]
        for _, event in found:
            if event.get("type") in ("job.completed", "job.failed", "job.cancelled"):
                terminal[event.get("job_id", "")] += 1
    dup_terminal = sum(1 for c in terminal.values() if c > 1)
    published = Counter(p.name.split(".")[0] for p in (base / "published").glob("*.snap"))
    dup_snap = sum(1 for c in published.values() if c > 1)
    completed = {
        j for j, h in zip(acked, hashes, strict=True) if h and h.get("status") == "completed"
    }
    missing_snap = len(completed - set(published))
    staging = [p for p in (base / "staging").rglob("*") if p.is_file()]
    return {
        "lost": len(lost),
        "duplicate_terminal": dup_terminal,
        "duplicate_snapshots": dup_snap,
        "missing_snapshots": missing_snap,
        "staging_left": len(staging),
        "failed": sum(1 for h in hashes if h and h.get("status") == "failed"),
    }


async def shares(root: Path, quick: bool) -> dict[str, Any]:
    """3 nodes x 4 slots, 1.3x overload for a while: on time, shares, LOW's progress."""
    redis = fresh_redis(root)
    nodes = Nodes(redis, root / "shares", slots=4, job_s=0.1)
    seconds = 30 if quick else 300
    try:
        for _ in range(3):
            nodes.spawn()
        board = await board_for(redis)
        await wait_nodes(board, 3)
        capacity = 3 * 4 / 0.1  # jobs/s
        rate = 1.3 * capacity
        mix = (
            [PriorityLevel.CRITICAL]
            + [PriorityLevel.HIGH] * 3
            + [PriorityLevel.MEDIUM] * 3
            + [PriorityLevel.LOW] * 3
        )
        i = 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            ids = [f"w{i + k}" for k in range(int(rate / 10))]
            levels = [mix[(i + k) % len(mix)] for k in range(len(ids))]
            now = await board.time_ms()
            jobs = [
                new_job(
                    j,
                    lv,
                    source=f"src{(i + k) % 64}",
                    estimate_s=0.1,
                    enqueued_ms=now,
                    deadline_ms=None if lv not in SLA_MS else now + SLA_MS[lv],
                )
                for k, (j, lv) in enumerate(zip(ids, levels, strict=True))
            ]
            await board.submit(jobs)
            i += len(ids)
            await asyncio.sleep(0.1)
        done_ids = [_text(x) for x in await board.client.zrange(board.keys.finished, 0, -1)]
        hashes = await board.jobs(done_ids)
        by_level = Counter(h["level"] for h in hashes if h and h.get("status") == "completed")
        crit = [h for h in hashes if h and h.get("level") == "critical"]
        on_time = sum(1 for h in crit if h.get("sla_status") == "met")
        total = sum(by_level.values())
        # What weighted fair sharing owes each level: its demand, or its weight's part of
        # what the levels below their demand leave (water-filling), as fractions of the work.
        demand = {lv: mix.count(lv) / len(mix) * 1.3 for lv in LEVELS}
        weights = node_settings(redis.url, 3.0, 1.0).scheduler.weights
        owed = water_fill(demand, {lv: weights.for_level(lv) for lv in LEVELS}, 1.0)
        share = {lv: by_level.get(lv.value, 0) / total if total else 0.0 for lv in LEVELS}
        errors = [abs(share[lv] - owed[lv]) / owed[lv] for lv in LEVELS if owed[lv] > 0]
        error = max(errors) if total else None
        print(
            f"shares: {seconds} s at 1.3x: finished by level {dict(by_level)}; CRITICAL on time "
            f"{on_time}/{len(crit)}; share of the work "
            + ", ".join(f"{lv.value} {share[lv]:.3f} (owed {owed[lv]:.3f})" for lv in LEVELS)
            + (
                f"; worst relative error {error:.1%} (target within 10%)"
                if error is not None
                else ""
            )
        )
        await board.client.aclose()
        return {
            "seconds": seconds,
            "finished": dict(by_level),
            "share": {k: round(v / total, 3) for k, v in by_level.items()} if total else {},
            "owed": {lv.value: round(owed[lv], 3) for lv in LEVELS},
            "worst_share_error": round(error, 3) if error is not None else None,
            "critical_on_time": round(on_time / len(crit), 4) if crit else None,
            "low_finished": by_level.get("low", 0),
        }
    finally:
        nodes.stop_all()
        redis.stop()


def water_fill(
    demand: Mapping[PriorityLevel, float], weights: Mapping[PriorityLevel, float], capacity: float
) -> dict[PriorityLevel, float]:
    """Weighted max-min fair shares: a level gets its demand if that is less than its
    weight's part of what is left; the rest is split again among the others."""
    owed = dict.fromkeys(demand, 0.0)
    left, open_ = capacity, {lv for lv, d in demand.items() if d > 0}
    while open_ and left > 1e-12:
        total_w = sum(weights[lv] for lv in open_)
        fits = {lv for lv in open_ if demand[lv] <= left * weights[lv] / total_w}
        if not fits:
            for lv in open_:
                owed[lv] = left * weights[lv] / total_w
            break
        for lv in fits:
            owed[lv] = demand[lv]
            left -= demand[lv]
        open_ -= fits
    return owed


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="gxcb-"))
    result: dict[str, Any] = {}
    result["scaling"] = await scaling(root, args.quick)
    result["noop"] = await noop(root, args.quick)
    if not args.skip_peers:
        result["noop"].update(peers(args.quick))
    result["chaos"] = await chaos(root, args.quick)
    result["shares"] = await shares(root, args.quick)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--only", choices=["scaling", "noop", "chaos", "shares"])
    # a node process
    parser.add_argument("--node")
    parser.add_argument("--redis")
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--job-s", type=float, default=0.05)
    parser.add_argument("--lease", type=float, default=3.0)
    parser.add_argument("--leader-ttl", type=float, default=1.0)
    parser.add_argument("--staging", default="")
    parser.add_argument("--published", default="")
    parser.add_argument("--files", action="store_true")
    args = parser.parse_args()
    if args.node:
        Path(args.staging).mkdir(parents=True, exist_ok=True)
        Path(args.published).mkdir(parents=True, exist_ok=True)
        asyncio.run(run_node(args))
        return
    os.environ.setdefault("PYTHONHASHSEED", "0")
    if args.only:
        root = Path(tempfile.mkdtemp(prefix="gxcb-"))
        result = {args.only: asyncio.run(globals()[args.only](root, args.quick))}
    else:
        result = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
