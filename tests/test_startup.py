"""Commands that render nothing answer without importing torch (issue #39): `styles list`,
`styles show`, `info` and a misspelt --style read names and facts from JSON files beside the
shipped model. Each runs as its own process, as a user runs it, and reports whether torch ended
up in sys.modules; how long they take is measured in benchmarks/startup.py, not asserted here."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_fixtures import photo
from normstyle_core.builtin_styles import SHIPPED_MODEL
from normstyle_core.model_summary import read_summary, read_summary_file, summarize, write_summary

REPO = Path(__file__).resolve().parents[1]

# Runs `normstyle ARGS` in this process and prints, last on stderr, whether torch was imported
# (also when the command exits with an error, which is what the error cases test).
WRAPPER = ("import sys, runpy\n"
           "sys.argv = ['normstyle', *sys.argv[1:]]\n"
           "try:\n"
           "    runpy.run_module('cli.main', run_name='__main__')\n"
           "finally:\n"
           "    print('TORCH-LOADED', 'torch' in sys.modules, file=sys.stderr)\n")


def normstyle(*args, home: Path, model: Path | None = None) -> tuple[int, str, str, bool]:
    """(exit code, stdout, stderr without the report line, whether torch was imported)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NORMSTYLE_MODEL", "NORMSTYLE_DEBUG")}
    env["NORMSTYLE_HOME"] = str(home)
    if model is not None:
        env["NORMSTYLE_MODEL"] = str(model)
    r = subprocess.run([sys.executable, "-c", WRAPPER, *map(str, args)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    lines = r.stderr.splitlines()
    assert lines and lines[-1].startswith("TORCH-LOADED "), r.stderr
    return r.returncode, r.stdout, "\n".join(lines[:-1]), lines[-1].endswith("True")


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


def test_styles_list_and_show_do_not_import_torch(home):
    code, out, err, torch_loaded = normstyle("styles", "list", home=home)
    assert code == 0 and "candy" in out and "udnie" in out, err
    assert not torch_loaded
    code, out, err, torch_loaded = normstyle("styles", "show", "candy", home=home)
    assert code == 0 and "name: candy" in out and "kind: built-in" in out, err
    assert not torch_loaded
    code, out, err, torch_loaded = normstyle("styles", "show", "cnady", home=home)
    assert code == 1 and err.strip().splitlines() == [err.strip()] and "did you mean 'candy'?" in err
    assert not torch_loaded


def test_info_does_not_import_torch_and_says_what_the_model_says(home):
    code, out, err, torch_loaded = normstyle("info", "--json", home=home)
    assert code == 0, err
    assert not torch_loaded
    data = json.loads(out)
    assert data["model"]["step"] and "candy" in data["model"]["built_in_styles"]
    assert data["versions"]["torch"] != "not installed" and data["device"].startswith("not probed")
    code, out, err, torch_loaded = normstyle("info", home=home)
    assert code == 0 and "built_in_styles:" in out and torch_loaded is False
    # asking for the device is what loads torch
    code, out, err, torch_loaded = normstyle("info", "--devices", "--json", home=home)
    assert code == 0 and torch_loaded and json.loads(out)["precision"] in ("float32", "bfloat16")


def test_a_misspelt_style_is_refused_before_torch_loads(home, tmp_path):
    src = photo(tmp_path / "a.jpg")
    for args in (["stylize", src, "--style", "cnady"],
                 ["batch", src, "--style", "candy", "--style", "cnady", "--out", tmp_path / "out"]):
        code, out, err, torch_loaded = normstyle(*args, home=home)
        assert code == 1 and err.strip().splitlines() == [err.strip()], err
        assert "'cnady' is not a built-in style" in err and "did you mean 'candy'?" in err
        assert not torch_loaded
    code, _, err, torch_loaded = normstyle("stylize", src, "--style", tmp_path, home=home)
    assert code == 1 and "is a folder" in err and not torch_loaded
    code, _, err, torch_loaded = normstyle("stylize", src, "--style", "candy", "--device", "tpu", home=home)
    assert code == 1 and "unknown device 'tpu'" in err and not torch_loaded
    code, _, err, torch_loaded = normstyle("stylize", src, "--style", "candy", "--model", tmp_path / "no.pt",
                                           home=home)
    assert code == 1 and "model file not found" in err and not torch_loaded
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("a_*"))


def test_another_models_names_still_come_from_the_model(tmp_path, home, tiny_model_file):
    """styles.json describes the shipped model only: with another model a name it does not
    know is refused after the model loads, in the same words."""
    src = photo(tmp_path / "a.jpg")
    code, _, err, torch_loaded = normstyle("stylize", src, "--style", "candy", "--model", tiny_model_file,
                                           home=home)
    assert code == 1 and "'candy' is not a built-in style (blue, red)" in err and torch_loaded


def test_the_shipped_models_summary_is_current():
    """The JSON beside default.pt must describe that file; after changing the model, run
    tools/write_model_summary.py normstyle_core/assets/default.pt."""
    from normstyle_core import Stylizer
    assert read_summary(SHIPPED_MODEL) is not None, "run tools/write_model_summary.py (see its docstring)"
    assert read_summary(SHIPPED_MODEL) == summarize(Stylizer.load(SHIPPED_MODEL, device="cpu", precision="fp32"))


def test_a_summary_of_another_file_is_not_used(tmp_path, tiny_model_file, home):
    from normstyle_core import Stylizer
    stylizer = Stylizer.load(tiny_model_file, device="cpu", precision="fp32")
    write_summary(tiny_model_file, stylizer)
    assert read_summary(tiny_model_file) == summarize(stylizer)
    code, out, err, torch_loaded = normstyle("info", "--json", "--model", tiny_model_file, home=home)
    assert code == 0 and not torch_loaded and json.loads(out)["model"]["built_in_styles"] == ["blue", "red"]
    with open(tiny_model_file, "ab") as fh:  # the model changed: its old summary no longer applies
        fh.write(b"\0")
    assert read_summary(tiny_model_file) is None and read_summary_file(tiny_model_file) is None
