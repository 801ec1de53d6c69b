"""Delivery history: the ClickHouse store, the outcomes sink, queries and the management API."""
