"""Cross-cutting plumbing: settings, database and Redis connections, crypto, CLI."""
