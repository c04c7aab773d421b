"""Submit a page's form as a browser without JavaScript would: its action and its fields."""

from __future__ import annotations

from html.parser import HTMLParser


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._current: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = {"action": a.get("action", ""), "fields": {}, "html_attrs": a}
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and a.get("name"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self._current["fields"][a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def find_form(html: str, action_contains: str) -> dict:
    parser = _Forms()
    parser.feed(html)
    for form in parser.forms:
        if action_contains in form["action"]:
            return form
    raise AssertionError(f"no form posting to {action_contains!r}")


def submit(client, html: str, action_contains: str, **extra: str):
    """POST the form (its hidden and checked inputs, plus `extra`) the way a plain browser does."""
    form = find_form(html, action_contains)
    data = {k: v for k, v in form["fields"].items() if k != "csrfmiddlewaretoken"}
    data.update(extra)
    return client.post(form["action"].split("#", 1)[0], data, HTTP_REFERER="http://testserver/")
