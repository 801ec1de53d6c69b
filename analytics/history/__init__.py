"""The read model: the ClickHouse store, its schema, the sinks that fill it, the queries."""
