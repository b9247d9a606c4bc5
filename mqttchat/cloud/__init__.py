"""Cloud brokers: AWS IoT Core, Azure IoT Hub and Event Grid, HiveMQ Cloud, EMQX Cloud, and JWT passwords.

Each service's way of connecting (port, ALPN, SNI, WebSocket path, user name, signed URL or token) is built here
from its parts, as :class:`mqttchat.client.ClientOptions` and a credential source the client asks at every
connection; :mod:`mqttchat.cloud.guards` holds what each service refuses (and says what it changed).
"""
