"""The management API (v1) and page."""
