"""``python -m autolr.server [--host ...]``: the same as ``autolr serve``."""

from __future__ import annotations

from autolr.cli import serve_main

if __name__ == "__main__":
    serve_main()
