"""Every Redis key of a cluster, under one hash tag: `gexd:{<name>}:...`.

The braces are Redis Cluster's hash-tag syntax: every key of one cluster lives in one
slot, so each Lua script touches a single slot and runs unchanged on Redis Cluster and
Valkey. The seed's names (`priority_queue:<level>`, `job_status:<id>`, `source_cache:<id>`,
`priority_rules`) are kept after the prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

from gexdaemon.core.vocab import PriorityLevel


@dataclass(frozen=True)
class Keys:
    name: str

    @property
    def prefix(self) -> str:
        return f"gexd:{{{self.name}}}:"

    def queue(self, level: PriorityLevel | str) -> str:
        return f"{self.prefix}priority_queue:{PriorityLevel(level).value}"

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job_status:{job_id}"

    def source(self, source_key: str) -> str:
        return f"{self.prefix}source_cache:{source_key}"

    def assign(self, node_id: str) -> str:
        return f"{self.prefix}assign:{node_id}"

    def node(self, node_id: str) -> str:
        return f"{self.prefix}node:{node_id}"

    def idem(self, key: str) -> str:
        return f"{self.prefix}idem:{key}"

    @property
    def rules(self) -> str:
        return f"{self.prefix}priority_rules"

    @property
    def processing(self) -> str:
        return f"{self.prefix}processing"

    @property
    def nodes(self) -> str:
        return f"{self.prefix}nodes"

    @property
    def leader(self) -> str:
        return f"{self.prefix}leader"

    @property
    def epoch(self) -> str:
        return f"{self.prefix}leader_epoch"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def tokens(self) -> str:
        return f"{self.prefix}fencing_token"

    @property
    def sources(self) -> str:
        return f"{self.prefix}sources"

    @property
    def finished(self) -> str:
        return f"{self.prefix}finished"
