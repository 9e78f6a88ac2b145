"""The GIMP dialog's preview latency in a real GIMP 3 (issue #39): from a setting change to the
preview's pixels drawn in the dialog, and from the menu to the first preview.

Runs the GIMP 3 GUI (Xvfb, in the trixie chroot of tests/gimp_harness/; needs root) with the
shipped model on a photo-sized layer, and drives it from the keyboard as a user would
(tests/gimp_harness/preview_bench_inside.sh): Filters > Style Transfer > Apply Style... is
opened ``--opens`` times (the first one starts the worker, the others find it running; Cancel
closes each), and in the first dialog the strength is typed in five times, the style changed
four times and the brush size four times, each change waited on until its preview is drawn
and a second passes without another.

Times come from the plug-in's trace (NORMSTYLE_GIMP_TRACE): when a setting change reached the
dialog (its ``notify``) and when the Gtk.Image holding the preview was next drawn (its ``draw``
signal), both on the plug-in's clock; "key to pixels" adds the time from xdotool's key to the
notify. "worker" is the worker's own time for the request (``seconds``). The photo is
scikit-image's astronaut (NASA, public domain) resized to each size; the whole layer is selected.

    python benchmarks/gimp_preview.py                     # 1 MP and 12 MP, ~3 minutes idle
    python benchmarks/gimp_preview.py --sizes 1155x866 --opens 3
    chrt -r 10 python benchmarks/gimp_preview.py          # on a machine busy with other jobs

On a machine shared with other jobs, ``chrt -r 10`` runs GIMP, the plug-in and the worker at a
real-time priority, so that they get the two cores whenever they want them (the other jobs fill
the gaps): the nearest to an idle machine that does not stop anyone's work. ``nice`` does not do
it: the worker starts its own session, and the kernel's autogroup scheduling weighs sessions
alike whatever their nice value.

Prints a markdown table (for benchmarks/RESULTS.md). No timed assertions: this measures.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

INSIDE = REPO / "tests" / "gimp_harness" / "preview_bench_inside.sh"


def make_layer(path: Path, w: int, h: int) -> None:
    import numpy as np
    from PIL import Image
    from skimage import data

    rgb = Image.fromarray(data.astronaut()).resize((w, h), Image.Resampling.LANCZOS)
    rgba = np.dstack([np.asarray(rgb), np.full((h, w), 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(path, compress_level=1)


def run_size(root: Path, work: Path, w: int, h: int, *, opens: int, model: str | None) -> dict:
    from gimp_harness import harness

    from cli import gimp_install as install

    work.mkdir(parents=True, exist_ok=True)
    make_layer(work / "input.png", w, h)
    install.install(work / "plug-ins", model=model)
    version = harness.gimp_version(root)
    env = dict(harness.gimp_env(work, version), NS_SELECTION=f"0 0 {w} {h}", NS_GIMP=f"gimp-{version}",
               NS_OPENS=str(opens))
    t0 = time.monotonic()
    res = harness.run_in_chroot(root, ["bash", str(INSIDE), str(work)], rw=[work], env=env, timeout=1200)
    (work / "bench-run.log").write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        trace = (work / "trace.jsonl").read_text()[-3000:] if (work / "trace.jsonl").exists() else ""
        raise RuntimeError(f"GIMP run failed ({res.returncode}) after {time.monotonic() - t0:.0f} s:\n"
                           f"{(res.stdout + res.stderr)[-3000:]}\ntrace: {trace}\nsee {work} (--work keeps it)")
    trace = [json.loads(line) for line in (work / "trace.jsonl").read_text().splitlines()]
    marks = [json.loads(line) for line in (work / "marks.jsonl").read_text().splitlines()]
    return analyse(trace, marks)


def analyse(trace: list[dict], marks: list[dict]) -> dict:
    """Per kind of step: the times of each (see the module doc)."""
    runs = [e["pid"] for e in trace if e["kind"] == "run"]
    by_pid = {pid: [e for e in trace if e["pid"] == pid] for pid in runs}
    rows: dict[str, list[dict]] = {}
    # the last try of each opening (preview_bench_inside.sh walks the menu again if no dialog came)
    opens = list({m["step"]: m for m in marks if m["step"].startswith("open-")}.values())
    for i, (m, pid) in enumerate(zip(opens, runs)):
        ev = by_pid[pid]
        first = next(e for e in ev if e["kind"] == "drawn" and e["n"] == 1)
        preview = next(e for e in ev if e["kind"] == "preview" and e["n"] == 1)
        shown = next((e for e in ev if e["kind"] == "dialog-shown"), None)
        run = next(e for e in ev if e["kind"] == "run")
        rows.setdefault("first preview, worker not running" if i == 0 else
                        "first preview, worker running", []).append({
            "key": first["t"] - m["t"], "plugin": first["t"] - run["t"],
            "shown": first["t"] - shown["t"] if shown else None, "worker": preview["seconds"],
            "stages": preview.get("stages") or {},
            "to_dialog": (shown["t"] - m["t"]) if shown else None})
    first_run = by_pid[runs[0]]
    steps = [m for m in marks if not m["step"].startswith("open-")]
    ends = [m["t"] for m in marks[1:]] + [float("inf")]
    end_of = {id(m): e for m, e in zip(marks, ends)}
    previous = None
    for m in steps:
        lo, hi = m["t"], end_of[id(m)]
        drawn = [e for e in first_run if e["kind"] == "drawn" and lo <= e["t"] < hi]
        changed = [e for e in first_run if e["kind"] == "changed" and lo - 0.05 <= e["t"] < hi]
        if not drawn:
            raise RuntimeError(f"no preview drawn after {m['step']}")
        last = drawn[-1]
        preview = next(e for e in first_run if e["kind"] == "preview" and e["n"] == last["n"])
        kind, _, value = m["step"].partition("-")
        settings = preview["settings"]
        if kind == "strength":
            assert abs(settings["strength"] - float(value)) < 1e-6, (m, settings)
        elif kind == "brush":
            assert abs(settings["stroke_scale"] - float(value)) < 1e-6, (m, settings)
        elif kind == "style":
            assert previous is not None and settings["style"] != previous["style"], (m, settings)
        previous = settings
        name = {"strength": "strength change", "style": "style change",
                "brush": "brush size change"}[kind]
        rows.setdefault(name, []).append({
            "key": last["t"] - m["t"], "plugin": last["latency"], "worker": preview["seconds"],
            "stages": preview.get("stages") or {},
            "previews": len(drawn), "notify": (changed[-1]["t"] - m["t"]) if changed else None,
            "settings": settings})
    return rows


def _median(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{statistics.median(values):.2f}" + (f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else "")


def table(results: dict[str, dict]) -> str:
    lines = ["| layer | step | n | key to pixels, s | change to pixels, s | worker, s | note |",
             "|---|---|---:|---:|---:|---:|---|"]
    for layer, rows in results.items():
        for name, items in rows.items():
            if name.startswith("first preview"):
                note = ("menu key to dialog shown " + _median([i["to_dialog"] for i in items]) +
                        " s; dialog shown to pixels " + _median([i["shown"] for i in items]) + " s")
                change = _median([i["plugin"] for i in items])
            else:
                note = f"previews drawn per change: {max(i['previews'] for i in items)} at most"
                change = _median([i["plugin"] for i in items])
            lines.append(f"| {layer} | {name} | {len(items)} | {_median([i['key'] for i in items])} | "
                         f"{change} | {_median([i['worker'] for i in items])} | {note} |")
    stages = sorted({k for rows in results.values() for items in rows.values() for i in items
                     for k in i["stages"]}, key=STAGES.index)
    if stages:
        lines += ["", "Where the worker's time went (medians, s; `stages` of its answer):", "",
                  "| layer | step | " + " | ".join(stages) + " |", "|---|---|" + "---:|" * len(stages)]
        for layer, rows in results.items():
            for name, items in rows.items():
                lines.append(f"| {layer} | {name} | " + " | ".join(
                    _median([i["stages"].get(k) for i in items]).split(" ")[0] for k in stages) + " |")
    return "\n".join(lines)


STAGES = ["wait", "model", "layer", "paint", "fade+scale+write"]


def main(argv=None) -> int:
    from gimp_harness import harness

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1155x866,4000x3000", help="layer sizes WxH, comma-separated")
    p.add_argument("--opens", type=int, default=4, help="times the dialog is opened per size")
    p.add_argument("--model", help="model file (default: the shipped model)")
    p.add_argument("--work", type=Path, help="keep the GIMP runs' files here")
    p.add_argument("--json", type=Path, help="also write every measurement here")
    args = p.parse_args(argv)
    root = harness.find_chroot()
    harness.python_binds()
    results = {}
    with tempfile.TemporaryDirectory(prefix="normstyle-preview-bench-", dir="/tmp") as tmp:
        base = args.work or Path(tmp)
        for size in args.sizes.split(","):
            w, h = (int(v) for v in size.lower().split("x"))
            label = f"{w}x{h} ({w * h / 1e6:.1f} MP)"
            print(f"{label}: running GIMP ...", file=sys.stderr, flush=True)
            results[label] = run_size(root, base / size, w, h, opens=args.opens, model=args.model)
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
