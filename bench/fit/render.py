"""`bench memory`'s output: the table (and fmt_bytes, its units) and the stacked-bar plot."""

from __future__ import annotations

from pathlib import Path


def fmt_bytes(n: float) -> str:
    """Binary units (GiB = 2^30 bytes), three significant digits."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def render(model: str, info: dict) -> str:
    """The human-readable table."""
    b, s, g = info["bytes"], info["setup"], info["gpu"]
    names = {"weights": "weights", "gradients": "gradients", "optimizer": "optimizer states",
             "activations": "activations", "int8_overhead": "int8 overhead", "transient": "transient (peak)",
             "total": "total (peak)"}
    meth = info["method"] + "".join(f" {k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                                    for k, v in info["options"].items())
    head = (f"{model} ({info['model_type']}), {meth}; {s['precision']}, {s['optimizer']}, batch {s['batch']} x "
            f"seq {s['seq']}" + (f" (+{s['virtual_tokens']} virtual)" if s["virtual_tokens"] else "") +
            (", int8 base" if s["base_int8"] else "") + (", NF4 base" if s.get("base_4bit") else "") + (", grad checkpointing" if s["grad_checkpointing"] else ""))
    lines = [head, "", f"{'part':18} {info['method']:>12} {'full FT':>12} {'ratio':>8}"]
    for part, row in b.items():
        ratio = f"{row['ratio']:.3g}" if row["ratio"] is not None else "-"
        lines.append(f"{names[part]:18} {fmt_bytes(row['method']):>12} {fmt_bytes(row['full']):>12} {ratio:>8}")
    n, tot = info["trainable_params"], info["total_params"]
    lines += ["", f"trainable parameters: {n:,} of {tot:,} ({100 * n / tot:.3g}%)",
              f"adapter checkpoint:   {fmt_bytes(info['checkpoint_bytes']['fp16'])} in fp16, "
              f"{fmt_bytes(info['checkpoint_bytes']['fp32'])} in fp32"]
    if g["memory_bytes"]:
        lines.append(f"GPUs of {g['label']}: {g['method']} for {info['method']}, {g['full']} for full FT "
                     f"(perfect sharding, nothing else on the GPU)")
    return "\n".join(lines)


def plot(info: dict, path: Path) -> None:
    """Stacked bars by part, the method beside full fine-tuning."""
    import matplotlib   # here, not at import: only --plot draws
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    parts = ["weights", "gradients", "optimizer", "activations", "int8_overhead", "transient"]
    fig, ax = plt.subplots(figsize=(5, 4))
    for i, col in enumerate(("method", "full")):
        bottom = 0.0
        for j, part in enumerate(parts):
            v = info["bytes"][part][col] / 2**30
            ax.bar(i, v, bottom=bottom, color=f"C{j}", label=part if i == 0 else None)
            bottom += v
    if info["gpu"]["memory_bytes"]:
        ax.axhline(info["gpu"]["memory_bytes"] / 2**30, color="k", ls="--", lw=1, label=info["gpu"]["label"])
    ax.set_xticks([0, 1], [info["method"], "full FT"])
    ax.set_ylabel("GiB")
    ax.set_title("predicted training memory by part")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
