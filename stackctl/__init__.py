"""stackctl: generate and manage a production Docker Compose stack for a Django ASGI app."""

__version__ = "0.1.0"
