"""``python -m autolr.cli [command ...]``: the same as the ``autolr`` script."""

from __future__ import annotations

from autolr.cli import main

if __name__ == "__main__":
    main()
