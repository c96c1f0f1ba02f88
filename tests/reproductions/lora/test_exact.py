"""reproductions/lora/exact.py: L2 counts on meta-device models match the paper's and peft's numbers."""

from bench.schema import Recorder, param
from reproductions.lora import exact


def test_l2_counts_are_exact(tmp_path):
    rec = Recorder(group="lora", profile="smoke", out_dir=tmp_path, claims=["L2"])
    out = exact.l2_counts(rec)
    df = rec.frame()

    def count(model, r, targets):
        rows = df[(df.metric == "lora_trainable_params") & (df.model == model) & (param(df, "r") == r)
                  & (param(df, "targets") == targets)]
        assert len(rows) == 1
        return int(rows.value.iloc[0])

    assert count("gpt3-175b", 1, "q,v") == 4_718_592
    assert count("gpt3-175b", 8, "q,v") == 37_748_736
    assert count("gpt3-175b", 4, "q,k,v,o") == 37_748_736
    assert count("llama-7b", 8, "q,v") == 4_194_304
    assert count("mt0-large", 8, "q,v") == 2_359_296           # peft's README for mt0-large
    assert out["totals"]["llama-7b"] == 6_738_415_616
    assert out["totals"]["mt0-large"] + 2_359_296 == 1_231_940_608  # "all params" in peft's README
    b16 = df[(df.metric == "adapter_bytes_fp16") & (df.model == "llama-7b") & (param(df, "r") == 8)]
    assert b16.value.iloc[0] == 8 * 2**20
    ratio = df[df.metric == "lora_ratio_error_vs_2r_over_d"]
    assert len(ratio) > 40 and ratio.value.max() == 0.0
    exact.META_CACHE.clear()
