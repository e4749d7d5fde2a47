import json
import math

import numpy as np
import pytest

from vitnas.formatting import (
    dumps_strict,
    format_count,
    human,
    loads_strict,
    markdown_table,
    strict_json,
    text_table,
)


def test_counts_read_back_and_tables_line_up():
    assert [format_count(v) for v in (5e6, 1.2e9, 300e3, 12)] == ["5M", "1.2G", "300K", "12"]
    assert [human(v) for v in (1234567, 999, 2.5e9)] == ["1.23M", "999", "2.50G"]
    rows = [{"name": "a", "n": 1}, {"name": "long", "n": 22}]
    assert text_table(rows, ["name", "n"]).splitlines() == ["name  n", "----  --", "a     1",
                                                             "long  22"]
    assert markdown_table(rows, ["name", "n", "x"]).splitlines() == [
        "| name | n | x |", "|---|---|---|", "| a | 1 |  |", "| long | 22 |  |"]


def test_strict_json_writes_null_for_every_non_finite_number():
    value = {"nan": math.nan, "inf": [1.5, -math.inf, np.float32("nan")],
             "numpy": (np.float64(2.5), np.int64(3)), "kept": {"text": "x", "flag": True}}
    text = dumps_strict(value)
    assert "NaN" not in text and "Infinity" not in text
    # a strict parser accepts it: Python's rejects the non-standard tokens when asked to
    loaded = json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} in output"))
    assert loaded == {"nan": None, "inf": [1.5, None, None], "numpy": [2.5, 3],
                      "kept": {"text": "x", "flag": True}}
    assert strict_json([math.inf]) == [None]


def test_strict_json_reading_names_each_problem_in_one_line():
    from vitnas.errors import ConfigError

    assert loads_strict('{"a": [1, 2.5, "x"], "b": {"c": null}}', "f") == {
        "a": [1, 2.5, "x"], "b": {"c": None}}
    for text, message in (('{"a": 1, "a": 2}', "f gives the key 'a' twice"),
                          ('{"a": {"b": 1, "b": 1}}', "gives the key 'b' twice"),
                          ('{"a": 1' + "0" * 5000 + "}", "f cannot be read: Exceeds the limit"),
                          ('{"a": ', "f is not valid JSON: Expecting value at line 1 column 7"),
                          ("[" * 100000 + "]" * 100000, "f is nested too deeply")):
        with pytest.raises(ConfigError, match=message) as err:
            loads_strict(text, "f")
        assert "\n" not in str(err.value)


def test_a_progress_bar_is_closed_however_its_block_ends():
    import io

    from vitnas.formatting import progress_bar

    stream = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        with progress_bar(True, total=3, file=stream) as bar:
            bar.update(1)
            raise KeyboardInterrupt
    assert bar.disable  # tqdm marks a closed bar disabled
    with progress_bar(False, total=3) as quiet:
        quiet.update(1)
        quiet.set_postfix(loss="0.1")  # draws nothing, needs no check at the call site
