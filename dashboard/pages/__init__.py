"""Server-rendered operator pages. `auth_pages`: login and logout; `pages`: everything behind the login.

Importing the page modules registers their routes on the one `pages` blueprint (dashboard/pages/views.py).
"""

from dashboard.pages import admin, archive, audit, configure, display, run_detail, runs, schedules, types  # noqa: F401
from dashboard.pages.auth import auth_pages
from dashboard.pages.views import pages

__all__ = ["auth_pages", "pages"]
