"""The pure core: domain models, rules, scheduling policy and GEX math.

Nothing in this package performs I/O or imports aiohttp, duckdb, watchfiles or
textual (an import-linter contract enforces it). Functions take plain values and
an injected clock and return plain values.
"""
