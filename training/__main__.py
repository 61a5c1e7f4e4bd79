"""``python -m training train|resume|eval|export|adapt ...``"""

from training.cli import main

raise SystemExit(main())
