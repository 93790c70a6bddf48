"""Feed parsers: one module per vendor format, registered in `gexdaemon.feeds.registry`.

A file is recognised by its content (Parquet magic, JSON shape, CSV header),
never by its extension alone, and decoded column-wise (msgspec / pyarrow) into
the canonical contract table's raw form (`gexdaemon.core.chain.RawChain`) or a
strike-level table (`gexdaemon.feeds.base.RawStrikes`).
"""
