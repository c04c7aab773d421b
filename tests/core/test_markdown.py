from core.markdown import render_markdown


def test_render_markdown__headings_lists_tables__html():
    html = render_markdown("## New\n\n- **one**\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<h2>New</h2>" in html
    assert "<li><strong>one</strong></li>" in html
    assert "<td>1</td>" in html


def test_render_markdown__raw_html_and_script__escaped_not_run():
    html = render_markdown('<script>alert(1)</script>\n\n<img src=x onerror="alert(2)">')
    assert "<script" not in html
    assert "<img" not in html


def test_render_markdown__javascript_link__not_a_link_and_safe_links_get_rel():
    html = render_markdown("[bad](javascript:alert(1)) [good](https://example.com)")
    assert 'href="javascript' not in html
    assert '<a href="https://example.com" rel="noopener noreferrer nofollow">good</a>' in html


def test_render_markdown__empty__empty_string():
    assert render_markdown("") == ""
    assert render_markdown(None) == ""
