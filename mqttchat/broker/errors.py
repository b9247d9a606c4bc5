"""Errors of the broker's configuration files (broker TOML, password file, ACL file): the configuration's error."""

from __future__ import annotations

from mqttchat.config.toml import ConfigError

__all__ = ["ConfigError"]
