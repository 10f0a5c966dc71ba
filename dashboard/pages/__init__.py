"""Server-rendered operator pages. `auth_pages`: login and logout; `pages`: everything behind the login."""

from dashboard.pages.auth import auth_pages
from dashboard.pages.views import pages

__all__ = ["auth_pages", "pages"]
