"""Every float option of every command refuses NaN and infinity in one line (issue #37): Click's
FloatRange lets NaN through, so each one is cli.common.FiniteFloat."""
from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from cli.common import FiniteFloat
from cli.main import cli


def all_commands(group: click.Group, ctx: click.Context | None = None, prefix=()):
    ctx = ctx or click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from all_commands(command, click.Context(command, parent=ctx), prefix + (name,))
        else:
            yield prefix + (name,), command


COMMANDS = list(all_commands(cli))
FLOAT_OPTIONS = [(path, p) for path, c in COMMANDS for p in c.params
                 if isinstance(p.type, click.types.FloatParamType)]


def test_there_are_float_options_to_check():
    assert len(FLOAT_OPTIONS) >= 8


@pytest.mark.parametrize("path,param", FLOAT_OPTIONS, ids=lambda v: "-".join(v) if isinstance(v, tuple) else v.name)
def test_each_float_option_is_finite(path, param):
    assert isinstance(param.type, FiniteFloat), f"{' '.join(path)} {param.opts[0]} must use cli.common.FiniteFloat"


@pytest.mark.parametrize("path,param", FLOAT_OPTIONS, ids=lambda v: "-".join(v) if isinstance(v, tuple) else v.name)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_each_float_option_refuses_non_finite_values_in_one_line(path, param, value):
    ctx = click.Context(click.Command("x"))
    with pytest.raises(click.BadParameter) as err:
        param.type.convert(value, param, ctx)
    assert "finite" in str(err.value.message) or "range" in str(err.value.message)


def test_train_max_minutes_zero_is_refused_not_unlimited(tmp_path):
    (tmp_path / "c").mkdir()
    r = CliRunner().invoke(cli, ["train", str(tmp_path / "c"), "--style", str(tmp_path / "c"), "--out",
                                 str(tmp_path / "run"), "--max-minutes", "0"])
    assert r.exit_code == 2 and "--max-minutes" in r.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args", [["train", "C", "--style", "C", "--out", "RUN", "--lr", "nan"],
                                  ["train", "C", "--style", "C", "--out", "RUN", "--max-minutes", "nan"],
                                  ["gimp", "serve", "--idle-timeout", "nan"],
                                  ["stylize", "P", "--style", "udnie", "--strength", "inf"]])
def test_the_cli_answers_in_one_line(tmp_path, args):
    (tmp_path / "c").mkdir()
    (tmp_path / "p.png").write_bytes(b"")
    where = {"C": str(tmp_path / "c"), "RUN": str(tmp_path / "run"), "P": str(tmp_path / "p.png")}
    r = CliRunner().invoke(cli, [where.get(a, a) for a in args])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "is not a finite number" in r.output or "is not in the range" in r.output, r.output
    assert not (tmp_path / "run").exists()
