import json
import math

import pandas as pd

from bench import report_tools as rt


def _df():
    rows = [("m", "lora", 1.0, {"r": 1}), ("m", "lora", 2.0, {"r": 8}), ("n", "full", 3.0, {})]
    return pd.DataFrame([{"metric": m, "method": k, "value": v, "params": json.dumps(p)} for m, k, v, p in rows])


def test_select_by_column_and_setting():
    df = _df()
    assert list(rt.select(df, "m", **{"params.r": 8})["value"]) == [2.0]
    assert list(rt.select(df, ["m", "n"], method="full")["value"]) == [3.0]
    assert rt.select(df, "m", nosuchcolumn=1).empty
    assert rt.value(df, "m", agg="max") == 2.0 and math.isnan(rt.value(df, "zzz"))
    assert rt.params_where(df, "m", **{"params.r": 1}) == {"r": 1}


def test_numbers_and_tables():
    assert rt.num(294912.0) == "294,912" and rt.num(0.123456) == "0.1235" and rt.num(float("nan")) == "-"
    assert rt.fmt_bytes(37_748_736) == "37.7 MB" and rt.fmt_bytes(12) == "12 B"
    t = rt.md_table(["a", "b"], [[1, 0.5], ["x|y", None]])
    assert t.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.5 |", "| x\\|y | None |"]
