"""The web process: Flask app factory (health today; pages, API and rq-dashboard as they land)."""
