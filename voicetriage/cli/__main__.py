"""``python -m voicetriage.cli``."""

import sys

from voicetriage.cli import main

sys.exit(main())
