"""SVG as element trees rendered by one autoescaping template, never as concatenated strings.

The charts (`autolr.server.dashboard`) compute geometry in Python and describe what to draw as
`Element` values; `render` turns a tree into markup through ``templates/svg.xml``, where Jinja2
escapes every attribute value and every text (a probe's failure reason, say). Tag and
attribute names come from our code only, and tags are checked against `TAGS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

#: The SVG elements the charts use.
TAGS = frozenset({"svg", "g", "title", "rect", "line", "polyline", "path", "circle", "text"})

_env = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
)


@dataclass(frozen=True)
class Element:
    """One SVG element: its tag, attributes (values escaped on output), text and children."""

    tag: str
    attrs: Mapping[str, object] = field(default_factory=dict)
    text: str | None = None
    children: Sequence[Element] = ()

    def __post_init__(self) -> None:
        if self.tag not in TAGS:
            raise ValueError(f"unexpected SVG tag {self.tag!r}; allowed: {sorted(TAGS)}")


def el(tag: str, text: str | None = None, *children: Element, **attrs: object) -> Element:
    """An `Element`; attribute names use ``_`` for ``-`` (``stroke_width`` → stroke-width)
    and a trailing ``_`` for Python keywords (``class_`` → class)."""
    names = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
    return Element(tag, names, text, children)


def titled(tag: str, tip: str, **attrs: object) -> Element:
    """An element with a ``<title>`` child: the browser's tooltip."""
    return el(tag, None, el("title", tip), **attrs)


def render(root: Element) -> str:
    """The markup of ``root`` and its descendants."""
    return _env.get_template("svg.xml").render(root=root)
