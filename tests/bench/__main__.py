"""``python -m tests.bench``: the engine benchmark (``tests.bench.cli``)."""

from .cli import main

raise SystemExit(main())
