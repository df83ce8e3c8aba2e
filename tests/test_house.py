"""House rules that review keeps missing, checked on the source (docs/architecture.md)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
HELPERS = sorted(
    p.stem for p in TESTS.glob("*.py") if not p.name.startswith("test_") and p.stem != "conftest"
)


def _test_sources() -> dict[str, str]:
    return {str(p.relative_to(TESTS)): p.read_text(encoding="utf-8") for p in TESTS.rglob("*.py")}


def test_tests_import_their_helpers_one_way() -> None:
    bare = re.compile(rf"^\s*(from|import) ({'|'.join(HELPERS)}|conftest)\b", re.M)
    conftest = re.compile(r"^\s*from tests\.conftest import", re.M)
    wrong = sorted(
        name for name, text in _test_sources().items() if bare.search(text) or conftest.search(text)
    )
    assert wrong == [], f"import helpers as `from tests.X import ...` (not from conftest): {wrong}"


def test_one_free_port() -> None:
    defined = sorted(
        name
        for name, text in _test_sources().items()
        if re.search(r"^def _?free_port\b", text, re.M)
    )
    assert defined == ["net.py"]


def test_one_spelling_in_code_names() -> None:
    """Code names say `catalog` and `normalize`; prose may say catalogue and normalise."""
    import io
    import tokenize

    root = TESTS.parent
    wrong = set()
    for base in ("musicark", "tests", "benchmarks"):
        for path in (root / base).rglob("*.py"):
            tokens = tokenize.generate_tokens(io.StringIO(path.read_text("utf-8")).readline)
            for t in tokens:
                if t.type != tokenize.NAME or t.string.startswith("test_"):
                    continue
                if re.search(r"catalogue|normalis|summaris", t.string, re.I):
                    wrong.add(f"{path.relative_to(root)}: {t.string}")
    assert sorted(wrong) == []


def test_errors_keep_their_cause() -> None:
    """`raise X(...) from exc`, not `from None`, where the caught exception has a name:
    `--debug` then shows the whole chain."""
    import ast

    root = TESTS.parent / "musicark"
    dropped = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for handler in ast.walk(tree):
            if not isinstance(handler, ast.ExceptHandler) or handler.name is None:
                continue
            for node in ast.walk(handler):
                cause = node.cause if isinstance(node, ast.Raise) else None
                if isinstance(cause, ast.Constant) and cause.value is None:
                    dropped.append(f"{path.relative_to(root)}:{node.lineno}")
    assert sorted(dropped) == []


def test_the_library_never_prints() -> None:
    """Only the CLI (and the demo script, a CLI of its own) writes to the terminal."""
    import ast

    root = TESTS.parent / "musicark"
    printing = []
    for path in root.rglob("*.py"):
        name = str(path.relative_to(root))
        if name.startswith("cli/") or name == "demo.py":
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            called = (
                f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            )
            if called in ("print", "echo", "secho", "pprint"):
                printing.append(f"{name}:{node.lineno}")
    assert sorted(printing) == []


def test_transactions_go_through_sqlite_transaction() -> None:
    """No hand-written BEGIN/COMMIT/ROLLBACK: `musicark.sqlite.transaction` rolls back on
    every exception, a hand-written block does not."""
    root = TESTS.parent / "musicark"
    statement = re.compile(r"""execute\(\s*f?["'](BEGIN|COMMIT|ROLLBACK|END)\b""", re.I)
    found = sorted(
        f"{path.relative_to(root)}"
        for path in root.rglob("*.py")
        if path.name != "sqlite.py" and statement.search(path.read_text("utf-8"))
    )
    assert found == []


MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100  # outside musicark/cli/


def test_no_module_over_600_lines_no_function_over_100_outside_the_cli() -> None:
    import ast

    root = TESTS.parent / "musicark"
    over = {}
    for path in sorted(root.rglob("*.py")):
        name = str(path.relative_to(root))
        text = path.read_text("utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            over[name] = lines
        if name.startswith("cli/"):
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    over[f"{name}:{node.name}"] = length
    assert over == {}, "split these: one module or function per job"
