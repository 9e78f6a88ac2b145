"""Hostile style codes, blend weights and model files: one clear error line, a non-zero exit, and
no file changed or appeared (never a black image reported as written, never a traceback)."""
from __future__ import annotations

import math
import os
import pickle

import pytest
import torch

from cli_fixtures import home, photo, raw_run, run, snapshot  # noqa: F401 (fixtures)
from normstyle_core import StyleCode, StyleError
from normstyle_core.style_code import CODE_FORMAT, CODE_VERSION


def _one_line_error(r, code: int = 1) -> str:
    assert r.exit_code == code, (r.exit_code, r.output)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("Error:"), lines[0]
    return lines[0]


def _code_file(path, matrix, **extra):
    torch.save({"format": CODE_FORMAT, "version": CODE_VERSION, "name": "x", "matrix": matrix, **extra}, path)
    return path


def _tiny_code_shape(tiny_config) -> tuple[int, int]:
    return tiny_config.code_rows, 2 * tiny_config.num_cin


# ------------------------------------------------------------------ blend weights
@pytest.mark.parametrize("weights", [[math.nan, 1.0], [math.inf, 1.0], [1.0, -math.inf], [-1.0, 2.0], [0.0, 0.0]])
def test_blend_refuses_weights_that_are_not_finite_and_non_negative(weights):
    a, b = StyleCode(torch.ones(4, 2)), StyleCode(torch.zeros(4, 2))
    with pytest.raises(StyleError, match="finite numbers >= 0, not all zero"):
        StyleCode.blend([a, b], weights)


def test_blend_with_huge_finite_weights_stays_finite():
    """1e308 + 1e308 overflows a plain sum to inf, and every weight / inf to 0: a black image."""
    a, b = StyleCode(torch.full((4, 2), 2.0)), StyleCode(torch.zeros(4, 2))
    mixed = StyleCode.blend([a, b], [1e308, 1e308])
    torch.testing.assert_close(mixed.matrix, torch.ones(4, 2))


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_code_holding_nan_or_inf_is_refused_where_it_is_made(bad):
    matrix = torch.ones(4, 2)
    matrix[1, 1] = bad
    with pytest.raises(StyleError, match="NaN or infinite"):
        StyleCode(matrix, "odd")
    with pytest.raises(StyleError, match="real-valued matrix"):
        StyleCode("not a tensor")  # type: ignore[arg-type]


@pytest.mark.parametrize("command", ["stylize", "batch"])
@pytest.mark.parametrize("weights", ["nan,1", "inf,1"])
def test_non_finite_blend_weights_are_one_error_and_write_nothing(run, tmp_path, command, weights):
    """Both rendered black with exit 0 (NaN passes `w < 0` and `sum <= 0` alike). The command may
    refuse them as a usage error (exit 2) or leave them to the core (exit 1): either way it
    says they must be finite, before any output exists."""
    src = photo(tmp_path / "in" / "a.jpg")
    before = snapshot(tmp_path)
    dest = ["-o", tmp_path / "out.png"] if command == "stylize" else ["--out", tmp_path / "styled"]
    r = run(command, src if command == "stylize" else src.parent, "--style", "red",
            "--style", "blue", "--weights", weights, *dest)
    assert r.exit_code in (1, 2), r.output
    assert "weight" in r.stderr and "finite" in r.stderr, r.stderr
    assert snapshot(tmp_path) == before  # nothing written, nothing changed


@pytest.mark.parametrize("weight", ["nan", "inf"])
def test_a_single_style_weight_must_be_finite(run, tmp_path, weight):
    src = photo(tmp_path / "a.jpg")
    before = snapshot(tmp_path)
    r = run("stylize", src, "--style", "red", "--weights", weight)
    assert r.exit_code in (1, 2) and "weight" in r.stderr and "finite" in r.stderr, r.output
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ style-code files
def _bad_codes(tmp_path, shape):
    nan = torch.zeros(shape)
    nan[0, 0] = math.nan
    return {
        "nan": (_code_file(tmp_path / "nan.pt", nan), "holds NaN or infinite values"),
        "inf": (_code_file(tmp_path / "inf.pt", torch.full(shape, math.inf)), "holds NaN or infinite values"),
        "1e30": (_code_file(tmp_path / "big.pt", torch.full(shape, 1e30)), "values up to 1e+30"),
        "1e300 (float64)": (_code_file(tmp_path / "huge.pt", torch.full(shape, 1e300, dtype=torch.float64)),
                            "values up to 1e+300"),
        "no matrix": (_code_file(tmp_path / "nomatrix.pt", None), "holds no code matrix"),
        "string matrix": (_code_file(tmp_path / "string.pt", "abc"), "its code is a str, not a matrix"),
        "bool matrix": (_code_file(tmp_path / "bool.pt", torch.ones(shape, dtype=torch.bool)),
                        "its code is a Tensor, not a matrix of numbers"),
        "vector": (_code_file(tmp_path / "vector.pt", torch.ones(8)), "not (rows, 2 * layers)"),
    }


@pytest.mark.parametrize("kind", ["nan", "inf", "1e30", "1e300 (float64)", "no matrix", "string matrix",
                                  "bool matrix", "vector"])
