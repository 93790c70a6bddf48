"""Optionable underlyings: a bundled list of common ones, extended from config.

`market_symbol` must name an underlying with listed options. The bundled list
covers the index complexes, the liquid ETFs and the large single stocks a desk
watches; `[symbols] extra` in the config adds more, and `allow_any = true`
turns the check off (format rules still apply).
"""

from __future__ import annotations

import re

SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9.\-/]{0,9}$")

# Vendor spellings of index tickers: CBOE files use "_SPX" and "^SPX", some brokers "$SPX".
_INDEX_PREFIXES = ("^", "_", "$")

INDEX_UNDERLYINGS = frozenset(
    ["SPX", "XSP", "NDX", "XND", "RUT", "MRUT", "VIX", "DJX", "OEX", "XEO", "NANOS", "SPESG"]
)

ETF_UNDERLYINGS = frozenset(
    ["SPY", "QQQ", "IWM", "DIA", "TLT", "IEF", "SHY", "HYG", "LQD", "JNK", "EMB", "AGG", "BND", "TIP", "GLD", "SLV", "GDX", "GDXJ", "USO", "UNG", "UCO", "DBA", "DBC", "PDBC", "URA", "COPX", "XLF", "XLE", "XLK", "XLV", "XLI", "XLY", "XLP", "XLU", "XLB", "XLRE", "XLC", "XOP", "XME", "XRT", "XHB", "XBI", "IBB", "ITB", "KRE", "KBE", "SMH", "SOXX", "SOXL", "SOXS", "TQQQ", "SQQQ", "SPXL", "SPXS", "SPXU", "UPRO", "TNA", "TZA", "LABU", "LABD", "FAS", "FAZ", "TECL", "TECS", "UVXY", "VXX", "SVXY", "VIXY", "UVIX", "SVIX", "EEM", "EFA", "EWZ", "EWJ", "EWW", "EWY", "EWT", "EWG", "EWU", "FXI", "KWEB", "MCHI", "ASHR", "INDA", "VWO", "VEA", "IEMG", "ARKK", "ARKG", "ARKW", "ARKF", "IYR", "VNQ", "VOO", "VTI", "IVV", "RSP", "MDY", "IJR", "IJH", "SCHD", "JEPI", "JEPQ", "BITO", "IBIT", "FBTC", "ETHA", "GBTC", "MSOS", "TAN", "ICLN", "LIT", "JETS", "BOTZ", "BDRY"]
)

STOCK_UNDERLYINGS = frozenset(
    ["AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "GOOG", "META", "TSLA", "AVGO", "BRK.B", "BRK/B", "AMD", "NFLX", "ORCL", "CRM", "ADBE", "INTC", "CSCO", "QCOM", "TXN", "IBM", "MU", "AMAT", "LRCX", "KLAC", "ASML", "TSM", "ARM", "SMCI", "MRVL", "ON", "NXPI", "ADI", "MCHP", "JPM", "BAC", "WFC", "C", "GS", "MS", "SCHW", "BLK", "AXP", "V", "MA", "PYPL", "SQ", "XYZ", "COIN", "HOOD", "SOFI", "AFRM", "UPST", "UNH", "JNJ", "PFE", "MRK", "ABBV", "LLY", "BMY", "AMGN", "GILD", "MRNA", "BNTX", "CVS", "CI", "HUM", "REGN", "VRTX", "BIIB", "ISRG", "XOM", "CVX", "COP", "OXY", "SLB", "HAL", "DVN", "EOG", "MPC", "VLO", "PSX", "APA", "WMT", "COST", "TGT", "HD", "LOW", "NKE", "SBUX", "MCD", "KO", "PEP", "PG", "CL", "MDLZ", "DIS", "CMCSA", "T", "VZ", "TMUS", "CHTR", "BA", "CAT", "DE", "GE", "HON", "LMT", "RTX", "NOC", "GD", "MMM", "UPS", "FDX", "UNP", "CSX", "F", "GM", "RIVN", "LCID", "NIO", "XPEV", "LI", "UBER", "LYFT", "DASH", "ABNB", "BKNG", "EXPE", "MAR", "PLTR", "SNOW", "CRWD", "PANW", "ZS", "NET", "DDOG", "MDB", "OKTA", "SHOP", "SPOT", "ROKU", "ZM", "DOCU", "TWLO", "U", "RBLX", "SNAP", "PINS", "BABA", "JD", "PDD", "BIDU", "TCEHY", "SE", "MELI", "NU", "MSTR", "MARA", "RIOT", "CLSK", "AI", "GME", "AMC", "BB", "CCL", "RCL", "NCLH", "AAL", "DAL", "UAL", "LUV"]
)

BUNDLED_OPTIONABLE = INDEX_UNDERLYINGS | ETF_UNDERLYINGS | STOCK_UNDERLYINGS

# Option roots that are not themselves underlyings but name one (OCC root -> underlying).
ROOT_TO_UNDERLYING = {
    "SPXW": "SPX",
    "SPXPM": "SPX",
    "NDXP": "NDX",
    "RUTW": "RUT",
    "VIXW": "VIX",
    "XSPW": "XSP",
    "MRUTW": "MRUT",
}


def normalize_symbol(raw: str) -> str:
    """Upper-case, trim, and drop vendor index prefixes (`_SPX`, `^SPX`, `$SPX` -> `SPX`)."""
    text = raw.strip().upper()
    while text[:1] in _INDEX_PREFIXES and len(text) > 1:
        text = text[1:]
    return text


def underlying_of_root(root: str) -> str:
    return ROOT_TO_UNDERLYING.get(root, root)
