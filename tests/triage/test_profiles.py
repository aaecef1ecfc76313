"""Customer profile store: number normalisation, CSV import, lookups, the CLI."""

from __future__ import annotations

import json

import pytest

from voicetriage.cli import main
from voicetriage.triage.profiles import (
    Profile,
    ProfileError,
    ProfileStore,
    normalise_number,
    profile_signal,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("13800138000", "+8613800138000"),
        ("138-0013-8000", "+8613800138000"),
        ("138 0013 8000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("0086 138 0013 8000", "+8613800138000"),
        ("8613800138000", "+8613800138000"),
        ("010-6552 9988", "+861065529988"),  # Beijing landline with trunk 0
        ("(010) 6552.9988", "+861065529988"),
        ("+852 9123 4567", "+85291234567"),
        ("tel:+1-202-555-0143", "+12025550143"),
        ("sip:+44 20 7946 0000@pbx.example;user=phone", "+442079460000"),
        ("１３８００１３８０００".translate({0xFF10 + i: str(i) for i in range(10)}), "+8613800138000"),
        ("anonymous", None),
        ("", None),
        (None, None),
        ("1001", None),  # an extension, not a caller number
        ("+86 138 0013 8000 12345", None),  # more than 15 digits
        ("call me", None),
    ],
)
def test_normalise_number(raw, expected):
    assert normalise_number(raw) == expected


def test_national_numbers_use_the_configured_country():
    assert normalise_number("020 7946 0000", country="44") == "+442079460000"
    assert normalise_number("2025550143", country="1") == "+12025550143"


CSV = """number,birth_year,age_band,language,flags,customer_id,crm_segment
138-0013 8000,1950,,Cantonese,vulnerable;prefers_human,C1,gold
+852 9123 4567,,65+,yue,,C2,
not-a-number,1950,,,,C3,
13800138001,1890,,,,C4,
13800138002,1990,65+,,,C5,
13800138003,,,klingon,,C6,
13800138004,19x0,,,,C7,
13800138005,,older,,,C8,
"a,b",,,,,C9,
13800138006,1980,,en,Prefers-Human,C10,
13800138000,1951,,yue,vulnerable,C11,
"""


