"""The onboard end of the event bus: topics, payloads, an on-disk outbox and the MQTT publisher.

Kept free of imports here so that `vision.bus.topics` (which the ground station shares) does
not pull in paho-mqtt or sqlite.
"""
