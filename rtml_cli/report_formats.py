"""Rendering a built report in each output format (:data:`FORMATS`).

Terminal, Markdown and HTML draw the sections of :func:`rtml_cli.report_layout.layout` with the
drawing code of :mod:`rtml_cli.report_render`, so a new section shows in all three without a
change here. JSON is the report dict itself (:mod:`rtml_cli.report_schema`); JUnit holds the
checks only.
"""

from __future__ import annotations

import json

from rtml_cli import report_render
from rtml_cli.errors import UsageError
from rtml_cli.escape import for_json, for_xml
from rtml_cli.report_build import json_safe
from rtml_cli.report_layout import layout
from rtml_cli.report_schema import Report

FORMATS = ("terminal", "markdown", "html", "json", "junit")

#: The format of ``rtml report -o FILE`` when ``--format`` is not given.
FORMAT_OF_SUFFIX = {
    ".html": "html",
    ".htm": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".json": "json",
    ".xml": "junit",
}

#: Sections folded in ``<details>`` in Markdown: long, and secondary to the verdict.
MARKDOWN_FOLDED = ("Run", "Compute", "Capacity")


def _title(rep: Report) -> str:
    return f"rtml report — {rep['run']}"


def render_terminal(rep: Report, *, color: bool = False, width: int | None = None) -> str:
    """Rich tables and sparklines (:func:`rtml_cli.report_render.render_terminal`)."""
    return report_render.render_terminal(_title(rep), layout(rep), color=color, width=width)


def render_markdown(rep: Report) -> str:
    """Markdown for a pull-request comment or a GitHub job summary; long sections fold."""
    return report_render.render_markdown(_title(rep), layout(rep), folded=MARKDOWN_FOLDED)


def render_html(rep: Report) -> str:
    """One self-contained, well-formed HTML file (inline CSS and SVG; no external URL)."""
    return report_render.render_html(_title(rep), layout(rep))


def render_json(rep: Report) -> str:
    """The report dict as stable JSON (sorted keys, schema in :mod:`rtml_cli.report_schema`)."""
    text = json.dumps(json_safe(rep), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return for_json(text) + "\n"


def render_junit(rep: Report) -> str:
    """JUnit XML: one test case per check; failed checks carry <failure>, missing values <error>.

    Written as text with :func:`for_xml` on every value: ElementTree escapes ``<`` and ``&`` but
    lets control characters through, which makes the file ill-formed for every JUnit reader.
    """
    checks = rep["checks"]
    failed = sum(c["status"] == "fail" for c in checks)
    errors = sum(c["status"] == "error" for c in checks)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name="rtml" tests="{len(checks)}">',
        f'  <testsuite name="{for_xml("rtml report " + str(rep["run"]))}" tests="{len(checks)}" '
        f'failures="{failed}" errors="{errors}" skipped="0">',
    ]
    for c in checks:
        check, detail = str(c["check"]), str(c["detail"])
        out.append(f'    <testcase classname="rtml.checks" name="{for_xml(check)}">')
        if c["status"] == "fail":
            out.append(
                f'      <failure message="{for_xml("check failed: " + detail)}" type="CheckFailed">'
                f"{for_xml(check)}\n{for_xml(detail)}</failure>"
            )
        elif c["status"] == "error":
            out.append(
                f'      <error message="{for_xml(detail)}" type="MetricError">{for_xml(detail)}</error>'
            )
        out.append(f"      <system-out>{for_xml(detail)}</system-out>")
        out.append("    </testcase>")
    out += ["  </testsuite>", "</testsuites>"]
    return "\n".join(out) + "\n"


def check_format(fmt: str) -> None:
    """Refuse a format that is not one of :data:`FORMATS`."""
    if fmt not in FORMATS:
        raise UsageError(f"Unknown report format {fmt!r}. Choose one of: {', '.join(FORMATS)}.")


def render(rep: Report, fmt: str, *, color: bool = False, width: int | None = None) -> str:
    """Render a built report in one of :data:`FORMATS`."""
    check_format(fmt)
    if fmt == "terminal":
        return render_terminal(rep, color=color, width=width)
    if fmt == "markdown":
        return render_markdown(rep)
    if fmt == "html":
        return render_html(rep)
    if fmt == "json":
        return render_json(rep)
    return render_junit(rep)
