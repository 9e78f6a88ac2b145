"""`normstyle gimp install/uninstall/doctor` with Click's CliRunner and a tmp --plugins-dir."""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.gimp_cmd import gimp
from cli import gimp_install as install


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture(autouse=True)
def _own_data_home(tmp_path, monkeypatch):
    """install notes its plug-ins folder in normstyle's data folder: not the real user's."""
    monkeypatch.setenv("NORMSTYLE_HOME", str(tmp_path / "normstyle-home"))


def _fake_gimp(folder: Path, name: str, version: str) -> Path:
    """An executable called ``name`` that prints GIMP's --version line."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / name
    exe.write_text(f"#!/bin/sh\necho 'GNU Image Manipulation Program version {version}'\n")
    exe.chmod(0o755)
    return exe


@pytest.fixture(autouse=True)
def _gimp3_on_path(tmp_path, monkeypatch):
    """The installs below mean a machine with GIMP 3: a fake gimp-3.0 first on PATH."""
    _fake_gimp(tmp_path / "gimp-bin", "gimp-3.0", "3.0.4")
    monkeypatch.setenv("PATH", f"{tmp_path / 'gimp-bin'}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.fixture
def no_gimp(tmp_path, monkeypatch):
    """A machine without GIMP: nothing on PATH, no install places, no GIMP user folder."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(install, "GIMP_PLACES", (str(tmp_path / "Applications" / "GIMP.app"),))
    monkeypatch.delenv("GIMP3_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return empty


def test_install_without_gimp3_refuses_and_says_where_it_looked(runner, tmp_path, no_gimp):
    plugins = tmp_path / "plug-ins"
    res = runner.invoke(gimp, ["install", "--plugins-dir", str(plugins), "--no-check"])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: no GIMP 3 found"), res.output
    for place in ("PATH for gimp-3.0", str(tmp_path / "Applications" / "GIMP.app"),
                  str(tmp_path / "config" / "GIMP")):
        assert place in lines[0]
    assert "--force" in lines[0]
    assert not plugins.exists()  # nothing written


def test_install_without_gimp3_with_force_installs_and_warns(runner, tmp_path, no_gimp):
    plugins = tmp_path / "plug-ins"
    res = runner.invoke(gimp, ["install", "--plugins-dir", str(plugins), "--no-check", "--force"])
    assert res.exit_code == 0, res.output
    assert "warning: no GIMP 3 found" in res.output and "installing anyway" in res.output
    assert (plugins / "normstyle_gimp" / "normstyle_gimp.py").is_file()


def test_a_gimp_2_on_path_is_not_gimp_3(runner, tmp_path, no_gimp):
    _fake_gimp(no_gimp, "gimp", "2.10.34")
    res = runner.invoke(gimp, ["install", "--plugins-dir", str(tmp_path / "p"), "--no-check"])
    assert res.exit_code == 1 and f"{no_gimp / 'gimp'} is GIMP 2, not 3" in res.output
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("name,version", [("gimp", "3.0.4"), ("gimp-3", "3.0.0"), ("gimp-console-3.0", "3.0.4")])
def test_a_gimp_3_on_path_is_found(tmp_path, no_gimp, name, version):
    exe = _fake_gimp(no_gimp, name, version)
    assert install.locate_gimp3()[0] == str(exe)


def test_gimp_3s_user_folder_counts_as_gimp_3(tmp_path, no_gimp):
    # a GIMP 3 that ran once for this user, installed where no search looks
    (tmp_path / "config" / "GIMP" / "3.0").mkdir(parents=True)
    assert install.locate_gimp3()[0] == str(tmp_path / "config" / "GIMP" / "3.0")
    (tmp_path / "config" / "GIMP" / "3.0").rmdir()
    (tmp_path / "config" / "GIMP" / "2.10").mkdir(parents=True)  # GIMP 2's folder is not GIMP 3
    assert install.locate_gimp3()[0] is None


def test_install_copies_plugin_and_writes_config(runner, tmp_path, tiny_model_file):
    plugins = tmp_path / "plug-ins"
    res = runner.invoke(gimp, ["install", "--plugins-dir", str(plugins), "--model", str(tiny_model_file)])
    assert res.exit_code == 0, res.output
    target = plugins / "normstyle_gimp"
    main = target / "normstyle_gimp.py"  # folder name == file name, executable
    assert main.is_file() and main.stat().st_mode & stat.S_IXUSR
    assert (target / "nsclient.py").is_file()
    cfg = json.loads((target / "normstyle.json").read_text())
    assert cfg["python"] == sys.executable
    assert cfg["model"] == str(tiny_model_file.resolve())
    assert cfg["styles"] == ["blue", "red"]
    assert cfg["worker"] == "daemon"
    assert "styles: blue, red" in res.output


def test_install_is_idempotent_and_options_stick(runner, tmp_path, tiny_model_file):
    plugins = tmp_path / "plug-ins"
    args = ["install", "--plugins-dir", str(plugins), "--model", str(tiny_model_file)]
    assert runner.invoke(gimp, args).exit_code == 0
    res = runner.invoke(gimp, args + ["--worker", "oneshot", "--idle-timeout", "5", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((plugins / "normstyle_gimp" / "normstyle.json").read_text())
    assert (cfg["worker"], cfg["idle_timeout"], cfg["device"]) == ("oneshot", 5.0, "cpu")


def test_install_without_a_model_warns_and_offers_style_images(runner, tmp_path, monkeypatch):
    monkeypatch.setenv("NORMSTYLE_MODEL", str(tmp_path / "missing.pt"))
    res = runner.invoke(gimp, ["install", "--plugins-dir", str(tmp_path / "p")])
    assert res.exit_code == 0, res.output
    assert "warning: no built-in styles" in res.output and "model file not found" in res.output
    cfg = json.loads((tmp_path / "p" / "normstyle_gimp" / "normstyle.json").read_text())
    assert cfg["styles"] == []


def test_install_rejects_a_missing_python(runner, tmp_path):
    res = runner.invoke(gimp, ["install", "--plugins-dir", str(tmp_path), "--python", str(tmp_path / "nope")])
    assert res.exit_code != 0
    assert not (tmp_path / "normstyle_gimp").exists()


def test_install_reports_a_python_without_normstyle(runner, tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'No module named cli' >&2\nexit 1\n")
    fake.chmod(0o755)
    res = runner.invoke(gimp, ["install", "--plugins-dir", str(tmp_path / "p"), "--python", str(fake)])
    assert res.exit_code == 1
    assert "cannot run the normstyle worker" in res.output and "Traceback" not in res.output


def test_uninstall(runner, tmp_path, tiny_model_file):
    plugins = tmp_path / "plug-ins"
    runner.invoke(gimp, ["install", "--plugins-dir", str(plugins), "--no-check"])
    res = runner.invoke(gimp, ["uninstall", "--plugins-dir", str(plugins)])
    assert res.exit_code == 0 and "removed" in res.output
    assert not (plugins / "normstyle_gimp").exists()
    res = runner.invoke(gimp, ["uninstall", "--plugins-dir", str(plugins)])
    assert res.exit_code == 0 and "nothing to remove" in res.output


def test_uninstall_leaves_foreign_folders_alone(runner, tmp_path):
    (tmp_path / "normstyle_gimp").mkdir()
    (tmp_path / "normstyle_gimp" / "other.py").write_text("")
    res = runner.invoke(gimp, ["uninstall", "--plugins-dir", str(tmp_path)])
    assert res.exit_code == 1 and "does not look like" in res.output
    assert (tmp_path / "normstyle_gimp" / "other.py").exists()


def test_doctor_reports_missing_then_ok(runner, tmp_path, tiny_model_file):
    plugins = tmp_path / "plug-ins"
    res = runner.invoke(gimp, ["doctor", "--plugins-dir", str(plugins)])
    assert res.exit_code == 1
    assert "MISSING" in res.output and "normstyle gimp install" in res.output
    runner.invoke(gimp, ["install", "--plugins-dir", str(plugins), "--model", str(tiny_model_file)])
    res = runner.invoke(gimp, ["doctor", "--plugins-dir", str(plugins)])
    assert res.exit_code == 0, res.output
    assert "2 built-in styles: blue, red" in res.output and "MISSING" not in res.output


def test_doctor_finds_a_stale_copy_and_a_broken_python(runner, tmp_path, tiny_model_file):
    plugins = tmp_path / "plug-ins"
    runner.invoke(gimp, ["install", "--plugins-dir", str(plugins), "--model", str(tiny_model_file)])
    target = plugins / "normstyle_gimp"
    (target / "nsclient.py").write_text("# old\n")
    cfg = json.loads((target / "normstyle.json").read_text())
    cfg["python"] = str(tmp_path / "gone" / "python")
    (target / "normstyle.json").write_text(json.dumps(cfg))
    res = runner.invoke(gimp, ["doctor", "--plugins-dir", str(plugins)])
    assert res.exit_code == 1
    assert "differs: nsclient.py" in res.output and "not found" in res.output


@pytest.mark.parametrize("platform, env, expected", [
    ("linux", {}, "HOME/.config/GIMP/3.0/plug-ins"),
    ("linux", {"XDG_CONFIG_HOME": "/x"}, "/x/GIMP/3.0/plug-ins"),
    ("win32", {"APPDATA": "/appdata"}, "/appdata/GIMP/3.0/plug-ins"),
    ("darwin", {}, "HOME/Library/Application Support/GIMP/3.0/plug-ins"),
    ("linux", {"GIMP3_DIRECTORY": "/g"}, "/g/plug-ins"),
])
def test_default_plugins_dir(platform, env, expected):
    got = install.default_plugins_dir(platform, env, home=Path("HOME"))
    assert got == Path(expected)


def test_cli_module_is_import_light():
    import subprocess
    code = ("import sys, cli.gimp_cmd; "
            "bad = [m for m in ('torch', 'numpy', 'PIL', 'normstyle_core') if m in sys.modules]; "
            "print(bad); sys.exit(bool(bad))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert res.returncode == 0, res.stdout + res.stderr


def test_default_plugins_dir_follows_gimp_3_2(tmp_path):
    """GIMP 3.2 reads GIMP/3.2/plug-ins (its first start copies 3.0's folder, later installs
    into 3.0 would not be seen): the newest 3.x user folder wins, 3.0 when there is none."""
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert install.default_plugins_dir("linux", env) == tmp_path / "GIMP" / "3.0" / "plug-ins"
    (tmp_path / "GIMP" / "3.0").mkdir(parents=True)
    (tmp_path / "GIMP" / "3.2").mkdir()
    (tmp_path / "GIMP" / "3.10-notes").mkdir()
    assert install.default_plugins_dir("linux", env) == tmp_path / "GIMP" / "3.2" / "plug-ins"