def write(tmp_path, text, name="profiles.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_import_reports_bad_rows_with_line_numbers(tmp_path):
    with ProfileStore(tmp_path / "p.db", create=True) as store:
        report = store.import_csv(write(tmp_path, CSV), this_year=2026)
        problems = {p.line: p.message for p in report.problems}
        assert problems == {
            4: "not a phone number: 'not-a-number'",
            5: "birth_year 1890 is not plausible",
            6: "birth_year 1990 does not match age_band '65+'",
            7: "unknown language 'klingon' (use one of mandarin, cantonese, wu, hakka, minnan, english, other)",
            8: "birth_year must be a 4-digit year, got '19x0'",
            9: "unknown age band 'older' (use one of <40, 40-64, 65+)",
            10: "not a phone number: 'a,b'",
        }
        assert [(d.line, d.message) for d in report.duplicates] == [
            (12, "+8613800138000 also on line 2; this line wins")
        ]
        assert report.ignored_columns == ("crm_segment",)
        assert report.imported == 3 and len(store) == 3
        p = store.lookup("+86 138-0013-8000")
        assert p == Profile("+8613800138000", "C11", 1951, None, "cantonese", ("vulnerable",), None, p.updated_at)
        hk = store.lookup("0085291234567")
        assert (hk.age_band, hk.language, hk.birth_year) == ("65+", "cantonese", None)
        assert store.lookup("13800138006").flags == ("prefers_human",)
        assert store.lookup("13800138099") is None
        assert store.lookup("anonymous") is None


def test_reimport_replaces_and_replace_all_empties(tmp_path):
    db = tmp_path / "p.db"
    with ProfileStore(db, create=True) as store:
        store.import_csv(write(tmp_path, "number,birth_year\n13800138000,1950\n13800138001,1960\n"))
        r = store.import_csv(write(tmp_path, "number,birth_year\n13800138000,1940\n", "b.csv"))
        assert (r.imported, r.replaced, len(store)) == (1, 1, 2)
        assert store.lookup("13800138000").birth_year == 1940
        store.import_csv(write(tmp_path, "number\n13900000000\n", "c.csv"), replace_all=True)
        assert [p.number for p in store] == ["+8613900000000"]


def test_strict_import_writes_nothing_on_a_bad_row(tmp_path):
    with ProfileStore(tmp_path / "p.db", create=True) as store:
        r = store.import_csv(write(tmp_path, "number\n13800138000\nnope\n"), strict=True)
        assert [p.line for p in r.problems] == [3]
        assert r.imported == 0 and len(store) == 0


def test_semicolon_csv_with_bom_and_pipe_flags(tmp_path):
    text = "\ufeffPhone;Year of Birth;Preferred Language;Flags\n13800138000;1948;粤语;vulnerable|prefers_human\n"
    with ProfileStore(tmp_path / "p.db", create=True) as store:
        r = store.import_csv(write(tmp_path, text))
        assert r.problems == [] and r.imported == 1
        p = store.lookup("13800138000")
        assert (p.birth_year, p.language, p.flags) == (1948, "cantonese", ("prefers_human", "vulnerable"))


def test_flags_with_commas_inside_a_quoted_cell(tmp_path):
    with ProfileStore(tmp_path / "p.db", create=True) as store:
        store.import_csv(write(tmp_path, 'number,flags,note\n13800138000,"vulnerable, prefers_human","line 1\nline 2"\n13800138001,,x\n'))
        assert store.lookup("13800138000").flags == ("prefers_human", "vulnerable")
        assert store.lookup("13800138000").note == "line 1\nline 2"
        assert len(store) == 2


@pytest.mark.parametrize(
    "text, encoding, message",
    [
        ("", "utf-8", "empty"),
        ("name,birth_year\nAlice,1950\n", "utf-8", "line 1: no number column"),
        ("number,phone\n1,2\n", "utf-8", "given twice"),
        ("number,language\n13800138000,粤语\n", "gb18030", "not UTF-8"),
    ],
)
def test_unusable_files_are_refused_with_the_file_name(tmp_path, text, encoding, message):
    with ProfileStore(tmp_path / "p.db", create=True) as store:
        with pytest.raises(ProfileError, match=message) as e:
            store.import_csv(write(tmp_path, text, encoding=encoding))
        assert "profiles.csv" in str(e.value)
    with ProfileStore(tmp_path / "p.db", create=True) as store:
        with pytest.raises(ProfileError, match="no such file"):
            store.import_csv(tmp_path / "missing.csv")


def test_missing_or_foreign_database(tmp_path):
    with pytest.raises(ProfileError, match="does not exist"):
        ProfileStore(tmp_path / "none.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ProfileError, match="junk.db"):
        ProfileStore(junk)


def test_profile_signal_derives_age_band_from_birth_year():
    p = Profile("+8613800138000", birth_year=1958, flags=("prefers_human",), language="mandarin")
    s = profile_signal("call-1", p, year=2026)
    assert (s.name, s.call_id, s.confidence, s.time) == ("profile", "call-1", 1.0, 0.0)
    assert s.value["age"] == 68 and s.value["age_band"] == "65+"
    assert s.value["prefers_human"] is True and s.value["vulnerable"] is False
    band_only = profile_signal("c", Profile("+8613800138000", age_band="40-64"), year=2026)
    assert band_only.value["age"] is None and band_only.value["age_band"] == "40-64"


def test_cli_import_and_show(tmp_path, capsys):
    db = tmp_path / "cli.db"
    csv_path = write(tmp_path, CSV)
    assert main(["profiles", "import", str(csv_path), "--db", str(db)]) == 1  # rows were skipped
    out, err = capsys.readouterr()
    assert "imported 3 profile(s)" in out and "7 row(s) skipped" in out
    assert f"{csv_path}:4: not a phone number" in err
    assert f"{csv_path}:12: warning:" in err

    assert main(["profiles", "show", "138 0013 8000", "--db", str(db)]) == 0
    out, _ = capsys.readouterr()
    assert "+8613800138000" in out and "cantonese" in out and "vulnerable" in out

    assert main(["profiles", "show", "+852 9123 4567", "--db", str(db), "--json"]) == 0
    msg = json.loads(capsys.readouterr().out)
    assert msg["type"] == "signal" and msg["value"]["age_band"] == "65+"

    assert main(["profiles", "show", "13800000000", "--db", str(db)]) == 1
    assert "no profile" in capsys.readouterr().err
    assert main(["profiles", "show", "13800138000", "--db", str(tmp_path / "none.db")]) == 2
    assert "does not exist" in capsys.readouterr().err

    good = write(tmp_path, "number,birth_year\n13800138000,1950\n", "good.csv")
    assert main(["profiles", "import", str(good), "--db", str(db)]) == 0


def test_cli_reads_db_and_country_from_config(tmp_path, capsys):
    db = tmp_path / "from-config.db"
    cfg = tmp_path / "vt.toml"
    cfg.write_text(f'[triage]\nprofiles_db = "{db}"\ncountry_code = "44"\n', encoding="utf-8")
    csv_path = write(tmp_path, "number,birth_year\n020 7946 0000,1940\n")
    assert main(["profiles", "import", str(csv_path), "--config", str(cfg)]) == 0
    capsys.readouterr()
    assert db.exists()
    assert main(["profiles", "show", "+44 20 7946 0000", "--config", str(cfg)]) == 0
    assert "1940" in capsys.readouterr().out
