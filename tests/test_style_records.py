"""The user style bank's records are validated (issue #37): a record that points outside the
bank, at the record itself or at a symlink is refused, reported and skipped; `styles remove`
deletes only the bank's own files (also for a damaged record) and `styles add --force` repairs."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def normstyle(*args, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NORMSTYLE_")}
    env["NORMSTYLE_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def bank(tmp_path) -> Path:
    folder = tmp_path / "home" / "styles"
    folder.mkdir(parents=True)
    Image.new("RGB", (32, 32), (200, 40, 40)).save(folder / "good.png")
    (folder / "good.json").write_text(json.dumps({"name": "good", "kind": "image", "file": "good.png",
                                                  "source": "x", "added": 1.0}))
    return folder


def victim(tmp_path) -> Path:
    path = tmp_path / "precious.txt"
    path.write_text("the user's own file")
    return path


BAD_RECORDS = {
    "outside, absolute": lambda v: {"kind": "image", "file": str(v)},
    "outside, relative": lambda v: {"kind": "image", "file": "../../precious.txt"},
    "another style's file": lambda v: {"kind": "image", "file": "good.png"},
    "the record itself": lambda v: {"kind": "image", "file": "evil.json"},
    "an unknown kind": lambda v: {"kind": "script", "file": "evil.png"},
    "a list": lambda v: ["kind", "file"],
    "not json": lambda v: "{",
    "a number for file": lambda v: {"kind": "image", "file": 7},
    "nan added": lambda v: {"kind": "image", "file": "evil.png", "added": float("nan")},
    "empty": lambda v: "",
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_a_bad_record_is_reported_skipped_and_removed_safely(tmp_path, bank, case):
    precious = victim(tmp_path)
    record = BAD_RECORDS[case](precious)
    (bank / "evil.json").write_text(record if isinstance(record, str) else json.dumps(record))
    r = normstyle("styles", "list", home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    assert re.search(r"\bgood\b", r.stdout) and not re.search(r"\bevil\b", r.stdout)
    warnings = [line for line in r.stderr.splitlines() if re.search(r"\bevil\b", line)]
    assert len(warnings) == 1 and "damaged" in warnings[0] and "styles remove evil" in warnings[0]
    r = normstyle("styles", "list", "--json", home=tmp_path / "home")
    assert r.returncode == 0 and len(json.loads(r.stdout)["damaged"]) == 1
    Image.new("RGB", (40, 30), (90, 90, 90)).save(tmp_path / "p.png")
    r = normstyle("stylize", tmp_path / "p.png", "--style", "evil", home=tmp_path / "home")
    assert r.returncode != 0 and "damaged" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not list(tmp_path.glob("p_*"))
    r = normstyle("styles", "remove", "evil", home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    assert precious.read_text() == "the user's own file"
    assert (bank / "good.png").is_file() and (bank / "good.json").is_file()
    assert not (bank / "evil.json").exists()


def test_a_symlinked_data_file_is_refused_and_remove_keeps_its_target(tmp_path, bank):
    precious = victim(tmp_path)
    (bank / "evil.png").symlink_to(precious)
    (bank / "evil.json").write_text(json.dumps({"kind": "image", "file": "evil.png"}))
    r = normstyle("styles", "list", home=tmp_path / "home")
    assert r.returncode == 0 and "damaged" in r.stderr
    assert normstyle("styles", "remove", "evil", home=tmp_path / "home").returncode == 0
    assert precious.read_text() == "the user's own file" and not (bank / "evil.png").is_symlink()


def test_add_force_repairs_a_damaged_record_and_plain_add_refuses(tmp_path, bank):
    (bank / "evil.json").write_text("{")
    painting = tmp_path / "painting.png"
    Image.new("RGB", (40, 40), (10, 90, 200)).save(painting)
    r = normstyle("styles", "add", "evil", painting, home=tmp_path / "home")
    assert r.returncode != 0 and "--force" in r.stderr
    r = normstyle("styles", "add", "evil", painting, "--force", home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    r = normstyle("styles", "list", home=tmp_path / "home")
    assert re.search(r"\bevil\b", r.stdout) and "damaged" not in r.stderr


def test_a_style_image_named_json_does_not_overwrite_its_record(tmp_path):
    painting = tmp_path / "paint.json"
    Image.new("RGB", (40, 40), (10, 90, 200)).save(painting, format="PNG")
    home = tmp_path / "home"
    r = normstyle("styles", "add", "x", painting, home=home)
    assert r.returncode == 0, r.stderr
    record = json.loads((home / "styles" / "x.json").read_text())
    assert record["file"] != "x.json" and (home / "styles" / record["file"]).is_file()
    r = normstyle("styles", "list", home=home)
    assert r.returncode == 0 and re.search(r"^\W*x\b", r.stdout, flags=re.M) and "damaged" not in r.stderr
