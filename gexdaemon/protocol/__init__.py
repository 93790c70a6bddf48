"""The socket API's contract: every wire shape and every route, defined once.

`shapes` holds the msgspec Structs the daemon encodes and the client decodes;
`routes` declares each operation (method, path, body, query, answers). The
server, the client, the CLI, the dashboard and the OpenAPI document are all
built from these two modules. Neither imports anything heavier than msgspec
and the core vocabulary, so a CLI verb can speak the protocol without loading
the daemon.
"""
