"""`python -m gptcourse COMMAND ...`: see gptcourse.cli."""

from .cli import main

raise SystemExit(main())
