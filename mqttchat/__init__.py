"""mqttchat: a terminal MQTT chat and explorer with its own client and embedded broker."""

from __future__ import annotations

__version__ = "0.1.0"
