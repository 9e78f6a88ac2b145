"""Export a model's networks as the ONNX graphs of the torch-free engine
(normstyle_core/onnx_engine.py), beside the model file. Run it after any change to the shipped
model, with the `export` extra installed (`pip install -e ".[export]"`):

    python tools/export_onnx.py normstyle_core/assets/default.pt

tests/test_onnx_engine.py fails while the shipped graphs no longer match the model file.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from normstyle_core.onnx_export import export_onnx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    args = ap.parse_args()
    print(json.dumps(export_onnx(args.model), indent=2))


if __name__ == "__main__":
    main()