def test_a_damaged_style_code_file_is_one_error_in_stylize_batch_and_styles_add(run, tmp_path, tiny_config, kind):
    codes = tmp_path / "codes"
    codes.mkdir()
    path, match = _bad_codes(codes, _tiny_code_shape(tiny_config))[kind]
    for other in codes.iterdir():
        if other != path:
            other.unlink()
    src = photo(tmp_path / "in" / "a.jpg")
    before = snapshot(tmp_path)
    for args in (["stylize", src, "--style", path, "-o", tmp_path / "out.png"],
                 ["batch", src.parent, "--style", path, "--out", tmp_path / "styled"],
                 ["stylize", src, "--style", "red", "--style", path],  # in a blend too
                 ["styles", "add", "mine", path]):
        line = _one_line_error(run(*args))
        assert str(path) in line and "damaged style code" in line and match in line, line
        assert snapshot(tmp_path) == before, args  # no output, no user style, nothing changed


def test_a_damaged_code_matrix_in_a_direct_library_call_is_a_checkpoint_error(tmp_path):
    from normstyle_core import CheckpointError
    for kind, (path, match) in _bad_codes(tmp_path, (32, 12)).items():
        with pytest.raises(CheckpointError, match="damaged style code") as info:
            StyleCode.load(path)
        assert match in str(info.value), kind


def test_a_sound_code_file_still_loads(tmp_path):
    path = tmp_path / "ok.pt"
    StyleCode(torch.randn(32, 12) * 20, "fine", feedback=True).save(path)
    code = StyleCode.load(path)
    assert code.name == "fine" and code.feedback and code.matrix.shape == (32, 12)


# ------------------------------------------------------------------ renders
def _nan_model(tmp_path, tiny_config):
    """A real checkpoint of the tiny model whose transform weights were damaged to NaN."""
    from normstyle_core.checkpoint import save_checkpoint
    from normstyle_core.models import StyleTransferModel
    model = StyleTransferModel(tiny_config)
    with torch.no_grad():
        next(model.transform.parameters()).fill_(math.nan)
    rows, cols = _tiny_code_shape(tiny_config)
    path = tmp_path / "nan_model.pt"
    save_checkpoint(path, model=model, vgg_source="random", extra={"style_bank": {"red": torch.ones(rows, cols)}})
    return path


def test_a_render_that_comes_out_nan_is_an_error_not_a_black_image(tmp_path, tiny_config):
    from normstyle_core import Stylizer
    from normstyle_core.errors import RenderError
    stylizer = Stylizer.load(_nan_model(tmp_path, tiny_config), device="cpu", precision="fp32")
    with pytest.raises(RenderError, match="NaN or infinite"):
        stylizer.stylize(photo(tmp_path / "a.png"), style="red")


def test_stylize_and_batch_with_a_model_that_renders_nan_fail_and_write_nothing(run, tmp_path, tiny_config):
    model = _nan_model(tmp_path, tiny_config)
    src = photo(tmp_path / "in" / "a.jpg")
    photo(tmp_path / "in" / "b.jpg", seed=1)
    before = snapshot(tmp_path)
    line = _one_line_error(run("stylize", src, "--style", "red", "--model", model, "-o", tmp_path / "o.png"))
    assert "render came out as NaN or infinite" in line
    r = run("batch", src.parent, "--style", "red", "--model", model, "--out", tmp_path / "styled")
    assert r.exit_code != 0 and "render came out as NaN or infinite" in r.stderr, r.output
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "styled").exists() or not any((tmp_path / "styled").rglob("*.*"))


# ------------------------------------------------------------------ foreign .pt files
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _foreign_files(tmp_path):
    rand = tmp_path / "random.pt"
    rand.write_bytes(os.urandom(4096))
    evil4 = tmp_path / "evil4.pt"  # pickle's default protocol: framed, unreadable to torch's reader
    evil4.write_bytes(pickle.dumps({"x": _Evil()}, protocol=4))
    evil2 = tmp_path / "evil2.pt"  # protocol 2: torch's reader gets as far as the global and refuses it
    evil2.write_bytes(pickle.dumps({"x": _Evil()}, protocol=2))
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    return {"random": rand, "evil4": evil4, "evil2": evil2, "empty": empty}


@pytest.mark.parametrize("kind", ["random", "evil4", "evil2", "empty"])
def test_foreign_pt_files_are_named_for_what_they_are_and_never_advise_weights_only(run, tmp_path, kind, recwarn):
    path = _foreign_files(tmp_path)[kind]
    src = photo(tmp_path / "a.jpg")
    before = snapshot(tmp_path)
    for args in (["stylize", src, "--style", path], ["stylize", src, "--style", "red", "--model", path],
                 ["styles", "add", "mine", path]):
        line = _one_line_error(run(*args))
        assert str(path) in line and "was refused" in line, line
        assert "weights_only" not in line and "trusted source" not in line
        if kind == "evil2":
            assert "Python objects other than tensors" in line
        else:  # random bytes hold no Python objects: the old message said they did
            assert "not a normstyle file" in line and "or it is corrupt" in line
            assert "Python objects" not in line
    assert snapshot(tmp_path) == before
    # a warning would reach the terminal as more lines around the one error line
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]


@pytest.mark.parametrize("kind", ["random", "evil2"])
def test_info_on_a_refused_model_reports_it_and_exits_non_zero(run, tmp_path, kind):
    path = _foreign_files(tmp_path)[kind]
    before = snapshot(tmp_path)
    for args in (["info", "--model", path], ["info", "--json", "--model", path]):
        r = run(*args)
        assert r.exit_code == 1, r.output
        assert "was refused" in r.stderr and "weights_only" not in r.output
        assert "versions" in r.stdout  # the rest of the report still comes out
    assert snapshot(tmp_path) == before
