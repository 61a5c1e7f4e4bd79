"""``python -m detector predict PATH... [--weights FILE] [--conf 0.25] [--iou 0.45]``"""

from detector.cli import main

raise SystemExit(main())
