"""``python -m service ...``"""

from service.cli.main import main

raise SystemExit(main())
