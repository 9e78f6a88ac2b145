"""Write the JSON beside a model file that lets `normstyle info` describe the model without
importing torch (normstyle_core/model_summary.py). Run it after any change to the shipped model:

    python tools/write_model_summary.py normstyle_core/assets/default.pt

tests/test_startup.py fails while the shipped model's summary no longer matches its file.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from normstyle_core import Stylizer
from normstyle_core.model_summary import write_summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    args = ap.parse_args()
    stylizer = Stylizer.load(args.model, device="cpu", precision="fp32")
    print(f"wrote {write_summary(args.model, stylizer)}")


if __name__ == "__main__":
    main()
