"""``python -m datasets build --out DIR SOURCE...``"""

from datasets.cli import main

raise SystemExit(main())
