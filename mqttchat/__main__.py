"""``python -m mqttchat``."""

from __future__ import annotations

import sys

from mqttchat.cli import main

sys.exit(main())
