"""The configuration schema: every setting, its default and its rule.

Pure: this module only describes and validates values. Reading files and the
environment lives in `gexdaemon.config`. The defaults here are the embedded
defaults; `config.toml` at the repository root lists the same values with a
comment on every key (a test keeps the two identical).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gexdaemon.core.models import (
    MAX_RETRIES,
    ConditionText,
    ExpiryFilter,
    GammaSource,
    GEXDataType,
    GexUnit,
    PriorityLevel,
    SignModel,
)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DaemonSettings(Section):
    data_dir: str = "var"
    socket: str = ""
    drop_dir: str = ""
    workers: int = Field(default=4, ge=1, le=256)
    lease_s: float = Field(default=30.0, gt=0, le=3600)
    heartbeat_s: float = Field(default=5.0, gt=0, le=600)
    shutdown_grace_s: float = Field(default=20.0, ge=0, le=600)
    compute_slots: int = Field(default=0, ge=0, le=256)
    compute_nice: int = Field(default=10, ge=0, le=19)
    recent_jobs: int = Field(default=2000, ge=0, le=1_000_000)

    def shared_compute_slots(self, cpus: int) -> int:
        """Chains parsed and computed at once for HIGH, MEDIUM and LOW; CRITICAL never waits."""
        return self.compute_slots or max(1, cpus - 1)

    @model_validator(mode="after")
    def _heartbeat_inside_lease(self) -> Self:
        if self.heartbeat_s >= self.lease_s:
            raise ValueError(
                f"heartbeat_s ({self.heartbeat_s}) must be shorter than lease_s ({self.lease_s}), "
                "or leases expire under running jobs"
            )
        return self


class SlaSettings(Section):
    critical_s: float = Field(default=30.0, gt=0)
    high_s: float = Field(default=300.0, gt=0)
    medium_s: float = Field(default=1800.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.critical_s <= self.high_s <= self.medium_s:
            raise ValueError("deadlines must satisfy critical_s <= high_s <= medium_s")
        return self

    def seconds_for(self, level: PriorityLevel) -> float | None:
        """The SLA of a level in seconds; None for LOW (best effort)."""
        return {
            PriorityLevel.CRITICAL: self.critical_s,
            PriorityLevel.HIGH: self.high_s,
            PriorityLevel.MEDIUM: self.medium_s,
        }.get(level)


class GexSettings(Section):
    unit: GexUnit = GexUnit.USD_PER_1PCT
    sign_model: SignModel = SignModel.DEALER_LONG_CALLS_SHORT_PUTS
    gamma_source: GammaSource = GammaSource.MODEL
    expiry_filter: ExpiryFilter = ExpiryFilter.ALL
    profile_points: int = Field(default=500, ge=20, le=20_000)
    profile_low: float = Field(default=0.75, gt=0, lt=1)
    profile_high: float = Field(default=1.25, gt=1, le=5)
    risk_free_rate: float = Field(default=0.0, ge=-0.2, le=1.0)
    dividend_yield: float = Field(default=0.0, ge=-0.2, le=1.0)
    min_time_to_expiry_minutes: float = Field(default=15.0, ge=0, le=7 * 24 * 60)
    contract_multiplier: int = Field(default=100, ge=1, le=10_000)


class RetrySettings(Section):
    max_retries: int = Field(default=MAX_RETRIES, ge=0, le=MAX_RETRIES)
    base_delay_s: float = Field(default=1.0, gt=0, le=3600)
    max_delay_s: float = Field(default=60.0, gt=0, le=86_400)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.base_delay_s > self.max_delay_s:
            raise ValueError("base_delay_s must not exceed max_delay_s")
        return self


class SeedRule(Section):
    """A rule created on first start; the condition is compiled when the config loads."""

    name: str = Field(min_length=1, max_length=80)
    condition: ConditionText
    priority_score: float = Field(ge=0.0, le=1.0)
    description: str = Field(default="", max_length=500)


class DefaultScores(Section):
    historical: float = Field(default=0.2, ge=0, le=1)
    real_time: float = Field(default=0.6, ge=0, le=1)
    snapshot: float = Field(default=0.45, ge=0, le=1)

    def for_type(self, data_type: GEXDataType) -> float:
        return float(getattr(self, data_type.value))


class PrioritySettings(Section):
    critical_threshold: float = Field(default=0.85, ge=0, le=1)
    high_threshold: float = Field(default=0.65, ge=0, le=1)
    medium_threshold: float = Field(default=0.4, ge=0, le=1)
    combine: Literal["max", "mean", "weighted_max"] = "max"
    reliability_weight: float = Field(default=0.1, ge=0, le=1)
    default_scores: DefaultScores = DefaultScores()
    estimate_default_s: float = Field(default=5.0, gt=0, le=86_400)
    estimate_alpha: float = Field(default=0.2, gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.medium_threshold <= self.high_threshold <= self.critical_threshold:
            raise ValueError(
                "thresholds must satisfy medium_threshold <= high_threshold <= critical_threshold"
            )
        return self

    def level_for(self, score: float) -> PriorityLevel:
        if score >= self.critical_threshold:
            return PriorityLevel.CRITICAL
        if score >= self.high_threshold:
            return PriorityLevel.HIGH
        if score >= self.medium_threshold:
            return PriorityLevel.MEDIUM
        return PriorityLevel.LOW

    def thresholds(self) -> dict[str, float]:
        """The lowest score of each level with a threshold, for explanations."""
        return {
            PriorityLevel.CRITICAL.value: self.critical_threshold,
            PriorityLevel.HIGH.value: self.high_threshold,
            PriorityLevel.MEDIUM.value: self.medium_threshold,
        }


_SEED_RULES = (
    SeedRule(
        name="current-day index data",
        description="High priority for current day data on the big index complexes",
        condition="data_type == 'real_time' and market_symbol in ['NDX', 'SPX']",
        priority_score=0.9,
    ),
    SeedRule(
        name="high volume strikes",
        description="Medium priority for high volume strikes",
        condition="open_interest > 10000 and volume > 5000",
        priority_score=0.7,
    ),
)


class RulesSettings(Section):
    seed: tuple[SeedRule, ...] = _SEED_RULES
    max_active: int = Field(default=500, ge=1, le=10_000)


class LevelTimeouts(Section):
    critical: float = Field(default=10.0, gt=0, le=3600)
    high: float = Field(default=60.0, gt=0, le=3600)
    medium: float = Field(default=300.0, gt=0, le=3600)
    low: float = Field(default=600.0, gt=0, le=3600)

    def for_level(self, level: PriorityLevel) -> float:
        return float(getattr(self, level.value))


class SourcesSettings(Section):
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1", "cdn.cboe.com")
    timeouts: LevelTimeouts = LevelTimeouts()
    connect_timeout_s: float = Field(default=5.0, gt=0, le=600)
    max_body_bytes: int = Field(default=128 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(default=3, ge=0, le=20)
    max_concurrency: int = Field(default=2, ge=1, le=256)
    rate_per_s: float = Field(default=20.0, gt=0)
    burst: int = Field(default=40, ge=1)
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown_s: float = Field(default=30.0, gt=0, le=86_400)
    ema_alpha: float = Field(default=0.2, gt=0, le=1)


class SymbolsSettings(Section):
    extra: tuple[str, ...] = ()
    allow_any: bool = False


class StorageSettings(Section):
    duckdb_file: str = "gex.duckdb"
    memory_limit: str = Field(
        default="1GB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"
    )
    threads: int = Field(default=2, ge=1, le=256)
    group_commit_window_ms: float = Field(default=1.0, ge=0, le=1000)
    group_commit_max_changes: int = Field(default=5000, ge=1, le=1_000_000)
    # New requests are durable once in the intake journal; their DuckDB rows may wait this
    # long to share one bigger commit (reads wait for them, so none is ever missed).
    journal_window_ms: float = Field(default=20.0, ge=0, le=1000)
    retention_days: float = Field(default=30.0, gt=0)
    read_threads: int = Field(default=2, ge=1, le=64)


class SchedulerWeights(Section):
    critical: float = Field(default=8.0, gt=0)
    high: float = Field(default=4.0, gt=0)
    medium: float = Field(default=2.0, gt=0)
    low: float = Field(default=1.0, gt=0)

    def for_level(self, level: PriorityLevel) -> float:
        return float(getattr(self, level.value))


class SchedulerSettings(Section):
    weights: SchedulerWeights = SchedulerWeights()
    medium_floor: float = Field(default=0.05, ge=0, le=0.5)
    low_floor: float = Field(default=0.05, ge=0, le=0.5)
    floor_window_s: float = Field(default=60.0, gt=0, le=86_400)
    urgent_estimate_factor: float = Field(default=2.0, ge=0, le=100)
    urgent_sla_fraction: float = Field(default=0.25, ge=0, le=1)
    reserved_critical_slot: bool = True
    reserved_slot_max_estimate_s: float = Field(default=5.0, gt=0)
    critical_cap_overshoot: int = Field(default=1, ge=0, le=16)


class ApiSettings(Section):
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    allowed_uids: tuple[int, ...] = ()
    event_buffer: int = Field(default=2000, ge=10, le=1_000_000)
    max_batch: int = Field(default=10_000, ge=1, le=1_000_000)


class DropSettings(Section):
    settle_ms: int = Field(default=300, ge=0, le=60_000)
    max_file_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    force_polling: bool = False


class LoggingSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"
    file: str = ""


class ClusterSettings(Section):
    """Cluster mode: several daemons share one Redis, one scheduler and one Parquet lake.

    An empty `redis_url` is embedded mode (DuckDB only; Redis is neither needed nor loaded).
    """

    redis_url: str = Field(default="", pattern=r"^$|^(redis|rediss|unix)://")
    name: str = Field(default="main", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    node_id: str = Field(default="", pattern=r"^$|^[A-Za-z0-9_.:-]{1,80}$")
    lake_dir: str = ""
    lease_s: float = Field(default=15.0, gt=0, le=3600)
    leader_ttl_s: float = Field(default=5.0, ge=1, le=600)
    job_status_ttl_days: float = Field(default=7.0, gt=0, le=365)
    allow_volatile_redis: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.redis_url)

    @model_validator(mode="after")
    def _leases_outlive_the_leader(self) -> Self:
        if self.redis_url and self.lease_s <= self.leader_ttl_s:
            raise ValueError(
                f"lease_s ({self.lease_s}) must be longer than leader_ttl_s ({self.leader_ttl_s}): "
                "a job's lease has to outlive a leader change"
            )
        return self


class Settings(Section):
    daemon: DaemonSettings = DaemonSettings()
    sla: SlaSettings = SlaSettings()
    gex: GexSettings = GexSettings()
    retry: RetrySettings = RetrySettings()
    priority: PrioritySettings = PrioritySettings()
    rules: RulesSettings = RulesSettings()
    sources: SourcesSettings = SourcesSettings()
    symbols: SymbolsSettings = SymbolsSettings()
    storage: StorageSettings = StorageSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    api: ApiSettings = ApiSettings()
    drop: DropSettings = DropSettings()
    logging: LoggingSettings = LoggingSettings()
    cluster: ClusterSettings = ClusterSettings()
