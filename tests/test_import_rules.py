"""Which part of the project may import which, read from the source with ``ast`` (nothing is
imported, so a rule is checked even where torch or GIMP is missing):

- nothing under normstyle_core/ imports ``cli`` or ``gimp_plugin``: the library knows no front end;
- normstyle_core/models/ imports from the library only ``models`` itself, ``config``, ``errors``,
  ``kernels`` and ``safe_load``: what building a network and loading its weights needs. Training
  code (training, data, losses, ema, refine, checkpoint, evaluation, ...) builds on the models,
  never the other way round;
- no tools/ script imports another tools/ script: what two scripts share lives in the library;
- nothing under gimp_plugin/ imports torch or normstyle_core: that folder holds only what runs in
  GIMP's own Python (the plug-in talks to the worker, cli/gimp_worker.py, over a socket or pipes;
  the installer lives in cli/ and the real-GIMP test harness in tests/gimp_harness/).

Every rule is a function of a root folder, so the tests below can also show that each one fails
on a tree that breaks it.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Callable, Iterable

ROOT = Path(__file__).resolve().parents[1]
MODELS_MAY_IMPORT = ("normstyle_core.models", "normstyle_core.config", "normstyle_core.errors",
                     "normstyle_core.kernels", "normstyle_core.safe_load")


def imported_names(path: Path, *, root: Path) -> Iterable[tuple[int, str]]:
    """(line, absolute dotted name) of every import in ``path``; relative imports are resolved
    against the file's place under ``root``, and ``from a import b`` gives ``a.b``."""
    package = list(path.relative_to(root).parent.parts)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                yield node.lineno, module if alias.name == "*" else f"{module}.{alias.name}".lstrip(".")


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _violations(files: Iterable[Path], *, root: Path, forbidden: Callable[[str], bool]) -> list[str]:
    return [f"{path.relative_to(root)}:{line} imports {name}"
            for path in sorted(files) for line, name in sorted(imported_names(path, root=root)) if forbidden(name)]


def core_front_end_imports(*, root: Path) -> list[str]:
    return _violations((root / "normstyle_core").rglob("*.py"), root=root,
                       forbidden=lambda name: _within(name, ("cli", "gimp_plugin")))


def model_training_imports(*, root: Path) -> list[str]:
    return _violations((root / "normstyle_core" / "models").rglob("*.py"), root=root,
                       forbidden=lambda name: _within(name, ("normstyle_core",))
                       and not _within(name, MODELS_MAY_IMPORT))


def tools_sibling_imports(*, root: Path) -> list[str]:
    scripts = list((root / "tools").glob("*.py"))
    siblings = {p.stem for p in scripts}
    return _violations(scripts, root=root,
                       forbidden=lambda name: name.split(".")[0] in siblings or _within(name, ("tools",)))


def plugin_heavy_imports(*, root: Path) -> list[str]:
    return _violations((root / "gimp_plugin").rglob("*.py"), root=root,
                       forbidden=lambda name: _within(name, ("torch", "normstyle_core")))


RULES = (core_front_end_imports, model_training_imports, tools_sibling_imports, plugin_heavy_imports)


def test_the_library_imports_no_front_end():
    assert core_front_end_imports(root=ROOT) == []


def test_the_models_import_no_training_code():
    assert model_training_imports(root=ROOT) == []


def test_no_tools_script_imports_another():
    assert tools_sibling_imports(root=ROOT) == []


def test_the_gimp_plug_in_imports_neither_torch_nor_the_library():
    assert plugin_heavy_imports(root=ROOT) == []


def test_the_rules_see_the_files_they_guard():
    for folder in ("normstyle_core", "normstyle_core/models", "tools", "gimp_plugin", "gimp_plugin/normstyle_gimp"):
        assert list((ROOT / folder).glob("*.py")), folder


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_every_rule_fails_on_a_tree_that_breaks_it(tmp_path):
    allowed = _tree(tmp_path / "allowed", {
        "normstyle_core/__init__.py": "from . import errors\n",
        "normstyle_core/models/vgg.py": "import torch\nfrom ..safe_load import load_tensors_only\n"
                                        "from ..config import ModelConfig\nfrom .layers import ConvCIN\n",
        "tools/a.py": "from normstyle_core.heldout import heldout_styles\nimport argparse\n",
        "tools/b.py": "from normstyle_core import Stylizer\n",
        "gimp_plugin/normstyle_gimp/plugin.py": "import gi\nimport nsclient\n",
        "gimp_plugin/__init__.py": '"""The plug-in."""\n',
    })
    assert [rule(root=allowed) for rule in RULES] == [[], [], [], []]

    broken = _tree(tmp_path / "broken", {
        "normstyle_core/stylize.py": "def f():\n    from cli.common import error_line\n",
        "normstyle_core/models/vgg.py": "from ..training import Trainer\nfrom normstyle_core import data\n"
                                        "from .. import checkpoint\n",
        "tools/a.py": "import argparse\nfrom b import shared\n",
        "tools/b.py": "import tools.a\n",
        "gimp_plugin/normstyle_gimp/plugin.py": "import torch.nn\nfrom normstyle_core.imaging import save_image\n",
        "gimp_plugin/worker.py": "def serve():\n    from normstyle_core import Stylizer\n    import torch\n",
    })
    assert core_front_end_imports(root=broken) == ["normstyle_core/stylize.py:2 imports cli.common.error_line"]
    assert model_training_imports(root=broken) == [
        "normstyle_core/models/vgg.py:1 imports normstyle_core.training.Trainer",
        "normstyle_core/models/vgg.py:2 imports normstyle_core.data",
        "normstyle_core/models/vgg.py:3 imports normstyle_core.checkpoint"]
    assert tools_sibling_imports(root=broken) == ["tools/a.py:2 imports b.shared", "tools/b.py:1 imports tools.a"]
    assert plugin_heavy_imports(root=broken) == [
        "gimp_plugin/normstyle_gimp/plugin.py:1 imports torch.nn",
        "gimp_plugin/normstyle_gimp/plugin.py:2 imports normstyle_core.imaging.save_image",
        "gimp_plugin/worker.py:2 imports normstyle_core.Stylizer",
        "gimp_plugin/worker.py:3 imports torch"]
