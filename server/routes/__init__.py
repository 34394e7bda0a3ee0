"""One router per resource: `jobs` (the API) and `ops` (health and metrics)."""
