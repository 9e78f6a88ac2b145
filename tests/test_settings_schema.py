"""Each render setting is declared once (normstyle_core/options.py: RenderOptions' field
metadata) and every front-end takes its range from there (issue #37): the CLI's options, the
GIMP worker's checks and RenderOptions itself; a wrong value is one line wherever it enters."""
from __future__ import annotations

import dataclasses
import math

import click
import pytest

from normstyle_core.errors import StyleError
from normstyle_core.options import MAX_SIZE, STROKE_SCALE, STRENGTH, RenderOptions


def _param(command: click.Command, name: str) -> click.Parameter:
    return next(p for p in command.params if p.name == name)


@pytest.mark.parametrize("command_name", ["stylize", "batch"])
@pytest.mark.parametrize("setting", ["strength", "stroke_scale", "max_size"])
def test_cli_options_come_from_the_declaration(command_name, setting):
    from cli.main import cli
    from cli.main import _register  # noqa: F401 - commands are registered on import of cli.main
    command = cli.commands[command_name] if command_name in cli.commands else cli.get_command(None, command_name)
    declared = RenderOptions.ranges()[setting]
    param = _param(command, setting)
    assert param.opts == [declared.flag] and param.help == declared.help
    assert (param.type.min, param.type.max) == (declared.minimum, declared.maximum)
    default = next(f.default for f in dataclasses.fields(RenderOptions) if f.name == setting)
    assert param.default == default


def test_eval_and_worker_take_the_stroke_scale_range_from_it():
    from cli.eval_cmd import eval_command
    from cli.gimp_worker import MAX_STROKE_SCALE
    param = _param(eval_command, "stroke_scale")
    assert (param.type.min, param.type.max) == (STROKE_SCALE.minimum, STROKE_SCALE.maximum)
    assert MAX_STROKE_SCALE == STROKE_SCALE.maximum


def test_changing_a_declared_range_changes_the_option_and_the_check(monkeypatch):
    from cli.options import setting_option
    narrower = dataclasses.replace(STROKE_SCALE, maximum=2.0)
    fields = {f.name: f for f in dataclasses.fields(RenderOptions)}
    monkeypatch.setattr(RenderOptions, "ranges", staticmethod(lambda: {"stroke_scale": narrower}))

    @click.command()
    @setting_option("stroke_scale")
    def cmd(stroke_scale):
        pass
    assert _param(cmd, "stroke_scale").type.max == 2.0
    assert fields["stroke_scale"].metadata["range"] is STROKE_SCALE  # the real declaration is untouched


BAD = [
    ("strength", math.nan), ("strength", math.inf), ("strength", -0.01), ("strength", 1.01), ("strength", "0.5"),
    ("strength", True), ("strength", None),
    ("stroke_scale", -1.0), ("stroke_scale", 16.5), ("stroke_scale", math.inf), ("stroke_scale", math.nan),
    ("stroke_scale", "2"), ("stroke_scale", False),
    ("max_size", 15), ("max_size", 0), ("max_size", -5), ("max_size", 1.5), ("max_size", 1 << 40),
    ("max_size", True), ("max_size", "512"), ("max_size", math.nan),
    ("preserve_color", "yes"), ("preserve_color", 1), ("preserve_color", None),
    ("feedback", "maybe"), ("feedback", 0),
]


@pytest.mark.parametrize("name,value", BAD)
def test_render_options_refuse_a_bad_value_in_one_line(name, value):
    with pytest.raises(StyleError) as err:
        RenderOptions(**{name: value})
    assert "\n" not in str(err.value) and repr(value) in str(err.value)


@pytest.mark.parametrize("name,value,want", [("strength", 0, 0.0), ("strength", 1, 1.0), ("stroke_scale", 0, 0.0),
                                             ("stroke_scale", 16, 16.0), ("max_size", 16, 16),
                                             ("max_size", MAX_SIZE.maximum, MAX_SIZE.maximum)])
def test_the_ends_of_each_range_are_accepted(name, value, want):
    got = getattr(RenderOptions(**{name: value}), name)
    assert got == want and type(got) is RenderOptions.ranges()[name].kind


@pytest.mark.parametrize("flag,value", [("--strength", "nan"), ("--strength", "1.5"), ("--stroke-scale", "inf"),
                                        ("--stroke-scale", "17"), ("--max-size", "15"), ("--max-size", "1e3"),
                                        ("--max-size", str(1 << 40))])
def test_the_cli_refuses_them_in_one_line_before_any_work(tmp_path, flag, value):
    from click.testing import CliRunner

    from cli.main import cli
    photo = tmp_path / "p.png"
    from PIL import Image
    Image.new("RGB", (20, 20)).save(photo)
    r = CliRunner().invoke(cli, ["stylize", str(photo), "--style", "udnie", flag, value])
    assert r.exit_code == 2 and flag in r.output and "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


def test_strength_keeps_its_own_checker_name():
    from normstyle_core.options import check_strength
    assert check_strength(0.25) == 0.25 and STRENGTH.label == "strength"
