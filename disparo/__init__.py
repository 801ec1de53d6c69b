"""disparo: webhook dispatch for order and logistics events."""

__version__ = "0.1.0"
