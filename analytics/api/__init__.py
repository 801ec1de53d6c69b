"""The HTTP edge: thin routers, the page, and domain errors mapped to statuses."""
