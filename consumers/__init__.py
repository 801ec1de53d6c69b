"""Delivery workers: dispatch jobs in, signed webhook POSTs out, one outcome per attempt."""
