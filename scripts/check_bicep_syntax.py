#!/usr/bin/env python3
"""Syntax check of Bicep files without the Bicep compiler (none can be installed here).

Parses every .bicep file under the given directories (default: infra/) with tree-sitter and
the tree-sitter-bicep grammar and fails on ERROR or MISSING nodes, printing where they are.
This checks syntax only: not types, resource properties or API versions.

Usage: scripts/check_bicep_syntax.py [DIR_OR_FILE ...]
"""

import pathlib
import sys

import tree_sitter
import tree_sitter_bicep


def problems(tree):
    """Yields (row, column, kind, text) for every ERROR or MISSING node."""
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            kind = "MISSING " + node.type if node.is_missing else "ERROR"
            text = node.text.decode("utf-8", "replace").splitlines()
            yield node.start_point[0] + 1, node.start_point[1] + 1, kind, text[0] if text else ""
            continue
        if node.has_error:
            stack.extend(reversed(node.children))


def bicep_files(args):
    roots = [pathlib.Path(a) for a in args] or [pathlib.Path("infra")]
    for root in roots:
        if root.is_file():
            yield root
        else:
            yield from sorted(root.rglob("*.bicep"))


def main(argv):
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))
    files = list(bicep_files(argv[1:]))
    if not files:
        print("check_bicep_syntax: no .bicep files found", file=sys.stderr)
        return 1
    failed = 0
    for path in files:
        tree = parser.parse(path.read_bytes())
        found = list(problems(tree))
        for row, col, kind, text in found:
            print(f"{path}:{row}:{col}: {kind}: {text.strip()[:80]}")
        if found:
            failed += 1
    print(f"check_bicep_syntax: {len(files)} files, {failed} with syntax errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
