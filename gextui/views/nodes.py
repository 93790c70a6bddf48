"""The Nodes view: the daemons sharing the desk's work (cluster mode), their slots and
heartbeats, which one leads, and whether Redis keeps every acknowledged request.
In embedded mode it says so: one daemon, no Redis."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from gexdaemon.protocol import shapes as s
from gextui import readout
from gextui.actions import bindings_for
from gextui.columns import Column
from gextui.desk import DeskState
from gextui.views.base import TableView
from gextui.widgets.livetable import LiveTable, Row

COLUMNS = (
    Column("node", "NODE", 18, flex=True),
    Column("role", "ROLE", 8),
    Column("busy", "BUSY/SLOTS", 10, right=True),
    Column("beat", "HEARTBEAT", 10, right=True),
    Column("host", "HOST", 14, drop=2),
    Column("version", "VERSION", 9, drop=3),
)
STALE_BEAT_S = 3.0  # a node this quiet is about to leave the cluster


def node_row(node: s.ClusterNode, *, alone: bool = False) -> Row:
    late = node.heartbeat_age_s > STALE_BEAT_S
    if alone:  # embedded mode: nothing to lead
        role = Text("alone", style="dim")
    elif node.leader:
        role = Text("leader", style=f"bold {readout.GREEN}")
    else:
        role = Text("worker")
    return node.node_id, {
        "node": Text(node.node_id, style="bold"),
        "role": role,
        "busy": Text(
            f"{node.busy} / {node.slots}",
            style=f"bold {readout.AMBER}" if node.slots and node.busy >= node.slots else "",
        ),
        "beat": Text(
            f"{node.heartbeat_age_s:.1f} s ago", style=f"bold {readout.RED}" if late else "dim"
        ),
        "host": Text(node.host),
        "version": Text(node.version or "-", style="dim"),
    }


def summary_text(found: s.ClusterStatus | None) -> Text:
    if found is None:
        return Text("asking the daemon about its cluster...", style="dim")
    if found.mode == "embedded":
        return Text.assemble(
            ("embedded mode", "bold"),
            ("  one daemon, DuckDB only, no Redis; [cluster] redis_url shares the work", "dim"),
        )
    text = Text.assemble(
        (f"cluster {found.cluster}", "bold"),
        f"  {len(found.nodes)} nodes  ",
        ("leader ", "dim"),
        (found.leader or "none: an election is under way", "bold" if found.leader else readout.RED),
        (f" (epoch {found.epoch})", "dim"),
    )
    redis = found.redis
    if redis is not None:
        if redis.durable:
            text.append("  Redis durable", style=readout.GREEN)
        else:
            text.append(
                "  Redis VOLATILE: acknowledged requests can be lost", style=f"bold {readout.RED}"
            )
    return text


class NodesView(TableView):
    VIEW_ID = "nodes"
    BINDINGS = bindings_for("nodes")
    COLUMNS = COLUMNS

    def show_desk(self, desk: DeskState, now: datetime) -> None:
        if desk.rev.cluster == self._drawn:
            return
        self._drawn = desk.rev.cluster
        found = desk.cluster
        self.query_one("#nodes-summary", Static).update(summary_text(found))
        alone = found is not None and found.mode == "embedded"
        self.query_one(LiveTable).sync(
            [node_row(n, alone=alone) for n in found.nodes] if found else []
        )
        hint = Text(no_wrap=True, overflow="ellipsis")
        if found is not None and found.redis is not None:
            hint.append(found.redis.url, style="bold")
            hint.append(f"  Redis {found.redis.version}, {found.redis.used_memory}", style="dim")
            if found.redis.warning:
                hint.append(f"  {found.redis.warning}", style=readout.RED)
        self.query_one("#nodes-help", Static).update(hint)
