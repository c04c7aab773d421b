"""comms.templating: whitelisted variables checked at save time; every value escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comms import templating
from comms.templating import Link, LinkList
from core.exceptions import ApplicationError

NOW = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script> **[pay](javascript:alert(1))** <img src=x onerror=alert(2)>"


def render(body: str, subject: str = "S", **values):
    context = dict.fromkeys(templating.VARIABLES, "")
    context.update(values)
    return templating.render(subject=subject, body=body, context=context)


# --------------------------------------------------------------------------------------------
# Validation


def test_validate__known_variables__returned_once_in_order():
    used = templating.validate_template(
        subject="{{ release.name }}", body="{{release.name}} {{ phase.name }}\n{{ doc_links }}"
    )
    assert used == ["release.name", "phase.name", "doc_links"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ("Hi {{ relase.name }}", "body", ["Unknown variable", "release.name", "line 1"]),
        ("a\nb\n{{ secret_key }}", "body", ["Unknown variable", "line 3"]),
        ("{{ release.name|upper }}", "body", ["Filters are not supported"]),
        ("{% if x %}y{% endif %}", "body", ["template tags"]),
        ("{{ }}", "body", ["empty"]),
        ("{{ release.name", "body", ["without its pair"]),
        ("{{ release.__class__ }}", "body", ["Unknown variable"]),
        ("", "body", ["Write the message"]),
    ],
)
def test_validate__bad_body__error_on_the_field(body, field, words):
    with pytest.raises(ApplicationError) as err:
        templating.validate_template(subject="Subject", body=body)
    assert err.value.field == field
    for word in words:
        assert word in err.value.message


def test_validate__bad_subject__error_on_subject():
    with pytest.raises(ApplicationError) as err:
        templating.validate_template(subject="{{ nope }}", body="ok")
    assert err.value.field == "subject"
    with pytest.raises(ApplicationError) as long:
        templating.validate_template(subject="x" * 301, body="ok")
    assert long.value.field == "subject"


def test_builtin_templates__all_valid():
    for subject, body in templating.BUILTIN_TEMPLATES.values():
        templating.validate_template(subject=subject, body=body)


# --------------------------------------------------------------------------------------------
# Escaping


def test_render__hostile_release_name__literal_everywhere():
    out = render("**New:** {{ release.name }}", subject="{{ release.name }}",
                 **{"release.name": HOSTILE})  # fmt: skip

    assert "<script" not in out.html and "<img" not in out.html
    assert 'href="javascript' not in out.html
    assert "&lt;script&gt;" in out.html
    assert "<strong>New:</strong>" in out.html  # the template's own Markdown still works
    assert out.text == f"**New:** {HOSTILE}"
    assert "&lt;script&gt;" in out.slack and "<script" not in out.slack
    assert out.subject == HOSTILE  # subjects are plain text; channels escape them


def test_render__markdown_in_value__not_interpreted():
    out = render(
        "{{ release.summary }}", **{"release.summary": "# Big\n\n[link](https://evil.example)"}
    )
    assert "<h1>" not in out.html and "<a " not in out.html
    assert "[link](https://evil.example)" in out.html


def test_render__newlines_in_subject_value__one_line():
    out = render("x", subject="Re {{ release.name }}", **{"release.name": "A\r\nBcc: evil@x.io"})
    assert out.subject == "Re A Bcc: evil@x.io"


def test_render__nul_in_template__cannot_forge_placeholders():
    out = render("\x000\x00 {{ release.name }}", **{"release.name": "<b>x</b>"})
    assert out.text == "0 <b>x</b>"


def test_render__doc_links__titles_escaped_unsafe_urls_dropped():
    links = LinkList(
        (
            Link("Guide <b>", "https://docs.example.com/guide"),
            Link("Evil", "javascript:alert(1)"),
            Link("Spaces", "https://docs.example.com/a b>c"),
        )
    )
    out = render("{{ doc_links }}", doc_links=links)
    assert out.html.count("<li>") == 2
    assert 'href="https://docs.example.com/guide"' in out.html
    assert "Guide &lt;b&gt;" in out.html
    assert "javascript" not in out.html and "Evil" not in out.text
    assert "https://docs.example.com/a%20b%3Ec" in out.text
    assert "• <https://docs.example.com/guide|Guide &lt;b&gt;>" in out.slack


def test_render__no_doc_links__says_so():
    out = render("{{ doc_links }}", doc_links=LinkList())
    assert out.text == "No documentation links."


def test_render__slack__template_markdown_converted():
    out = render("# Title\n**bold** and [docs](https://d.example) for {{ exposure }}",
                 exposure="25% of users & more")  # fmt: skip
    assert out.slack == "*Title*\n*bold* and <https://d.example|docs> for 25% of users &amp; more"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_render__any_value__never_markup_in_html(value):
    out = render("Start {{ release.name }} end", **{"release.name": value})
    assert "<script" not in out.html.lower()
    assert "<a " not in out.html and "<img" not in out.html
    assert out.text == f"Start {value} end"


# --------------------------------------------------------------------------------------------
# Context and formatting


def test_format_time__audience_zone():
    assert templating.format_time(NOW, "Europe/Berlin") == "Mon 4 Mar 2030, 10:00 CET"
    assert templating.format_time(NOW, "America/New_York") == "Mon 4 Mar 2030, 04:00 EST"
    assert templating.format_time(NOW, "Not/AZone") == "Mon 4 Mar 2030, 09:00 UTC"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=30), "now"),
        (timedelta(minutes=25), "in 25 minutes"),
        (timedelta(hours=3), "in 3 hours"),
        (timedelta(days=3), "in 3 days"),
    ],
)
def test_humanize_delta(delta, text):
    assert templating.humanize_delta(delta) == text


@pytest.mark.parametrize(
    ("percentage", "segment", "text"),
    [(25, None, "25% of users"), (100, None, "everyone (100%)"), (None, "Beta", "everyone in Beta"),
     (50, "Beta", "50% of Beta"), (0, None, "nobody")],
)  # fmt: skip
def test_exposure_text(percentage, segment, text):
    assert templating.exposure_text(percentage, segment) == text


def test_sample_context__renders_every_builtin():
    context = templating.sample_context(now=NOW)
    for subject, body in templating.BUILTIN_TEMPLATES.values():
        out = templating.render(subject=subject, body=body, context=context)
        assert "{{" not in out.text and out.subject


# --------------------------------------------------------------------------------------------
# The template author's own Markdown: safe in every channel


@pytest.mark.parametrize(
    "body",
    [
        "Read [the guide](javascript:alert(document.cookie)) now",
        "Read [the guide]( JAVASCRIPT:alert(1) 'title') now",
        "Read [the guide][g] now\n\n[g]: javascript:alert(1)",
        'Read <img src=x onerror="alert(1)">the guide now',
        "Read <script>alert(1)</script>the guide now",
        "Read <a href='javascript:alert(1)'>the guide</a> now",
        "Read <javascript:alert(1)>the guide now",
        "Read ![the guide](https://tracker.example/pixel.gif) now",
        "Read [the guide](data:text/html;base64,PHNjcmlwdD4=) now",
    ],
)
def test_render__hostile_template_markdown__no_script_link_or_raw_html_in_any_channel(body):
    from comms.channels import Message, preview

    out = render(body)
    for channel_text in (out.text, out.markdown, out.html, out.slack):
        lowered = channel_text.lower()
        assert "](javascript" not in lowered and "](data:" not in lowered
        assert "<img" not in lowered and "<script" not in lowered and "<a " not in lowered
        assert "<javascript" not in lowered
        assert "tracker.example" not in lowered
    assert "<a" not in out.html  # no link at all: the unsafe target was the only one
    assert "onerror" not in out.text and "<" not in out.text  # plain text: tags dropped
    assert "the guide" in out.text
    for kind in ("teams", "webhook", "slack"):
        message = Message(
            delivery_id="d", channel_kind=kind, url="", signing_secret="", recipient="",
            event="custom", subject="s", text=out.text, markdown=out.markdown, html=out.html,
            slack=out.slack, payload={},
        )  # fmt: skip
        sent = str(preview(message)).lower()
        assert "<img" not in sent and "](javascript" not in sent and "<script" not in sent


def test_render__safe_template_markdown__links_and_autolinks_kept():
    out = render(
        "See [docs](https://docs.example/a) or <https://status.example> or [m](mailto:x@y.z)"
    )
    assert '<a href="https://docs.example/a"' in out.html
    assert '<a href="https://status.example"' in out.html
    assert "[docs](https://docs.example/a)" in out.markdown
    assert "<https://status.example>" in out.text


def test_render__raw_html_in_template__text_in_markdown_and_html_dropped_in_plain_text():
    out = render("**Heads-up:** <b>checkout</b> <img src=x onerror=alert(1)> pauses.")
    assert "&lt;b&gt;checkout&lt;/b&gt;" in out.html
    assert "<b>" not in out.markdown and "&lt;b>checkout&lt;/b>" in out.markdown
    assert "<strong>Heads-up:</strong>" in out.html
    assert out.text == "**Heads-up:** checkout  pauses."
