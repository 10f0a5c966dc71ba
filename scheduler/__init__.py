"""The scheduler process: keeps Redis in step with SQL (and, with schedules, fires them)."""
