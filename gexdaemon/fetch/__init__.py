"""Fetching adapters: getting a feed's bytes from where a request says they are.

`http` downloads over HTTP(S) into a file with time, size, redirect and host
limits; failures are `FetchError`s carrying a `gexdaemon.core.retry.FailureCode`.
"""

from gexdaemon.fetch.http import FetchError, FetchResult, fetch_to_file, sniff

__all__ = ["FetchError", "FetchResult", "fetch_to_file", "sniff"]
