"""Which underlying a chain file is for: its name first (`SPX_...csv`, `_SPX.json`), then its content.

One rule for the drop folder, `gexdaemon ingest` and `gexdaemon analyze`, so the
same file is filed under the same symbol whichever way it arrives.
"""

from __future__ import annotations

import re

from gexdaemon.core.chain import RawChain, chain_underlying
from gexdaemon.core.symbols import normalize_symbol, underlying_of_root
from gexdaemon.feeds import registry
from gexdaemon.feeds.base import FeedFile

SYMBOL_IN_NAME = re.compile(r"^[_^$]?([A-Za-z][A-Za-z0-9]{0,5})(?=[_\-. ]|$)")


def symbol_from_name(name: str, optionable: frozenset[str]) -> str | None:
    """`SPX_2026-11-26.csv`, `_SPX.json`, `spx_quotedata.csv` -> SPX (only if optionable)."""
    match = SYMBOL_IN_NAME.match(name)
    if not match:
        return None
    symbol = underlying_of_root(normalize_symbol(match.group(1)))
    return symbol if symbol in optionable else None


def symbol_of(feed: FeedFile, optionable: frozenset[str]) -> str | None:
    """The file's underlying: the one its name gives, else the one its content names
    (a CBOE `quotedata.csv` says it on its first line); None if neither does.
    Raises ChainError when the name says nothing and the content cannot be read."""
    found = symbol_from_name(feed.name, optionable)
    if found is not None:
        return found
    _, parsed = registry.parse(feed)
    # A chain's contracts say their underlying (as the snapshot will be filed); a
    # strike-level file can only say it in its metadata.
    named = chain_underlying(parsed) if isinstance(parsed, RawChain) else parsed.underlying
    return underlying_of_root(normalize_symbol(named)) if named else None
