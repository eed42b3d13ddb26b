"""``python -m ovlinspect``."""

from ovlinspect.cli import main

raise SystemExit(main())
