"""``python -m aio_llm``: the same as the ``aio-llm`` command."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
