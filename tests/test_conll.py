from __future__ import annotations

from pathlib import Path

import pytest

from acmtl.data.conll import (
    CorpusFormatError,
    Entity,
    Sentence,
    entities_to_tags,
    read_conll,
    read_conll_file,
    tags_to_entities,
    to_bio,
    write_conll,
)


def write(tmp_path: Path, content: str | bytes, name: str = "data.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def conll(*units: str) -> str:
    """Units given as 'char tag, char tag'."""
    return "".join("\n".join(unit.split(", ")) + "\n\n" for unit in units)


BIOES_TAGS = ("B-LOC", "E-LOC", "O", "S-PER", "O", "B-ORG", "I-ORG", "E-ORG")
CHARS = tuple("北京见李在人民网")


def test_schemes_are_detected_and_normalised_to_bioes(tmp_path: Path) -> None:
    bio = conll("北 B-LOC, 京 I-LOC, 见 O, 李 B-PER, 在 O, 人 B-ORG, 民 I-ORG, 网 I-ORG")
    bioes = conll("北\tB-LOC, 京\tE-LOC, 见\tO, 李\tS-PER, 在\tO, 人\tB-ORG, 民\tI-ORG, 网\tE-ORG")
    bmes = conll("北 B-LOC, 京 E-LOC, 见 O, 李 S-PER, 在 O, 人 B-ORG, 民 M-ORG, 网 E-ORG")
    expected = [Sentence(CHARS, BIOES_TAGS)]
    for name, content, scheme in (("bio", bio, "bio"), ("bioes", bioes, "bioes"), ("bmes", bmes, "bmes")):
        read = read_conll_file(write(tmp_path, content, name))
        assert read.scheme == scheme
        assert read.sentences == expected
        assert read_conll(write(tmp_path, content, name), scheme=scheme) == expected


def test_bom_crlf_extra_columns_and_fullwidth_space(tmp_path: Path) -> None:
    content = "\ufeff北 x B-LOC\r\n京 y I-LOC\r\n\u3000 z O\r\n\r\n李 w B-PER\r\n"
    sentences = read_conll(write(tmp_path, content))
    assert [s.text for s in sentences] == ["北京\u3000", "李"]
    assert sentences[0].tags == ("B-LOC", "E-LOC", "O")
    assert sentences[1].entities() == [Entity("PER", 0, 1)]


def test_weibo_word_position_suffix_is_removed(tmp_path: Path) -> None:
    content = "北0\tB-GPE.NAM\n京1\tI-GPE.NAM\n人0\tO\n1\n20\tO\n"
    with pytest.raises(CorpusFormatError):  # a line without a tag is still an error
        read_conll(write(tmp_path, content))
    sentences = read_conll(write(tmp_path, "北0\tB-GPE.NAM\n京1\tI-GPE.NAM\n人0\tO\n20\tO\n"))
    assert sentences[0].text == "北京人2"
    assert sentences[0].entities() == [Entity("GPE.NAM", 0, 2)]


def test_glue_continuations_counts_and_keeps_unit_index(tmp_path: Path) -> None:
    content = conll("甲 O, 北 B-LOC", "京 I-LOC, 市 I-LOC", "乙 O", "丙 I-LOC")
    with pytest.raises(CorpusFormatError) as err:
        read_conll_file(write(tmp_path, content))
    assert err.value.line == 4
    with pytest.raises(CorpusFormatError) as err:  # the last unit follows an O: gluing does not make it valid
        read_conll_file(write(tmp_path, content), glue_continuations=True)
    assert err.value.line == 9
    content = conll("甲 O, 北 B-LOC", "京 I-LOC, 市 I-LOC", "乙 O")
    read = read_conll_file(write(tmp_path, content), glue_continuations=True)
    assert [s.text for s in read.sentences] == ["甲北京市", "乙"]
    assert read.sentences[0].entities() == [Entity("LOC", 1, 4)]
    assert (read.glued, read.glued_lines, read.first_unit) == (1, [4], [0, 2])


def test_glue_reopens_an_entity_closed_at_the_cut(tmp_path: Path) -> None:
    # msra.txt writes a cut entity as S-X | M-X ... E-X
    read = read_conll_file(write(tmp_path, conll("北 S-LOC", "京 M-LOC, 市 E-LOC", "人 O")), glue_continuations=True)
    assert read.scheme == "bmes" and read.glued == 1
    assert read.sentences[0] == Sentence(tuple("北京市"), ("B-LOC", "I-LOC", "E-LOC"))


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    sentences = [Sentence(CHARS, BIOES_TAGS), Sentence(("。",), ("O",))]
    path = tmp_path / "out" / "x.conll"
    write_conll(path, sentences)
    assert path.read_text(encoding="utf-8").startswith("北\tB-LOC\n京\tE-LOC\n")
    assert read_conll(path) == sentences
    with pytest.raises(ValueError):
        write_conll(path, [Sentence((" ",), ("O",))])


def test_tag_conversions() -> None:
    entities = [Entity("LOC", 0, 2), Entity("PER", 3, 4), Entity("ORG", 5, 8)]
    assert tags_to_entities(BIOES_TAGS) == entities
    assert entities_to_tags(8, entities) == BIOES_TAGS
    assert to_bio(BIOES_TAGS) == ["B-LOC", "I-LOC", "O", "B-PER", "O", "B-ORG", "I-ORG", "I-ORG"]
    # malformed predictions are not entities (strict, like seqeval's IOBES mode)
    assert tags_to_entities(["I-PER", "E-PER", "B-LOC", "O", "B-ORG", "E-LOC", "S-PER"]) == [Entity("PER", 6, 7)]
    with pytest.raises(ValueError):
        entities_to_tags(3, [Entity("A", 0, 2), Entity("B", 1, 3)])
    with pytest.raises(ValueError):
        entities_to_tags(3, [Entity("A", 2, 4)])


GBK = "北\tO\n京\tO\n".encode("gbk")
UTF8_THEN_GBK = "北\tO\n京\tO\n\n".encode() + "南\tO\n".encode("gbk")

MALFORMED = [
    # (content, line, part of the message)
    ("北 O\n京\n", 2, "no tag"),
    ("北 O\n京 X-LOC\n", 2, "unknown tag 'X-LOC'"),
    ("北 O\n\n京 PER\n", 3, "unknown tag 'PER'"),
    ("北 O\n京 B-\n", 2, "unknown tag 'B-'"),
    ("北 B-LOC\n京 I-LOC\n市 O\n中 I-LOC\n", 4, "I-LOC follows O"),
    ("北 B-LOC\n京 I-PER\n", 2, "I-PER follows B-LOC"),
    ("北 B-LOC\n京 I-LOC\n市 O\n人 S-PER\n", 3, "LOC entity opened at line 1 is not closed"),
    ("北 O\n京 S-LOC\n\n市 B-LOC\n中 I-LOC\n", 5, "sentence ends inside the LOC entity opened at line 4"),
    ("北 O\n京 E-LOC\n", 2, "E-LOC follows O"),
    ("北 O\n\n京 M-LOC\n市 E-LOC\n", 3, "sentence starts with M-LOC"),
    ("北 B-LOC\n京 M-LOC\n市 E-LOC\n\n人 B-ORG\n民 I-ORG\n网 E-ORG\n", 6, "mixed tag schemes: I- here, M- at line 2"),
    ("北 B-LOC\n京 I-LOC\n\n北 B-LOC\n京 E-LOC\n", 5, "not part of the BIO scheme"),  # forced scheme="bio"
    (GBK, 1, "not valid UTF-8 (byte 0xb1 at column 1); it decodes as GBK/GB18030"),
    (UTF8_THEN_GBK, 4, "not valid UTF-8 (byte 0xc4 at column 1)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 3, "binary data (NUL byte)"),
    ("北 O\n\x07 O\n", 2, "control character U+0007"),
    ("北 O\r\n京 O\r\n\r\n市 O\r人 O\r\n", 4, "control character U+000D"),
    ("北 O\n北京 O\n", 2, "expected one character in the first column, got '北京'"),
    ("", 1, "empty file"),
    ("\n \n\t\n", 1, "empty file"),
]


@pytest.mark.parametrize(("content", "line", "message"), MALFORMED, ids=[m[2][:30] for m in MALFORMED])
def test_malformed_input_names_file_and_line(tmp_path: Path, content: str | bytes, line: int, message: str) -> None:
    path = write(tmp_path, content)
    scheme = "bio" if "BIO scheme" in message else None
    with pytest.raises(CorpusFormatError) as err:
        read_conll(path, scheme=scheme)
    assert (err.value.path, err.value.line) == (str(path), line)
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert message in str(err.value)


def test_unknown_scheme_name_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tag scheme"):
        read_conll(write(tmp_path, "北 O\n"), scheme="iob2")
