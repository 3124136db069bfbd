"""IVR call router: Twilio webhooks, YAML menu trees, durable call state."""

__version__ = "0.1.0"
