"""The command-line tools: ``mqttchat pub``, ``mqttchat sub`` and friends."""
