"""Built-in certificate job types (seed 000): import, expiry notifications, domain validation expiry."""
