"""Every key of a run, documented: what ``run --print-config`` prints.

The documentation of a field is where its class declares it: the string under the field
(model configs) or the comment on its line (data and training sections). The output is a
flat YAML mapping that ``--config`` reads back unchanged: one ``key: value`` per line, the
resolved value, with its type, default and documentation in a comment.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import typing
from functools import lru_cache
from typing import Any

import yaml

from benchmark.config import SECTIONS, DataConfig


@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """{field: documentation} of a dataclass from its source: the string literal after the
    field, else the comment on the field's line, else the comment lines just above it."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for position, node in enumerate(body):
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        following = body[position + 1] if position + 1 < len(body) else None
        if isinstance(following, ast.Expr) and isinstance(getattr(following, "value", None), ast.Constant) and isinstance(following.value.value, str):
            docs[node.target.id] = " ".join(following.value.value.split())
        elif node.end_lineno in comments and "fmt:" not in comments[node.end_lineno]:
            docs[node.target.id] = comments[node.end_lineno]
        else:
            above, line = [], node.lineno - 1
            while line in comments and lines[line - 1].strip().startswith("#"):
                above.insert(0, comments[line])
                line -= 1
            if above:
                docs[node.target.id] = " ".join(above)
    return docs


def _type_name(hint: Any) -> str:
    text = str(hint) if not isinstance(hint, type) else hint.__name__
    return text.replace("typing.", "").replace("NoneType", "None")


def _line(key: str, value: Any, default: Any, hint: Any, doc: str) -> str:
    rendered = yaml.safe_dump({key: value}, default_flow_style=True, sort_keys=False, width=10**6).strip()[1:-1].strip()
    note = f"{_type_name(hint)}, default {default!r}" if value == default else f"{_type_name(hint)}, default {default!r}, here {value!r}"
    return f"{rendered}  # {note}" + (f": {doc}" if doc else "")


def _section(title: str, instance: Any, defaults: Any) -> list[str]:
    cls = type(instance)
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    out = [f"# --- {title} ({cls.__name__})"]
    for f in dataclasses.fields(cls):
        out.append(_line(f.name, getattr(instance, f.name), getattr(defaults, f.name), hints[f.name], docs.get(f.name, "")))
    return out


def config_yaml(cfg: Any) -> str:
    """The YAML of every key of a resolved ``RunConfig``, grouped by owner, documented."""
    from benchmark.registry import get_model

    spec = get_model(cfg.model)
    lines = [
        f"# {cfg.model} on {cfg.data}: every key of this run, resolved (defaults < the model's training defaults < --config < --set).",
        f"# Pass this file back with: python -m benchmark run --model {cfg.model} --data {cfg.data} --config FILE",
    ]
    lines += _section(f"model {cfg.model}, {spec.file}", cfg.model_config, spec.config)
    train, model_defaults = cfg.train_config, spec.train_defaults
    for name, section in SECTIONS.items():
        base = dataclasses.replace(section(), **{k: v for k, v in model_defaults.items() if k in section.__dataclass_fields__})
        lines += _section(name, getattr(train, name), base)
    lines += _section("data preparation", cfg.data_config, DataConfig())
    return "\n".join(lines) + "\n"
