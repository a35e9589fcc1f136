"""Pinyin syllable and tone ids per character, for the pinyin embedding of AC-MTL.

Readings come from pypinyin on the *whole* sentence, so polyphones resolve in context
(重庆 -> chong2, 重要 -> zhong4). We ask pypinyin for tone-marked readings and convert each
distinct one to TONE3 (neutral tone = 5) once, through a cache: the same output as
``lazy_pinyin(style=Style.TONE3, neutral_tone_with_five=True)`` (checked on every MSRA
sentence and every character of pypinyin's dictionary) at twice the speed.

pypinyin merges a run of non-Chinese characters into one item; the ``errors=`` callback
returns one placeholder per character instead, which keeps the output aligned one-to-one
with the characters. Should pypinyin still return a different number of items (an item
that is not a single character, say), we fall back to a per-character lookup rather than
shift the features.

The syllable vocabulary is a fixed list (the 426 toneless syllables of pypinyin 0.55's
character dictionary, ü written ``v``), so syllable ids never change with the installed
pypinyin version. A syllable outside the list gets ``UNKNOWN_SYLLABLE_ID``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from pypinyin import Style
from pypinyin.contrib.tone_convert import to_tone3
from pypinyin.converter import DefaultConverter
from pypinyin.core import Pinyin

PAD_ID = 0
NON_CHINESE_ID = 1
UNKNOWN_SYLLABLE_ID = 2

NEUTRAL_TONE = 5
NON_CHINESE_TONE = 6
NUM_TONES = 7  # 0 pad, 1-4 tones, 5 neutral, 6 non-Chinese

SYLLABLES: tuple[str, ...] = tuple("""
a ai an ang ao ba bai ban bang bao bei ben beng bi bian biang biao bie bin bing bo bong bu ca
cai can cang cao ce cei cen ceng cha chai chan chang chao che chen cheng chi chong chou chu chua
chuai chuan chuang chui chun chuo ci cong cou cu cuan cui cun cuo da dai dan dang dao de dei den
deng di dia dian diao die din ding diu dong dou du duan dui dun duo e ei en eng er fa fan fang
fei fen feng fiao fo fou fu ga gai gan gang gao ge gei gen geng gong gou gu gua guai guan guang
gui gun guo ha hai han hang hao he hei hen heng hm hng hong hou hu hua huai huan huang hui hun
huo ji jia jian jiang jiao jie jin jing jiong jiu ju juan jue jun ka kai kan kang kao ke kei ken
keng kong kou ku kua kuai kuan kuang kui kun kuo la lai lan lang lao le lei len leng li lia lian
liang liao lie lin ling liu lo long lou lu luan lun luo lv lve m ma mai man mang mao me mei men
meng mi mian miao mie min ming miu mo mou mu n na nai nan nang nao ne nei nen neng ng ni nia nian
niang niao nie nin ning niu nong nou nu nuan nun nuo nv nve o ou pa pai pan pang pao pei pen peng
pi pian piao pie pin ping po pou pu qi qia qian qiang qiao qie qin qing qiong qiu qu quan que qun
ran rang rao re ren reng ri rong rou ru rua ruan rui run ruo sa sai san sang sao se sen seng sha
shai shan shang shao she shei shen sheng shi shou shu shua shuai shuan shuang shui shun shuo si
song sou su suan sui sun suo ta tai tan tang tao te tei teng ti tian tiao tie ting tong tou tu
tuan tui tun tuo wa wai wan wang wei wen weng wo wong wu xi xia xian xiang xiao xie xin xing xiong
xiu xu xuan xue xun ya yan yang yao ye yi yin ying yo yong you yu yuan yue yun za zai zan zang zao
ze zei zen zeng zha zhai zhan zhang zhao zhe zhei zhen zheng zhi zhong zhou zhu zhua zhuai zhuan
zhuang zhui zhun zhuo zi zong zou zu zuan zui zun zuo ê
""".split())

_SYLLABLE_IDS = {syllable: index + 3 for index, syllable in enumerate(SYLLABLES)}
NUM_SYLLABLES = len(SYLLABLES) + 3  # 0 pad, 1 non-Chinese, 2 unknown syllable, then SYLLABLES

_NON_CHINESE = ""  # placeholder reading of a character that has no pinyin
_PINYIN = Pinyin(DefaultConverter())


def _one_placeholder_per_char(chunk: str) -> list[str]:
    return [_NON_CHINESE] * len(chunk)


@cache
def _tone3(marked: str) -> str:
    return to_tone3(marked, neutral_tone_with_five=True) if marked else _NON_CHINESE


def _readings(text: str) -> list[str]:
    marked = _PINYIN.lazy_pinyin(text, style=Style.TONE, errors=_one_placeholder_per_char)
    return [_tone3(reading) for reading in marked]


@cache
def _char_reading(char: str) -> str:
    """The most common reading of one item, for the per-character fallback."""
    readings = _readings(char) if len(char) == 1 else []
    return readings[0] if len(readings) == 1 else _NON_CHINESE


def pinyin_strings(chars: Sequence[str]) -> list[str]:
    """TONE3 reading per character (``["bei3", "jing1"]``; neutral tone is 5), ``""`` when it has none."""
    readings = _readings("".join(chars)) if chars else []
    if len(readings) != len(chars):
        readings = [_char_reading(char) for char in chars]
    return readings


@cache
def _ids(reading: str) -> tuple[int, int]:
    if reading == _NON_CHINESE:
        return NON_CHINESE_ID, NON_CHINESE_TONE
    if reading[-1] in "12345":
        syllable, tone = reading[:-1], int(reading[-1])
    else:  # pypinyin writes no digit only for a toneless reading
        syllable, tone = reading, NEUTRAL_TONE
    return _SYLLABLE_IDS.get(syllable, UNKNOWN_SYLLABLE_ID), tone


def pinyin_features(chars: Sequence[str]) -> tuple[list[int], list[int]]:
    """``(syllable_ids, tone_ids)``, one of each per character; see the module docstring for the ids."""
    pairs = [_ids(reading) for reading in pinyin_strings(chars)]
    return [syllable for syllable, _ in pairs], [tone for _, tone in pairs]
