"""Cluster mode: several daemons share one Redis, one scheduler and one Parquet lake.

Loaded only when `[cluster] redis_url` is set; embedded mode never imports it (nor redis).
See docs/cluster.md.
"""
