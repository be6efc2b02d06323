"""``python -m esms_analytics`` is the ``esms-analytics`` command."""

import sys

from esms_analytics.cli import main

sys.exit(main())
