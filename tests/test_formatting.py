from vitnas.formatting import format_count, human, markdown_table, text_table


def test_counts_read_back_and_tables_line_up():
    assert [format_count(v) for v in (5e6, 1.2e9, 300e3, 12)] == ["5M", "1.2G", "300K", "12"]
    assert [human(v) for v in (1234567, 999, 2.5e9)] == ["1.23M", "999", "2.50G"]
    rows = [{"name": "a", "n": 1}, {"name": "long", "n": 22}]
    assert text_table(rows, ["name", "n"]).splitlines() == ["name  n", "----  --", "a     1",
                                                             "long  22"]
    assert markdown_table(rows, ["name", "n", "x"]).splitlines() == [
        "| name | n | x |", "|---|---|---|", "| a | 1 |  |", "| long | 22 |  |"]
