"""`zeroloop import-katago-model FILE OUT`: a KataGo net as a zeroloop model directory.

FILE is a KataGo ``.bin.gz`` (or ``.bin``) model, e.g. one of KataGo's g170
nets (model version 8) or a later batch-norm net (``netimport`` says which
map); OUT (a path or fsspec URL that must not exist) receives a zeroloop
model of feature version 2 (KataGo's inputs v7) that ``zeroloop gtp
--model OUT``, a gatekeeper or ``zeroloop train --features katago-v7
--initial-checkpoint OUT`` use like any other. ``--pos-len`` is the largest
board it will play (KataGo's nets are fully convolutional: any size works).
"""

from __future__ import annotations

import argparse

from zeroloop import cliflags
from zeroloop.errors import ModelFileError, UserError
from zeroloop.katago import modelformat, netimport
from zeroloop.nn import modelfile
from zeroloop.modelnames import check_model_name
from zeroloop.storage import open_location


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a KataGo model file (.bin.gz or .bin)")
    parser.add_argument("out", metavar="OUT", help="the zeroloop model directory to write (must not exist)")
    cliflags.flag(parser, "--pos-len", type=int, default=19, help="largest board size the model plays (2-19)")
    cliflags.flag(parser, "--name", default=None, help="the model's name (default: KataGo's name of it)")
    cliflags.add_common(parser)


def run(args: argparse.Namespace) -> int:
    if not 2 <= args.pos_len <= modelfile.MAX_POS_LEN:
        raise UserError(f"--pos-len {args.pos_len}: must be 2..{modelfile.MAX_POS_LEN}")
    storage, path = open_location(args.file, "FILE")
    try:
        data = storage.read_bytes(path)
    except (FileNotFoundError, OSError) as e:
        raise UserError(f"FILE {args.file}: cannot read ({e})") from None
    try:
        katago = modelformat.read_bytes(data, args.file)
        net = netimport.import_model(katago, args.pos_len, args.name)
    except (ValueError, ModelFileError) as e:
        raise UserError(f"FILE {args.file}: {e}") from None
    name = args.name or net.config.name
    problem = check_model_name(name)
    if problem:
        raise UserError(f"--name: {problem}")
    out_storage, out_path = open_location(args.out, "OUT")
    if out_storage.exists(out_path):
        raise UserError(f"OUT {args.out} exists: name a new directory")
    info = modelfile.ModelInfo.for_model(net, name, extra={"imported_from": args.file,
                                                           "katago_model_version": katago.version})
    modelfile.save_model(out_storage, out_path, net, info)
    print(f"wrote {out_path}: KataGo model version {katago.version} {katago.name} as zeroloop {net.config.name} "
          f"({len(net.config.blocks)} blocks, {net.config.trunk} channels, feature version 2, pos_len {args.pos_len})")
    return 0
