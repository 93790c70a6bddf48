"""Storage adapter: the DuckDB store (group commit), the Parquet lake and the archive.

The only package that imports duckdb or holds SQL: the rest of the daemon calls
its functions with domain values and gets domain values back (`jobs`, `rules`,
`estimates`, `sources`, `snapshots`, `sql` for a trader's read-only queries).
Only the daemon process opens the database for writing; the CLI and the TUI go
through the socket. `gexdaemon migrate` and `gexdaemon archive` open it directly
when no daemon holds the data directory.
"""
