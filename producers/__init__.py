"""Publishing order events: `publish()`, the `disparo produce` CLI and the HTTP ingest."""

from producers.publish import Publisher, publish

__all__ = ["Publisher", "publish"]
