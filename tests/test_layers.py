"""The code's shape, checked: the import-layering contract of setup.cfg ([importlinter]: no cycle,
pipeline never imports tasks, luigi only in pipeline.storage), and no test asserting a constant."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_of_setup_cfg_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache", "--config", str(PROJECT / "setup.cfg")], cwd=PROJECT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "3 kept, 0 broken" in proc.stdout


def constant_assertions(source: str) -> list[int]:
    """Lines of `assert`s that cannot fail: on a literal (a string, a number, a tuple, a
    non-empty container) or on an `and`/`or` with a literal in it."""
    literal = (ast.Constant, ast.JoinedStr, ast.Tuple, ast.List, ast.Dict, ast.Set, ast.Lambda)
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assert):
            test = node.test
            parts = test.values if isinstance(test, ast.BoolOp) else [test]
            if any(isinstance(part, literal) for part in parts):
                found.append(node.lineno)
    return found


def test_no_test_asserts_a_constant():
    found = {str(path.relative_to(PROJECT)): lines for path in sorted((PROJECT / "tests").rglob("*.py"))
             if (lines := constant_assertions(path.read_text()))}
    assert found == {}


def test_the_constant_assertion_check_finds_the_kinds_it_names():
    source = ('def t(out):\n    assert "2 monitored day(s)"  # the `in out` fell into a comment\n'
              '    assert (out, "message")\n    assert out and f"{out}"\n    assert "x" in out\n')
    assert constant_assertions(source) == [2, 3, 4]
