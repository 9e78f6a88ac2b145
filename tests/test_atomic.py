"""normstyle_core.atomic: the one way files are written whole or not at all."""
from __future__ import annotations

import os
import stat

import pytest

from normstyle_core.atomic import default_file_mode, write_atomically, write_bytes_atomically


def test_writes_replace_the_file_and_leave_no_temp(tmp_path):
    target = tmp_path / "a.json"
    target.write_bytes(b"old")
    write_bytes_atomically(target, data=b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    assert stat.S_IMODE(target.stat().st_mode) == default_file_mode()


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp(tmp_path):
    target = tmp_path / "a.json"
    target.write_bytes(b"old")

    def fail(fh):
        fh.write(b"half")
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        write_atomically(target, write=fail)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_temp_is_named_by_the_caller(tmp_path):
    seen = []
    write_atomically(tmp_path / "x.png", write=lambda fh: seen.extend(os.listdir(tmp_path)),
                     prefix=".x.", suffix=".mine.png")
    (name,) = seen
    assert name.startswith(".x.") and name.endswith(".mine.png") and len(name) == len(".x.") + 8 + len(".mine.png")


def test_no_overwrite_refuses_an_existing_file(tmp_path):
    target = tmp_path / "a.png"
    target.write_bytes(b"theirs")
    with pytest.raises(FileExistsError):
        write_atomically(target, write=lambda fh: fh.write(b"ours"), overwrite=False)
    assert target.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_private_keeps_the_file_owner_only(tmp_path):
    write_bytes_atomically(tmp_path / "a", data=b"x", private=True)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o600
