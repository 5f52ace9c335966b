"""Escaping user-derived text for the medium it is printed to: one function per medium.

Column names, strategy names, paths and values come from the user's files and flags. Printed
raw they can clear a terminal (ANSI escapes), crash Rich (``[/bold]`` is markup), inject HTML
into a report or make a JUnit file ill-formed. Every place that prints such text goes through
one of these functions; none of them raises on any ``str``.

Examples
--------
>>> for_terminal("a\\x1b[2Jb")
'a\\\\x1b[2Jb'
>>> for_rich("[/bold]")
'\\\\[/bold]'
>>> for_markdown("a|b <script>")
'a\\\\|b &lt;script&gt;'
>>> for_html("<b>&")
'&lt;b&gt;&amp;'
>>> for_xml("ok\\x00")
'ok\\\\x00'
>>> for_json('"a\\x9bb"')
'"a\\\\u009bb"'
"""

from __future__ import annotations

import html
import re

# C0 controls except tab and newline, DEL, and C1 controls (0x80-0x9f: CSI 0x9b starts an
# escape sequence on some terminals just like ESC [).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Also newlines and tabs, for text that must stay on one line (a table cell, a name).
_CONTROL_INLINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Characters XML 1.0 does not allow at all, even escaped (JUnit readers reject the file).
_XML_INVALID = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Unicode bidirectional overrides can make a terminal line read differently from its bytes.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: object, *, inline: bool = False) -> str:
    """Text safe to write to a terminal: control characters shown as ``\\xNN``.

    ``inline=True`` also escapes newlines and tabs (for one-line contexts such as a name).
    """
    s = str(text)
    s = (_CONTROL_INLINE if inline else _CONTROL).sub(_visible, s)
    return _BIDI.sub(_visible, s)


def for_rich(text: object, *, inline: bool = True) -> str:
    """Text safe inside Rich markup: terminal-safe, and ``[`` escaped so it is never a tag."""
    from rich.markup import escape

    return escape(for_terminal(text, inline=inline))


def for_markdown(text: object) -> str:
    """Text safe in a Markdown table cell or paragraph (GitHub-flavoured, which passes HTML).

    HTML is escaped (GitHub renders raw ``<script>``-like tags otherwise), pipes and the
    characters that start emphasis, code or links are backslash-escaped, and line breaks are
    folded so a cell stays one cell.
    """
    s = for_terminal(text, inline=True)
    s = html.escape(s, quote=False)
    s = re.sub(r"([\\`*_\[\]|#!])", r"\\\1", s)
    # a leading "-", "+" or "1." would open a (nested) list where the text starts a bullet
    return re.sub(r"^(\d{0,9})([-+.)])(?=\s|$)", r"\1\\\2", s)


def for_html(text: object) -> str:
    """Text safe in HTML element content and quoted attribute values.

    Control characters (HTML parse errors, and live escapes when the file is ``cat``-ed) and
    bidirectional overrides (they reorder what the reader sees) are shown as ``\\xNN``.
    """
    s = _XML_INVALID.sub(_visible, str(text))
    s = _BIDI.sub(_visible, _CONTROL.sub(_visible, s))
    return html.escape(s, quote=True)


def for_xml(text: object) -> str:
    """Text safe in XML 1.0 content and attributes: escaped, and invalid characters made visible.

    Control characters other than tab, newline and carriage return cannot appear in XML 1.0
    even as character references, so they are written as ``\\xNN`` text.
    """
    s = _XML_INVALID.sub(_visible, str(text))
    s = _CONTROL.sub(_visible, s)
    return html.escape(s, quote=True)


# What json.dumps(ensure_ascii=False) leaves raw although a terminal acts on it.
_JSON_RAW = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def for_json(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) safe to print on a terminal.

    ``json.dumps`` escapes C0 controls but not DEL, C1 controls (``\\x9b`` starts an escape
    sequence) or bidirectional overrides; these can only occur inside strings, where ``\\uXXXX``
    is the same character to any JSON reader.
    """
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
