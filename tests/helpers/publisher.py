"""A stand-in for :class:`streams.mqtt.MqttPublisher` that keeps what it was asked to publish."""


class Publisher:
    def __init__(self):
        self.sent: list[tuple[str, str]] = []

    def publish(self, topic: str, payload: str) -> None:
        self.sent.append((topic, payload))

    def close(self) -> None:
        pass
