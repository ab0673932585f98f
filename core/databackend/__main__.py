"""``python -m databackend``."""

import sys

from databackend.cli import main

sys.exit(main())
