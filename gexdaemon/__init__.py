"""gexdaemon: ingest option chains into gamma-exposure snapshots under SLA deadlines."""

__version__ = "0.1.0"
