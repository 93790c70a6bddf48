"""Chain to snapshot: one chain file in, one validated GEX snapshot out (no I/O beyond the file).

`snapshot` is what the daemon runs on every job (in a worker thread or a compute
process); `analyze` runs the same on a local file for `gexdaemon analyze`.
"""
