"""More than one machine: `batch --shard K/N`, fsspec URL inputs, `batch --ray` on a local Ray
cluster, and the model's name in output names. Compared against one plain local batch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_fixtures import home, leftovers, photo, raw_run, run, snapshot  # noqa: F401
from normstyle_core import ConfigError, Shard


@pytest.fixture
def photos(tmp_path) -> Path:
    """Eleven photos in two folders (odd counts, so shards differ in size) and one broken file."""
    d = tmp_path / "photos"
    for i in range(8):
        photo(d / f"p{i:02d}.jpg", 48, 36, seed=i)
    for i in range(3):
        photo(d / "sub" / f"q{i}.png", 40, 30, seed=20 + i)
    (d / "broken.jpg").write_text("not a photo")
    return d


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# ------------------------------------------------------------------ Shard itself
def test_shards_partition_any_list_evenly_whatever_its_order():
    keys = [f"f{i:03d}.jpg" for i in range(101)]
    for n in (1, 2, 3, 7, 101, 150):
        parts = [Shard(index=k, count=n).select(keys) for k in range(1, n + 1)]
        flat = [x for p in parts for x in p]
        assert sorted(flat) == keys and len(flat) == len(set(flat))  # each exactly once
        assert max(map(len, parts)) - min(map(len, parts)) <= 1  # dealt out in turn
        shuffled = list(reversed(keys))  # listing order does not matter, only the keys
        assert [Shard(index=k, count=n).select(shuffled) for k in range(1, n + 1)] == parts
    # the independent computation of the deal: sorted, the i-th to shard i % N + 1
    assert Shard(index=2, count=3).select(["c", "a", "e", "b", "d"]) == ["b", "e"]


@pytest.mark.parametrize("text, why", [
    ("0/4", "count from 1"), ("5/4", "between 1 and 4"), ("1/0", "between 1 and 1,000,000"),
    ("2", "K/N"), ("-1/4", "K/N"), ("1.5/4", "K/N"), ("a/b", "K/N"), ("", "K/N"), ("1/4/2", "K/N"),
    ("1/99999999", "K/N"), ("١/٤", "K/N"), ("nan/4", "K/N"), ("1/2000000", "between 1 and 1,000,000")])
def test_a_bad_shard_is_one_clear_error(text, why):
    with pytest.raises(ConfigError, match=why.replace("(", r"\(")):
        Shard.parse(text)


def test_shard_fields_must_be_whole_numbers():
    for bad in (1.0, True, "1", None):
        with pytest.raises(ConfigError, match="whole number"):
            Shard(index=bad, count=2)  # type: ignore[arg-type]


# ------------------------------------------------------------------ --shard
def test_n_shards_write_exactly_the_unsharded_outputs_bit_for_bit(run, tmp_path, photos):
    whole = tmp_path / "whole"
    r = run("batch", photos, "-r", "--style", "red", "--out", whole, "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["failed"] == 1  # broken.jpg
    expected = _files(whole)
    assert len(expected) == 11

    sharded = tmp_path / "sharded"
    written, failed_lines = [], 0
    for k in (1, 2, 3):
        r = run("batch", photos, "-r", "--style", "red", "--out", sharded, "--shard", f"{k}/3", "--json")
        s = json.loads(r.stdout)
        assert s["shard"] == f"{k}/3"
        written.append(s["written"])
        failed_lines += r.stderr.count("broken.jpg")
    assert _files(sharded) == expected  # the same names and the same bytes
    assert sum(written) == 11 and max(written) - min(written) <= 1
    assert failed_lines == 1  # the broken file is reported by one shard only
    assert not leftovers(sharded)


def test_a_killed_shards_rerun_writes_only_what_is_missing(run, tmp_path, photos, monkeypatch):
    from normstyle_core import Stylizer
    out = tmp_path / "out"
    real = Stylizer.stylize
    count = {"n": 0}

    def dies_on_the_third(self, *a, **k):
        count["n"] += 1
        if count["n"] == 3:
            raise KeyboardInterrupt  # as Ctrl-C or a scheduler's SIGINT would
        return real(self, *a, **k)
    monkeypatch.setattr(Stylizer, "stylize", dies_on_the_third)
    r = run("batch", photos, "-r", "--style", "red", "--out", out, "--shard", "1/2", "--json")
    assert r.exit_code == 130
    first = _files(out)
    assert len(first) == 2
    monkeypatch.setattr(Stylizer, "stylize", real)

    r = run("batch", photos, "-r", "--style", "red", "--out", out, "--shard", "1/2", "--json")
    s = json.loads(r.stdout)
    assert r.exit_code in (0, 1) and s["skipped"] == 2 and s["written"] + s["skipped"] + s["failed"] == s["total"]
    after = _files(out)
    assert {k: after[k] for k in first} == first  # what the killed run wrote is untouched
    r = run("batch", photos, "-r", "--style", "red", "--out", out, "--shard", "2/2")
    whole = tmp_path / "whole"
    run("batch", photos, "-r", "--style", "red", "--out", whole)
    assert _files(out) == _files(whole)


@pytest.mark.parametrize("value", ["0/2", "3/2", "x", "1/0", ""])
def test_batch_refuses_a_bad_shard_before_anything_is_written(run, tmp_path, photos, value):
    out = tmp_path / "out"
    r = run("batch", photos, "--style", "red", "--out", out, "--shard", value)
    assert r.exit_code == 2 and "--shard" in r.stderr and "Traceback" not in r.output
    assert not out.exists()


def test_shard_with_dry_run_lists_only_its_part(run, tmp_path, photos):
    listed = []
    for k in (1, 2):
        r = run("batch", photos, "-r", "--style", "red", "--out", tmp_path / "o", "--shard", f"{k}/2",
                "--dry-run", "--json")
        listed.append({f["output"] for f in json.loads(r.stdout)["files"] if f["status"] == "would-write"})
    assert not listed[0] & listed[1] and len(listed[0] | listed[1]) == 12  # broken.jpg too: not decoded
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ URLs and names
def test_file_urls_read_through_fsspec_give_the_same_outputs(run, tmp_path, photos):
    local, remote = tmp_path / "local", tmp_path / "remote"
    run("batch", photos, "-r", "--style", "red", "--out", local)
    r = run("batch", photos.as_uri() + "/", "-r", "--style", "red", "--out", remote, "--json")
    s = json.loads(r.stdout)
    assert r.exit_code == 1 and (s["written"], s["failed"]) == (11, 1)
    assert "broken.jpg" in r.stderr and "file://" in r.stderr  # named as the user named it
    assert _files(remote) == _files(local)


@pytest.mark.parametrize("url, why", [
    ("nosuchproto://bucket/x/", "cannot read"),
    ("file:///nonexistent-normstyle-folder/", "no such file or folder"),
])
def test_a_bad_url_is_one_failure_line(run, tmp_path, url, why):
    r = run("batch", url, "--style", "red", "--out", tmp_path / "o", "--json")
    assert r.exit_code == 1 and why in r.stderr and json.loads(r.stdout)["failed"] == 1
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_out_may_not_be_a_url(run, tmp_path, photos, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("batch", photos, "--style", "red", "--out", "s3://bucket/out")
    assert r.exit_code == 2 and "not a URL" in r.stderr
    assert not (tmp_path / "s3:").exists()  # not taken for a local folder named "s3:"


def test_outputs_name_a_model_other_than_the_shipped_one(run, tmp_path, tiny_model_file):
    src = photo(tmp_path / "a.jpg")
    assert run("stylize", src, "--style", "red").exit_code == 0
    assert (tmp_path / "a_red_model-tiny.jpg").is_file()
    run_dir = tmp_path / "runs" / "mine"
    run_dir.mkdir(parents=True)
    os.link(tiny_model_file, run_dir / "ckpt_0000250.pt")
    r = run("stylize", src, "--style", "red", "--model", run_dir)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "a_red_model-mine.jpg").is_file()
    r = run("stylize", src, "--style", "red", "--model", run_dir / "ckpt_0000250.pt", "--strength", "0.5")
    assert (tmp_path / "a_red_strength0.5_model-mine-ckpt-0000250.jpg").is_file(), r.output


def test_the_shipped_model_adds_nothing_to_names(tmp_path):
    from cli.pipeline import model_tag
    import normstyle_core
    shipped = Path(normstyle_core.__file__).parent / "assets" / "default.pt"
    assert model_tag(None) is None and model_tag(shipped) is None
    assert model_tag(tmp_path / "we ird;name.pt") == "we-ird-name"


# ------------------------------------------------------------------ Ray
def test_ray_address_is_checked_before_anything_starts(run, tmp_path, photos):
    r = run("batch", "--style", "red", "--out", tmp_path / "o", "--ray", str(photos))
    assert r.exit_code == 2 and "not a cluster address" in r.stderr
    r = run("batch", photos, "--style", "red", "--out", tmp_path / "o", "--ray=127.0.0.1:1")
    assert r.exit_code == 1 and "nothing answers there" in r.stderr
    assert not any(p.is_file() for p in (tmp_path / "o").rglob("*")) if (tmp_path / "o").exists() else True


def test_ray_runner_on_a_local_cluster_matches_the_local_batch(tmp_path, photos, tiny_model_file):
    """A real local Ray cluster (2 CPUs: two actors), run as a user would: a subprocess. A broken
    file and an existing output in the folder: the same outputs as the local batch, bit for bit,
    one failure reported, the existing file skipped and untouched."""
    pytest.importorskip("ray")
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    env = dict(os.environ, NORMSTYLE_MODEL=str(tiny_model_file), NORMSTYLE_HOME=str(tmp_path / "home"),
               OMP_NUM_THREADS="1")

    def normstyle(*args):
        return subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], env=env, capture_output=True,
                              text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    r = normstyle("batch", photos, "-r", "--style", "red", "--out", local, "--json")
    assert r.returncode == 1, r.stderr
    on_ray.mkdir()
    (on_ray / "p03_red_model-tiny.jpg").write_bytes(b"made by hand earlier")
    r = normstyle("batch", photos, "-r", "--style", "red", "--out", on_ray, "--json", "--ray")
    assert r.returncode == 1, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert (s["written"], s["skipped"], s["failed"], s["runner"]) == (10, 1, 1, "ray")
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith("failed:")]
    assert len(failed) == 1 and "broken.jpg" in failed[0]
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr  # nothing from Ray itself
    expected = _files(local)
    expected["p03_red_model-tiny.jpg"] = b"made by hand earlier"
    assert _files(on_ray) == expected
    assert not leftovers(on_ray)


def test_without_ray_installed_ray_is_one_line_naming_the_extra(run, tmp_path, photos, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    out = tmp_path / "o"
    r = run("batch", photos, "--style", "red", "--out", out, "--ray")
    assert r.exit_code == 1 and 'pip install "normstyle[ray]"' in r.stderr
    assert not any(p.is_file() for p in out.rglob("*")) if out.exists() else True


def test_a_ray_actor_reports_a_full_disk_as_such_and_a_bad_photo_as_a_row(tmp_path, photos, tiny_model_file,
                                                                          monkeypatch):
    """The actor itself, in this process: each photo one row, never an exception out of it."""
    import errno
    import numpy as np
    from cli.pipeline import Options, collect_inputs, plan
    from cli.ray_runner import EngineSpec, RenderActor
    from normstyle_core import Stylizer
    inputs, _ = collect_inputs([str(photos)], recursive=False)
    jobs = plan(inputs, out_dir=tmp_path / "o", out_file=None, template="{stem}.{ext}", style="red", fmt="same",
                strength=1.0, overwrite=False, skip_existing=False)
    code = Stylizer.load(tiny_model_file, device="cpu").style("red")
    actor = RenderActor(engine=EngineSpec(model_path=str(tiny_model_file), device="cpu", precision="fp32",
                                          threads=1), code=code, opts=Options())
    bad = next(j for j in jobs if j.src.name == "broken.jpg")
    good = next(j for j in jobs if j.src.name == "p00.jpg")
    rows = actor({"index": np.array([bad.index, good.index]), "job": np.array([bad, good], dtype=object)})
    assert rows["status"] == ["failed", "ok"] and "broken.jpg" in rows["error"][0] and rows["disk_full"] == [False, False]

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr("normstyle_core.imaging.save_image", no_space)
    other = next(j for j in jobs if j.src.name == "p01.jpg")
    rows = actor({"index": np.array([other.index]), "job": np.array([other], dtype=object)})
    assert rows["status"] == ["failed"] and rows["disk_full"] == [True] and "space" in rows["error"][0]


def test_an_input_named_by_a_file_url_is_never_overwritten(run, tmp_path, photos):
    """file:// names a local file: the output policy protects it as it protects a path."""
    before = snapshot(photos)
    r = run("batch", photos.as_uri() + "/", "--style", "red", "--out", photos, "--name", "{stem}.{ext}",
            "--overwrite", "--json")
    assert r.exit_code == 1 and r.stderr.count("the input itself") == 9, r.output  # 8 photos and broken.jpg
    assert snapshot(photos) == before
