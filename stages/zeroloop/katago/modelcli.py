"""`zeroloop export-katago-model MODEL [OUT]`: one zeroloop model in KataGo's format.

MODEL is a zeroloop model directory (path or fsspec URL); OUT (default
``MODEL/model.bin.gz``, beside the weights) receives the same net as a
KataGo ``.bin.gz`` (``netexport``), which KataGo's engine loads with
``-model OUT``, and through it KaTrain, Lizzie or Sabaki. A run's exporter
writes this file beside every model with ``zeroloop export --katago``.
"""

from __future__ import annotations

import argparse
from zeroloop import cliflags, layout
from zeroloop.errors import ModelFileError, UserError
from zeroloop.katago import netexport
from zeroloop.nn import modelfile
from zeroloop.storage import open_location


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a zeroloop model directory (path or fsspec URL)")
    parser.add_argument("out", metavar="OUT", nargs="?",
                        help=f"where to write the .bin.gz (default: MODEL/{modelfile.KATAGO_FILE})")
    cliflags.flag(parser, "--name", help="the model name KataGo records (default: the model's own name)")
    cliflags.add_common(parser)


def run(args: argparse.Namespace) -> int:
    storage, path = open_location(args.model, "MODEL")
    try:
        net, info = modelfile.load_model(storage, path, "cpu")
    except ModelFileError as e:
        raise UserError(str(e)) from None
    out = args.out or layout.model_katago(path)
    if not (out.endswith(".bin.gz") or out.endswith(".bin")):
        raise UserError(f"OUT {out!r}: KataGo loads model files named *.bin.gz (or *.bin)")
    data = netexport.export_bin_gz(net, args.name or info.name)
    out_storage, out_path = open_location(out, "OUT") if args.out else (storage, out)
    if out_path.endswith(".bin"):
        import gzip

        data = gzip.decompress(data)
    out_storage.write_bytes(out_path, data)
    print(f"wrote {out_path} ({len(data)} bytes): KataGo model version {netexport.VERSION}, "
          f"name {netexport.katago_name(args.name or info.name)}")
    return 0
