"""Showing the package's own code in the notebook, where the tutorial teaches it.

The notebook never defines helper functions; instead it shows the source of
the ones it calls, without their docstrings (the notebook's prose explains
them), so that a learner reads the code that really runs.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable


def strip_docstrings(code: str) -> str:
    """Returns Python code without the docstrings of its functions and classes.

    Args:
        code: Source code that parses on its own (dedented).

    Returns:
        The same code, each docstring's lines removed.

    Example:

    >>> print(strip_docstrings("def f(x):\\n    'Doubles x.'\\n    return 2 * x\\n"))
    def f(x):
        return 2 * x
    <BLANKLINE>
    """
    tree = ast.parse(code)
    removed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            value = first.value if isinstance(first, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                removed.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    lines = code.splitlines(keepends=True)
    return "".join(line for number, line in enumerate(lines, start=1) if number not in removed)


def format_source(*functions: Callable) -> str:
    """Returns the source of functions as one Markdown Python code block, without docstrings.

    In a notebook: `display(Markdown(format_source(models.build_transfer_model)))`.

    Args:
        *functions: Functions or classes, shown in the order given.

    Returns:
        Markdown text: a fenced `python` code block.

    Raises:
        TypeError: If the source of one of them cannot be found (a built-in).
    """
    parts = [strip_docstrings(textwrap.dedent(inspect.getsource(function))).strip() for function in functions]
    return "```python\n" + "\n\n\n".join(parts) + "\n```"
