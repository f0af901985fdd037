"""The event bus between onboard units, ground stations and headquarters: MQTT over TLS.

``identity`` names who may connect and what each may read and write, ``pki`` makes the
certificates that prove it, ``broker`` runs a mosquitto that enforces it. The topic and
identity scheme is documented in ``docs/events.md``.
"""
