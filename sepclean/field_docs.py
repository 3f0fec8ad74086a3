"""Settings declared as dataclass fields: the docstring written under each field (where a setting's
meaning is declared, next to its type and default, for the command lines and docs generated from the
fields) and whether it changes a result."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the string literal right under its declaration, over ``cls``'s dataclass bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def setting(default, identity: bool = True, **kwargs):
    """A setting; ``identity=False``: it does not change the result (where, how fast), so artifacts
    are not keyed by it."""
    return dataclasses.field(default=default, metadata={"identity": identity}, **kwargs)
