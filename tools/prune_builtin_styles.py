"""Apply normstyle_core/assets/styles.json to the shipped model's bank of built-in codes: drop
the styles it lists as removed, rename the ones it lists as aliases (old -> new). Everything else
in the file (weights, fp16, training record, calibration) is kept as it was.

    python tools/prune_builtin_styles.py normstyle_core/assets/default.pt -o normstyle_core/assets/default.pt

Refuses when the result's names differ from the notes' (every built-in style gets a description).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from normstyle_core.builtin_styles import NOTES_FILE, _read
from normstyle_core.checkpoint import atomic_torch_save, read_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    args = ap.parse_args()
    notes = _read(NOTES_FILE)
    data = read_checkpoint(args.model)
    bank = dict(data["style_bank"])
    for name in notes.removed:
        bank.pop(name, None)
    for old, new in notes.aliases.items():
        if old in bank:
            bank[new] = bank.pop(old)
    if sorted(bank) != sorted(notes.styles):
        raise SystemExit(f"the bank and {NOTES_FILE.name} disagree: only in the bank {sorted(set(bank) - set(notes.styles))}, "
                         f"only in the notes {sorted(set(notes.styles) - set(bank))}")
    data["style_bank"] = {name: bank[name] for name in sorted(bank)}
    data["style_renames"] = {**(data.get("style_renames") or {}), **notes.aliases}
    atomic_torch_save(data, args.out)
    print(f"wrote {args.out}: {len(bank)} built-in styles")


if __name__ == "__main__":
    main()
