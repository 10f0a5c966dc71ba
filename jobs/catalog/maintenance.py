"""Built-in maintenance job types (seed 000, 002): idle sessions, undelivered mail, old logs, indexes."""
