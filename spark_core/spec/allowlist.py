"""Which modules a spec may name: one rule for the loader, ``compile``, validation and deploy.

A spec names code only through references (``"package.module:Name"``). The rule:

* A module is allowed when it is, or is inside, an allowed prefix (``"myapp"`` allows
  ``myapp`` and ``myapp.tools``, not ``myapp_evil``).
* Node classes may also come from :data:`DEFAULT_ALLOWED_MODULES` (``spark_core``); tools and
  simulation handlers only from prefixes the user gives.
* The standard library's dangerous modules (:data:`DANGEROUS_MODULES`: processes, files,
  sockets, the interpreter, code loading) are never allowed implicitly: only a prefix naming
  that module, or something inside it, allows it. ``urllib`` does not allow
  ``urllib.request``, and a tool an allowed module re-exports from ``os`` is refused when the
  loader imports it.

``SpecLoader`` (so ``ai-spine serve --allow-module``), ``spark-spec compile`` and
``spark-spec mission-validate`` all apply it; nothing here imports anything.
"""

from __future__ import annotations

from typing import FrozenSet, Iterable, Optional, Sequence, Tuple

from spark_core.spec.errors import SpecError

__all__ = [
    "DEFAULT_ALLOWED_MODULES",
    "DANGEROUS_MODULES",
    "normalise_prefixes",
    "dangerous_root",
    "module_allowed",
    "module_refusal",
]

#: Module prefixes node classes may come from unless the caller says otherwise.
DEFAULT_ALLOWED_MODULES: Tuple[str, ...] = ("spark_core",)

#: Standard-library modules (and their submodules) allowed only by a prefix naming them.
DANGEROUS_MODULES: FrozenSet[str] = frozenset(
    {
        # processes, the operating system, the interpreter
        "os",
        "posix",
        "nt",
        "_posixsubprocess",
        "subprocess",
        "sys",
        "pty",
        "tty",
        "termios",
        "fcntl",
        "resource",
        "signal",
        "_signal",
        "mmap",
        "ctypes",
        "_ctypes",
        "gc",
        "atexit",
        "faulthandler",
        "multiprocessing",
        "_multiprocessing",
        "concurrent",
        "threading",
        "_thread",
        "asyncio",
        "platform",
        "getpass",
        # code loading and execution
        "builtins",
        "importlib",
        "zipimport",
        "pkgutil",
        "runpy",
        "code",
        "codeop",
        "compileall",
        "py_compile",
        "pdb",
        "bdb",
        "timeit",
        "trace",
        "profile",
        "cProfile",
        "doctest",
        "pydoc",
        "inspect",
        "types",
        "site",
        "sysconfig",
        "ensurepip",
        "venv",
        "__main__",
        "logging.config",
        # serialisation that runs code
        "pickle",
        "_pickle",
        "marshal",
        "shelve",
        "copyreg",
        # files
        "io",
        "_io",
        "codecs",
        "shutil",
        "tempfile",
        "glob",
        "fileinput",
        "dbm",
        "sqlite3",
        "tarfile",
        "zipfile",
        # the network
        "socket",
        "_socket",
        "ssl",
        "select",
        "selectors",
        "socketserver",
        "urllib.request",
        "http.client",
        "http.server",
        "ftplib",
        "smtplib",
        "poplib",
        "imaplib",
        "telnetlib",
        "xmlrpc",
        "webbrowser",
    }
)


def normalise_prefixes(prefixes: Iterable[str]) -> Tuple[str, ...]:
    """Check and tidy a list of allowed module prefixes.

    Args:
        prefixes: Dotted module names (a trailing dot is dropped).

    Returns:
        The prefixes, in order.

    Raises:
        SpecError: A str instead of a list, or a prefix no module name can match.
    """
    if isinstance(prefixes, str):  # would be read one character at a time
        raise SpecError(
            f"allowed module prefixes must be a list, not a str ({prefixes!r})"
        )
    out = []
    for prefix in prefixes:
        name = prefix.strip().rstrip(".") if isinstance(prefix, str) else ""
        # A prefix no module name can match ("a..b", "my app") is a typo, not a rule.
        if not name or not all(part.isidentifier() for part in name.split(".")):
            raise SpecError(
                f"invalid allowed module prefix {prefix!r}: not a dotted module name "
                "like 'myapp.nodes'"
            )
        out.append(name)
    return tuple(out)


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def dangerous_root(module: str) -> Optional[str]:
    """Name the entry of :data:`DANGEROUS_MODULES` that ``module`` is or is inside of.

    Args:
        module: A dotted module name.

    Returns:
        The entry (``"os"`` for ``"os.path"``), or None for a module not in the list.
    """
    parts = module.split(".")
    for end in range(1, len(parts) + 1):
        root = ".".join(parts[:end])
        if root in DANGEROUS_MODULES:
            return root
    return None


def module_allowed(module: str, prefixes: Sequence[str]) -> bool:
    """Tell whether code may be imported from ``module`` (see the module docstring).

    Args:
        module: A dotted module name.
        prefixes: Allowed prefixes (already normalised).

    Returns:
        Whether one prefix allows it.
    """
    root = dangerous_root(module)
    return any(
        _within(module, p) and (root is None or _within(p, root)) for p in prefixes
    )


def module_refusal(module: str, prefixes: Sequence[str]) -> Optional[str]:
    """Say why ``module`` is not allowed, or return None when it is.

    Args:
        module: A dotted module name.
        prefixes: Allowed prefixes (already normalised).

    Returns:
        A message such as ``"module 'os' is not allowed (allowed prefixes: none)"``,
            or None.
    """
    if module_allowed(module, prefixes):
        return None
    allowed = ", ".join(prefixes) if prefixes else "none"
    root = dangerous_root(module)
    if root is not None and any(_within(module, p) for p in prefixes):
        return (
            f"module {module!r} is not allowed: {root!r} is a dangerous standard-library "
            f"module, allowed only when named itself (allowed prefixes: {allowed})"
        )
    return f"module {module!r} is not allowed (allowed prefixes: {allowed})"
