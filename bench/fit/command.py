"""The `bench memory` subcommand: its arguments (add_parser, called by bench.cli at start) and cmd_memory."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from pathlib import Path

from bench import BenchError
from bench.fit.options import method_choices, parse_size


def add_parser(sub, formatter) -> None:
    """Add the `memory` subcommand to argparse subparsers `sub`."""
    p = sub.add_parser("memory", help="will it fit? predict training memory for a model and method",
                       formatter_class=formatter, description=textwrap.dedent("""\
        Predict the memory of one training step, by part (weights, gradients, optimizer states,
        activations, int8 overhead, peak transient), for MODEL with a method and for full fine-tuning,
        before the first run: the model is built on the meta device, nothing is allocated.

        MODEL: a ladder rung (cpu-1m, smoke-a), a folder with config.json or the file itself, or a hub id
        from the local HF cache. Families: GPT-2, OPT, Llama/Mistral/Qwen2 (grouped-query attention too),
        BERT (bare encoder). Example:
          python -m bench memory ./llama-7b --method lora --set r=8 --set target_modules=q_proj,v_proj \\
              --precision mixed --gpu-memory 24GiB
        --validate measures tiny configs of every family and method and writes results/memory/.
        """))
    p.add_argument("model", nargs="?", help="ladder rung, folder with config.json, config.json, or hub id")
    p.add_argument("--method", default="lora", help="a registered method or preset: full, lora, rslora, dora, pissa, qlora, adapters, ... (the "
                                                        "whole list in an unknown name's error; default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a method option, e.g. r=8, target_modules=q_proj,v_proj (repeatable)")
    p.add_argument("--precision", default="mixed", help="fp32 | mixed (16-bit + fp32 master, ZeRO's 16 B) | "
                                                        "bf16 | fp16 (default: %(default)s)")
    p.add_argument("--base-int8", action="store_true", help="frozen Linear weights in int8 (LLM.int8())")
    p.add_argument("--base-4bit", action="store_true", help="frozen Linear weights in NF4 with double-quantized "
                                                             "scales (QLoRA; --method qlora implies it)")
    p.add_argument("--optimizer", default="adamw", help="adamw | sgd | momentum (default: %(default)s)")
    p.add_argument("--batch", type=int, default=1, help="sequences per step (default: %(default)s)")
    p.add_argument("--seq", type=int, default=None, help="tokens per sequence (default: min(2048, the model's "
                                                          "positions))")
    p.add_argument("--grad-checkpointing", action="store_true", help="activation checkpointing per block")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="where it trains (dropout masks "
                                                                             "differ; default: %(default)s)")
    p.add_argument("--gpu-memory", default=None, metavar="SIZE", help="GPU memory, e.g. 24GiB or 80GB: prints "
                                                                       "how many such GPUs each needs")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--plot", type=Path, default=None, metavar="PATH", help="also write a PNG of the parts")
    p.add_argument("--validate", action="store_true", help="measure tiny configs, write results/memory/")
    p.add_argument("--out", type=Path, default=None, help="--validate's folder (default: results/memory under the "
                                                           "results root, bench.paths)")


def cmd_memory(args) -> int:
    """Run `bench memory` from parsed arguments; 0 on success (BenchError for bad input)."""
    # here, not at import: bench.cli imports this module at start, and these bring torch and transformers
    from bench.fit.config import load_config
    from bench.fit.predict import predict, summary
    from bench.fit.render import plot, render
    from bench.fit.validate import write_validation
    logging.getLogger("transformers").setLevel(logging.ERROR)
    if args.validate:
        path = write_validation(args.out)
        print(f"wrote {path}")
        return 0
    if not args.model:
        raise BenchError("memory: give MODEL (a ladder rung, a folder with config.json, or a hub id)")
    gpu_bytes = parse_size(args.gpu_memory) if args.gpu_memory else None
    if args.method not in method_choices():
        raise BenchError(f"memory: unknown method {args.method!r}; choose one of {', '.join(method_choices())}")
    config = load_config(args.model)
    pred = predict(config, args.method, args.set, args.precision, args.optimizer, args.batch, args.seq,
                   args.base_int8, args.grad_checkpointing, args.device, args.base_4bit)
    info = summary(pred, gpu_bytes, args.gpu_memory or "")
    if args.plot:
        plot(info, args.plot)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(render(args.model, info))
        if args.plot:
            print(f"plot: {args.plot}")
    sys.stdout.flush()
    return 0
