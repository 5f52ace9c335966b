"""Allow ``python -m rtml_cli``."""

from __future__ import annotations

from rtml_cli.cli import main

if __name__ == "__main__":
    main()
