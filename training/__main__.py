"""``python -m training train|resume|eval|export|privacy-model ...``"""

from training.cli import main

raise SystemExit(main())
