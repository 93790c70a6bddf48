"""The desk's acceptance suite: the real daemon, the CLI's human output, the demo and the docs.

Each test stands for one item of the "desk truth" issue and fails on the build
before it; the TUI's items live with the dashboard's tests (tests/tui).
"""
