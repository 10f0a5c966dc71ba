"""Server-rendered operator pages. `auth_pages`: login and logout; `pages`: everything behind the login.

Importing the page modules registers their routes on the one `pages` blueprint (dashboard/pages/views.py).
"""

from dashboard.pages import (  # noqa: F401  (register the routes)
    admin,
    archive,
    audit,
    configure,
    display,
    identities,
    run_detail,
    runs,
    schedules,
    targets,
    types,
)
from dashboard.pages.auth import auth_pages
from dashboard.pages.views import pages

__all__ = ["auth_pages", "pages"]
