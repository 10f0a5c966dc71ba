"""rq-dashboard's templates, served escaped.

rq-dashboard renders job fields in the browser with Underscore templates, and most of them use `<%= %>`,
which inserts text as HTML: a run whose error message holds `<img src=x onerror=…>` ran script in an
admin's browser. This loader is the only source of `rq_dashboard/…` templates (the blueprint's own loader
is switched off, so nothing falls through to the unescaped originals). It reads each original from the
installed package and rewrites it:

- every `<%= x %>` becomes `<%- x %>` (Underscore's HTML-escaping interpolation), and the few places that
  escaped by hand through jQuery (`$('<div/>').text(x).html()`) lose that, so text is escaped once;
- the inline `<script>` that carries rq-dashboard's own code gets the response's CSP nonce, so that the
  Content-Security-Policy can refuse every other inline script;
- every page says that Jobyard's runs pages, not this view of Redis, are the record.

Rewriting the installed templates, rather than keeping edited copies, means a new rq-dashboard release is
escaped the same way; `tests/integration/test_rq_guest.py` checks each template once rewritten.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import rq_dashboard
from jinja2 import BaseLoader, Environment, TemplateNotFound

PREFIX = "rq_dashboard/"
TEMPLATES = Path(rq_dashboard.__file__).parent / "templates"

_RAW_INTERPOLATION = re.compile(r"<%=")
_HAND_ESCAPED = re.compile(r"\$\('<div/>'\)\.text\((?P<expr>[^()]*)\)\.html\(\)")
# Executable inline scripts: `<script>` or `<script type="text/javascript">` without src. Underscore's
# `type="text/template"` blocks are inert data and need no nonce.
_INLINE_SCRIPT = re.compile(r'<script(?P<attrs>(?:\s+type="text/javascript")?)\s*>')
NONCE_EXPRESSION = "{{ rq_csp_nonce() }}"
_CONTENT_BLOCK = "{% block content %}"
# Jobyard's record is in SQL; what rq-dashboard shows is the transport's state, which forgets.
NOTICE = (
    '<p class="alert alert-info" id="jobyard-notice">RQ\'s view of Redis, for admins: what is queued and running '
    "right now. <a href=\"{{ url_for('pages.runs') }}\">Jobyard's runs</a> are the record of every run, attempt "
    "and error.</p>"
)


def escaped(source: str, template_name: str = "") -> str:
    source = _HAND_ESCAPED.sub(lambda m: m.group("expr"), source)
    source = _RAW_INTERPOLATION.sub("<%-", source)
    if template_name == PREFIX + "base.html":
        source = source.replace(_CONTENT_BLOCK, NOTICE + _CONTENT_BLOCK, 1)
    return _INLINE_SCRIPT.sub(lambda m: f'<script{m.group("attrs")} nonce="{NONCE_EXPRESSION}">', source)


class EscapedRqTemplates(BaseLoader):
    """Serves `rq_dashboard/<name>` from the installed package, rewritten by `escaped`."""

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        if not template.startswith(PREFIX):
            raise TemplateNotFound(template)
        path = (TEMPLATES / template).resolve()
        if not path.is_relative_to(TEMPLATES.resolve()) or not path.is_file():
            raise TemplateNotFound(template)
        mtime = path.stat().st_mtime
        return escaped(path.read_text(encoding="utf-8"), template), str(path), lambda: path.stat().st_mtime == mtime

    def list_templates(self) -> list[str]:
        return sorted(PREFIX + str(p.relative_to(TEMPLATES / PREFIX)) for p in (TEMPLATES / PREFIX).rglob("*.*"))
