"""The demo and its local feed server: `gexdaemon demo` and `gexdaemon feed-server`.

`run` starts a daemon on a fresh data directory with a desk's request mix;
`feedserver` serves a folder of chain files over HTTP with faults on demand (also
used by the tests and the benchmarks).
"""
