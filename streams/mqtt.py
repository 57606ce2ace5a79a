"""Events to an MQTT broker (paho-mqtt), so a fleet of devices can report to one place.

The client runs paho's network loop in its own thread, connects asynchronously and reconnects by itself
with a capped backoff, so a broker that is down or restarting never blocks the pipeline. While it is
down, QoS 1/2 messages wait, at most ``max_queued`` of them (paho refuses the newest beyond that), which
bounds memory on a device that loses its network for days; QoS 0 messages are dropped and counted.
"""

from __future__ import annotations

import logging

log = logging.getLogger("edge.mqtt")


class MqttPublisher:
    """Publishes JSON documents, given encoded; ``dropped`` counts those the client refused (queue full)."""

    def __init__(self, host: str, port: int = 1883, *, client_id: str = "", username: str | None = None,
                 password: str | None = None, qos: int = 0, keepalive: int = 30, max_queued: int = 1000):
        import paho.mqtt.client as mqtt  # optional at import time: only the daemon with mqtt configured needs it

        self.qos = qos
        self.dropped = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_queued_messages_set(max_queued)
        self.client.on_connect = lambda *a: log.info("mqtt connected", extra={"broker": f"{host}:{port}"})
        self.client.connect_async(host, port, keepalive)
        self.client.loop_start()
        # Without a connection paho queues QoS 1/2 messages for later and refuses QoS 0 ones.
        self._kept = {mqtt.MQTT_ERR_SUCCESS} | ({mqtt.MQTT_ERR_NO_CONN} if qos > 0 else set())

    def publish(self, topic: str, payload: str) -> None:
        info = self.client.publish(topic, payload, qos=self.qos)
        if info.rc not in self._kept:
            self.dropped += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
