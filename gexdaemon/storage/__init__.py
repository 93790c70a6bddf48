"""Storage adapter: the DuckDB store (group commit), the Parquet lake and the archive.

Only the daemon process opens the database for writing; the CLI and the TUI go
through the socket. `gexdaemon migrate` and `gexdaemon archive` open it directly
when no daemon holds the data directory.
"""
