"""The wirings of the layers AC-MTL adds, by name: the paper's (Eq. 11 as printed) and each variant the diagnosis
(:mod:`acmtl.companion.diagnosis`) pairs with its reference, one suspect at a time. A profile names its default
wiring here (``Profile.wiring``); this module imports nothing else of the companion, so profiles can."""

from __future__ import annotations

from dataclasses import dataclass

PAPER_WIRING = dict(cnn_block="paper", pool_size=3, cnn_merge="concat", positions=True)


@dataclass(frozen=True)
class Variant:
    arch: str
    overrides: dict
    suspect: str  # what the comparison with its reference tests


# name -> variant; every AC-MTL variant changes one thing of the paper's wiring.
VARIANTS: dict[str, Variant] = {
    "paper": Variant("acmtl", PAPER_WIRING, "Eq. 11 as printed: GELU(MaxPool1D(S + S')), pool 3 (reference)"),
    "pool_1": Variant("acmtl", {**PAPER_WIRING, "pool_size": 1},
                      "1: max-pooling S + S' overwrites each character with its neighbours' maxima"),
    "residual_block": Variant("acmtl", {**PAPER_WIRING, "cnn_block": "residual", "pool_size": 1},
                              "1+2: a standard residual block LN(S + Dropout(GELU(S'))), no pooling"),
    "residual_block_pool_3": Variant("acmtl", {**PAPER_WIRING, "cnn_block": "residual"},
                                     "1+2: the residual block with pooling inside the branch only"),
    "max_over_kernels": Variant("acmtl", {**PAPER_WIRING, "cnn_merge": "max"},
                                "Eq. 3 read literally: C_max = max(C_3, C_5, C_7) instead of a concatenation"),
    "no_positions": Variant("acmtl", {**PAPER_WIRING, "positions": False},
                            "3: sinusoidal positions added on top of an encoder that already encodes position"),
    "identity_start": Variant("acmtl", {**PAPER_WIRING, "cnn_block": "residual", "pool_size": 1,
                                        "identity_start": True},
                              "5: the residual block's added layers start as noise on the encoder's features "
                              "(random W^O and W_c, positions on the identity path); here they start as the identity"),
    "encoder_crf": Variant("encoder_crf", {}, "the baseline: encoder + CRF, no pinyin (reference for pinyin)"),
    "encoder_pinyin_crf": Variant("encoder_pinyin_crf", {}, "4: pinyin features alone, on the baseline"),
}
# variant -> the reference it is paired with
REFERENCES: dict[str, str] = {
    **{name: "paper" for name in ("pool_1", "residual_block", "residual_block_pool_3", "max_over_kernels",
                                  "no_positions", "encoder_crf")},
    "identity_start": "residual_block",
    "encoder_pinyin_crf": "encoder_crf",
}


def variant_grid(grid: dict[str, tuple[int, ...]]) -> list[tuple[str, Variant, tuple[int, ...]]]:
    """``grid`` (variant name -> seeds) as (name, variant, seeds), in the grid's order; an unknown name is an error."""
    unknown = set(grid) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown diagnosis variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    return [(name, VARIANTS[name], seeds) for name, seeds in grid.items()]
