"""Tools and policies shared by the agent tests."""

from __future__ import annotations

from typing import Any, Dict, List

from spark_core.governance.policy import PolicyEffect, PolicyRule, PolicySet
from spark_core.governance.tools import tool

#: Every call made to the side-effecting tools below, in order.
CALLS: List[Dict[str, Any]] = []


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: First number.
        b: Second number.
    """
    CALLS.append({"tool": "add", "a": a, "b": b})
    return a + b


@tool
def lookup_capital(country: str) -> str:
    """Return the capital city of a country.

    Args:
        country: The country's name.
    """
    CALLS.append({"tool": "lookup_capital", "country": country})
    return {"peru": "Lima", "france": "Paris"}.get(country.lower(), "unknown")


@tool
def write_file(path: str, content: str) -> Dict[str, Any]:
    """Write text to a file (pretend).

    Args:
        path: Where.
        content: What.
    """
    CALLS.append({"tool": "write_file", "path": path, "content": content})
    return {"written": len(content), "path": path}


@tool
def delete_file(path: str) -> str:
    """Delete a file (pretend).

    Args:
        path: Which file.
    """
    CALLS.append({"tool": "delete_file", "path": path})
    return "deleted"


def fs_policy() -> PolicySet:
    """The seed's policy: deleting is denied, writing needs a human approval."""
    return PolicySet(
        name="fs_safety",
        rules=[
            PolicyRule(
                name="block_delete",
                effect=PolicyEffect.DENY,
                actions=["tool:execute"],
                resources=["tool://delete_file"],
                description="Prevent agents from deleting files",
            ),
            PolicyRule(
                name="require_approval_write",
                effect=PolicyEffect.REQUIRE_APPROVAL,
                actions=["tool:execute"],
                resources=["tool://write_file"],
                description="Require human approval to write files",
            ),
        ],
    )


def calls_to(name: str) -> List[Dict[str, Any]]:
    """The recorded calls to one tool."""
    return [c for c in CALLS if c["tool"] == name]
