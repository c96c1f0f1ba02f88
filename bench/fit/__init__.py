"""`bench memory MODEL`: will it fit? Training memory for any model and method, before the first run.

    python -m bench memory llama-7b-config/ --method lora --set r=8 --precision mixed --gpu-memory 24GiB

MODEL is a ladder rung (cpu-1m, smoke-a), a local folder with config.json (or the config.json itself), or a hub
id read from the local HF cache. The model is built on the meta device (shapes only, nothing allocated), the
method of bench/methods is applied to it, and bench.memory predicts each part of one training step: weights,
gradients, optimizer states, activations, int8 overhead, and the transient that turns their sum into the
peak. Full fine-tuning is predicted beside the chosen method; GPU counts use M2's arithmetic
(bench.numerics.accounting.gpus_needed: perfect sharding, no overhead beyond what is predicted).

`--validate` checks the model against measurement on tiny configs of every family and method (CPU:
torch.profiler's allocation events, bench.memory.measure_peak) and writes results/memory/ (bench.paths).

Modules: `options` (--method/--set and sizes), `config` (MODEL -> a transformers config), `predict` (the numbers),
`render` (the table and the plot), `validate` (predicted vs measured on tiny configs), `command` (argparse and
`cmd_memory`, what bench.cli calls). The model itself is bench.memory.
"""
