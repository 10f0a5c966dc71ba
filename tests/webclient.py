"""Helpers for tests of the web process: accounts, logged-in clients, CSRF tokens."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from core.app import Jobyard
from dashboard.auth.tokens import create_token
from dashboard.auth.users import add_user, grant

PASSWORD = "correct horse battery"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class UserFactory:
    def __init__(self, app: Jobyard) -> None:
        self.app = app

    def add(
        self, name: str, role: str, *, domain: str | None = None, grants: Iterable[str] = (), email: str | None = None
    ) -> str:
        add_user(self.app.engine, name, PASSWORD, role, by="test", domain=domain, email=email)
        if grants:
            grant(self.app.engine, name, list(grants), by="test")
        return name

    def token(self, name: str, role: str, *, domain: str | None = None, user: str | None = None) -> str:
        return create_token(self.app.engine, name, role, by="test", domain=domain, username=user)


def csrf_of(client: FlaskClient) -> str:
    """A CSRF token of the client's session, read from a page as a browser would."""
    page = client.get("/login").get_data(as_text=True)
    match = CSRF_META.search(page)
    assert match, "no CSRF token on the login page"
    return match.group(1)


def login(web: Flask, username: str, password: str = PASSWORD) -> FlaskClient:
    client = web.test_client()
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": csrf_of(client)})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def browser_login(tab: Any, username: str, password: str = PASSWORD) -> None:
    """Logs a Playwright page in through the login form, as a person would."""
    tab.goto("/login")
    tab.fill("input[name=username]", username)
    tab.fill("input[name=password]", password)
    tab.click("button[type=submit]")
    tab.wait_for_url(lambda url: "/login" not in url)


def post(client: FlaskClient, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A form POST carrying the session's CSRF token, as the pages send it."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_of(client)}, **kwargs)
