"""Structural differences between two specs (``spark-spec mission-diff``).

Lists of objects with an ``id`` (nodes, plan steps) or a ``name`` (tools, overrides) are
matched by that key, so reordering is not a change and paths read like
``graph.nodes[id=load].type``; edges are matched by ``source->target``.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

__all__ = ["Change", "diff_specs", "render_text", "render_html"]

_MISSING: Any = object()


@dataclass(frozen=True)
class Change:
    """One difference.

    Attributes:
        path: Where (``graph.nodes[id=b].type``).
        kind: ``"added"``, ``"removed"`` or ``"changed"``.
        old: The old value (None when added).
        new: The new value (None when removed).
    """

    path: str
    kind: str
    old: Any = None
    new: Any = None

    def to_dict(self) -> Dict[str, Any]:
        """Return the change as JSON-ready data.

        Returns:
            ``{"path", "kind", "old", "new"}``.
        """
        return {"path": self.path, "kind": self.kind, "old": self.old, "new": self.new}


def _labels(items: List[Any], key: str) -> Optional[List[str]]:
    """The items' labels under ``key`` if every item has a unique one, else None."""
    if not all(isinstance(i, dict) for i in items):
        return None
    if key in ("edge", "edge+condition"):
        if not all(
            isinstance(i.get("source"), str) and isinstance(i.get("target"), str)
            for i in items
        ):
            return None
        labels = [_label(i, key) for i in items]
    else:
        if not all(isinstance(i.get(key), str) for i in items):
            return None
        labels = [i[key] for i in items]
    return labels if len(set(labels)) == len(labels) else None


def _list_key(old: List[Any], new: List[Any]) -> Optional[str]:
    if not old and not new:
        return None
    for key in ("id", "name", "edge", "edge+condition"):
        if _labels(old, key) is not None and _labels(new, key) is not None:
            return key
    return None


def _label(item: Dict[str, Any], key: str) -> str:
    if key == "edge":
        return f"{item['source']}->{item['target']}"
    if key == "edge+condition":
        condition = item.get("condition")
        when = (
            ""
            if condition is None
            else " when " + json.dumps(condition, sort_keys=True)
        )
        return f"{item['source']}->{item['target']}{when}"
    return str(item[key])


def _walk(old: Any, new: Any, path: str, out: List[Change]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            sub = f"{path}.{key}" if path else str(key)
            a, b = old.get(key, _MISSING), new.get(key, _MISSING)
            if a is _MISSING:
                out.append(Change(sub, "added", None, b))
            elif b is _MISSING:
                out.append(Change(sub, "removed", a, None))
            else:
                _walk(a, b, sub, out)
        return
    if isinstance(old, list) and isinstance(new, list):
        key = _list_key(old, new)
        if key is not None:
            left = {_label(i, key): i for i in old}
            right = {_label(i, key): i for i in new}
            for label in list(left) + [k for k in right if k not in left]:
                sub = f"{path}[{key.split('+')[0]}={label}]"
                if label not in right:
                    out.append(Change(sub, "removed", left[label], None))
                elif label not in left:
                    out.append(Change(sub, "added", None, right[label]))
                else:
                    _walk(left[label], right[label], sub, out)
            return
        for index in range(max(len(old), len(new))):
            sub = f"{path}[{index}]"
            if index >= len(old):
                out.append(Change(sub, "added", None, new[index]))
            elif index >= len(new):
                out.append(Change(sub, "removed", old[index], None))
            else:
                _walk(old[index], new[index], sub, out)
        return
    if old != new or type(old) is not type(new):
        out.append(Change(path, "changed", old, new))


def diff_specs(old: Dict[str, Any], new: Dict[str, Any]) -> List[Change]:
    """Compare two specs in dict form.

    Args:
        old: The first spec.
        new: The second spec.

    Returns:
        The changes, in document order (empty when equal).
    """
    out: List[Change] = []
    _walk(old, new, "", out)
    return out


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_text(changes: List[Change]) -> str:
    """Render changes as text: ``+ path: new``, ``- path: old``, ``~ path: old -> new``.

    Args:
        changes: The changes.

    Returns:
        The text (``"no differences"`` when there are none), ending with a newline.
    """
    if not changes:
        return "no differences\n"
    lines = []
    for c in changes:
        if c.kind == "added":
            lines.append(f"+ {c.path}: {_short(c.new)}")
        elif c.kind == "removed":
            lines.append(f"- {c.path}: {_short(c.old)}")
        else:
            lines.append(f"~ {c.path}: {_short(c.old)} -> {_short(c.new)}")
    added = sum(c.kind == "added" for c in changes)
    removed = sum(c.kind == "removed" for c in changes)
    lines.append(
        f"{len(changes)} change(s): {added} added, {removed} removed, "
        f"{len(changes) - added - removed} changed"
    )
    return "\n".join(lines) + "\n"


def render_html(changes: List[Change], *, title: str = "Mission diff") -> str:
    """Render changes as a standalone HTML page (every value escaped).

    Args:
        changes: The changes.
        title: Page title.

    Returns:
        The HTML document.
    """
    rows = []
    for c in changes:
        rows.append(
            f'<tr class="{c.kind}"><td>{html.escape(c.kind)}</td>'
            f"<td><code>{html.escape(c.path)}</code></td>"
            f"<td><pre>{html.escape(json.dumps(c.old, indent=1)) if c.kind != 'added' else ''}"
            f"</pre></td>"
            f"<td><pre>{html.escape(json.dumps(c.new, indent=1)) if c.kind != 'removed' else ''}"
            f"</pre></td></tr>"
        )
    body = (
        "<table><thead><tr><th>change</th><th>path</th><th>old</th><th>new</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else "<p>No differences.</p>"
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
        ".added{background:#e6ffed}.removed{background:#ffeef0}.changed{background:#fff5b1}"
        f"</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{len(changes)} change(s)</p>{body}</body></html>\n"
    )
