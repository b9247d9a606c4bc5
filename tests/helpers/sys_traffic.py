"""$SYS traffic of brokers that cannot run here, synthesised from their documentation: EMQX's "System Topic"
page (``$SYS/brokers`` and ``$SYS/brokers/${node}/{version,uptime,stats/…,metrics/…,clients/…}``, EMQX 5 naming its
statistics with dots, EMQX 4 with slashes) and VerneMQ's vmq_systree (``$SYS/<node>/`` then the metric's name split
at each ``_``, every 20 s, not retained); and mosquitto 2.0's, as it publishes it.
"""

from __future__ import annotations

#: mosquitto 2.0's $SYS (retained, at once on subscribing).
MOSQUITTO = [
    ("$SYS/broker/version", b"mosquitto version 2.0.18"),
    ("$SYS/broker/uptime", b"1234 seconds"),
    ("$SYS/broker/clients/connected", b"12"),
    ("$SYS/broker/retained messages/count", b"4021"),
    ("$SYS/broker/subscriptions/count", b"37"),
    ("$SYS/broker/load/messages/received/1min", b"55.12"),
]
#: A two-node EMQX 5 cluster (stats names with dots, as EMQX 5 publishes them) and its client events.
EMQX = [
    ("$SYS/brokers", b"emqx@10.0.0.1,emqx@10.0.0.2"),
    ("$SYS/brokers/emqx@10.0.0.1/version", b"5.3.0"),
    ("$SYS/brokers/emqx@10.0.0.1/uptime", b"3600000"),
    ("$SYS/brokers/emqx@10.0.0.1/stats/connections.count", b"1500"),
    ("$SYS/brokers/emqx@10.0.0.1/stats/retained.count", b"2300000"),
    ("$SYS/brokers/emqx@10.0.0.1/stats/topics.count", b"2400000"),
    ("$SYS/brokers/emqx@10.0.0.1/metrics/messages.received", b"918273"),
    ("$SYS/brokers/emqx@10.0.0.2/version", b"5.3.0"),
    ("$SYS/brokers/emqx@10.0.0.2/stats/connections.count", b"1700"),
    ("$SYS/brokers/emqx@10.0.0.2/stats/retained.count", b"2300000"),
    ("$SYS/brokers/emqx@10.0.0.2/stats/topics.count", b"2400000"),
    ("$SYS/brokers/emqx@10.0.0.2/clients/sensor-17/connected", b'{"clientid": "sensor-17"}'),
]
#: EMQX 4 spells its statistics with slashes.
EMQX4 = [
    ("$SYS/brokers/emqx@127.0.0.1/stats/retained/count", b"120"),
    ("$SYS/brokers/emqx@127.0.0.1/stats/connections/count", b"3"),
]
#: Two VerneMQ nodes: vmq_systree's metrics, one topic level per "_".
VERNEMQ = [
    ("$SYS/VerneMQ@10.0.0.1/retain/messages", b"88000"),
    ("$SYS/VerneMQ@10.0.0.1/router/subscriptions", b"5000"),
    ("$SYS/VerneMQ@10.0.0.1/socket/open", b"40"),
    ("$SYS/VerneMQ@10.0.0.1/mqtt/publish/received", b"1000"),
    ("$SYS/VerneMQ@10.0.0.2/retain/messages", b"88000"),
    ("$SYS/VerneMQ@10.0.0.2/socket/open", b"60"),
    ("$SYS/VerneMQ@10.0.0.2/system/wallclock", b"7200000"),
]
