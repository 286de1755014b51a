"""YAML for the configuration file: PyYAML's safe loader with limits and honest key handling.

``yaml.safe_load`` alone accepts three things a config file should not have:

- Alias bombs ("billion laughs"): nine nested lists of nine aliases are 1.8 KB of text and a
  billion values once anything walks them (validation, hashing, JSON). The loader counts alias
  references and the size of the document with every alias expanded, before building it.
- Duplicate keys: PyYAML keeps the last one silently, so a second ``attack:`` section replaces
  the first. Here it is an error naming both lines. (Keys that a merge ``<<: *base`` brings in
  may be overridden, as YAML intends.)
- Unbounded nesting: ``[[[[...]]]]`` exhausts Python's recursion limit.

Every error is a :class:`UserError` of one line naming the source and the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from generator.errors import UserError, quote_value, shorten

MAX_CONFIG_BYTES = 1_000_000
MAX_ALIAS_REFERENCES = 1_000
# A 1 MB file without aliases cannot hold more nodes than this; aliases may not exceed it either.
MAX_EXPANDED_NODES = 250_000
MAX_NESTING = 50
MERGE_TAG = "tag:yaml.org,2002:merge"



class _YamlProblem(Exception):
    """A refusal with its 1-based line, turned into a UserError by :func:`load_yaml`."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


class LimitedSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses alias bombs, deep nesting and duplicate keys."""

    def __init__(self, stream):
        super().__init__(stream)
        self.alias_references = 0
        self.depth = 0

    # --- composing: count aliases and depth while the node graph is built ---

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.alias_references += 1
            if self.alias_references > MAX_ALIAS_REFERENCES:
                line = self.peek_event().start_mark.line + 1
                raise _YamlProblem(f"more than {MAX_ALIAS_REFERENCES} alias references (*name); refused", line)
            return super().compose_node(parent, index)
        self.depth += 1
        try:
            if self.depth > MAX_NESTING:
                line = self.peek_event().start_mark.line + 1
                raise _YamlProblem(f"nested more than {MAX_NESTING} levels deep; refused", line)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            _check_expanded_size(node)
        return node

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        _refuse_duplicate_keys(self, node)
        return node


def _refuse_duplicate_keys(loader: yaml.SafeLoader, node: MappingNode) -> None:
    """Refuse a mapping that writes one key twice, checked as written (before any merge).

    Keys are compared as values (``1`` and ``0x1``, ``yes`` and ``true`` are the same key), the
    way the mapping would store them. Only scalar keys are compared: a config has no others.
    """
    first_lines: dict[Any, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, ScalarNode) or key_node.tag == MERGE_TAG:
            continue
        constructor = loader.yaml_constructors.get(key_node.tag)
        if constructor is None:
            continue   # an unsupported tag: construction reports it with its line
        key = constructor(loader, key_node)
        line = key_node.start_mark.line + 1
        try:
            first = first_lines.get(key)
        except TypeError:   # a key no mapping can hold: construction reports it with its line
            continue
        if first is not None:
            raise _YamlProblem(f"duplicate key {quote_value(key)} at line {line} (first at line {first})")
        first_lines[key] = line


def _check_expanded_size(root: Node) -> None:
    """Refuse a node graph that, with every alias expanded, has more than MAX_EXPANDED_NODES nodes.

    Aliases make the graph share nodes, so sizes are memoised per node: the walk costs the
    number of distinct nodes, not the expanded size it computes.
    """
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    # Iterative post-order walk: the nesting is bounded, but recursion here needs no limit.
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        identity = id(node)
        if identity in sizes:
            continue
        children = _children(node)
        if not children_done:
            if identity in in_progress:
                raise _YamlProblem("an alias refers to the collection that contains it; refused",
                                   node.start_mark.line + 1)
            in_progress.add(identity)
            stack.append((node, True))
            for child in children:
                if id(child) in in_progress and id(child) not in sizes:
                    raise _YamlProblem("an alias refers to the collection that contains it; refused",
                                       child.start_mark.line + 1)
                if id(child) not in sizes:
                    stack.append((child, False))
            continue
        in_progress.discard(identity)
        size = 1 + sum(sizes[id(child)] for child in children)
        if size > MAX_EXPANDED_NODES:
            raise _YamlProblem(f"aliases expand it to more than {MAX_EXPANDED_NODES:,} values; refused",
                               node.start_mark.line + 1)
        sizes[identity] = size


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load_yaml(text: str, source_name: str) -> Any:
    """Parse one YAML document like ``yaml.safe_load``, within this module's limits.

    ``source_name`` (usually the file's path) starts every error message. Raises
    :class:`UserError` with one line naming the line for syntax errors, unsupported tags,
    duplicate keys, alias bombs, deep nesting and texts over ``MAX_CONFIG_BYTES``.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        raise UserError(f"{source_name}: {size:,} bytes, over the limit of {MAX_CONFIG_BYTES:,} for a config file")
    loader = LimitedSafeLoader(text)
    try:
        return loader.get_single_data()
    except _YamlProblem as problem:
        where = f" line {problem.line}:" if problem.line else ""
        raise UserError(f"{source_name}:{where} {problem}") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = " ".join(str(error.problem or error.context or "syntax error").split())
        raise UserError(f"{source_name}:{where} is not valid YAML ({shorten(reason, 160)})") from None
    except yaml.YAMLError as error:
        raise UserError(f"{source_name}: is not valid YAML ({shorten(' '.join(str(error).split()), 160)})") from None
    except RecursionError:
        raise UserError(f"{source_name}: nested too deeply; refused") from None
    finally:
        loader.dispose()


def read_yaml_file(path: str | Path) -> Any:
    """:func:`load_yaml` of a UTF-8 file, refusing one over ``MAX_CONFIG_BYTES`` before reading it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise UserError(f"{path}: {size:,} bytes, over the limit of {MAX_CONFIG_BYTES:,} for a config file")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not a file") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise UserError(f"{path}: cannot be read ({shorten(error.strerror or str(error))})") from None
    return load_yaml(text, str(path))
