"""AC-MTL's parts against reference implementations, and the model's invariants."""

from __future__ import annotations

import math

import pytest
import torch

from acmtl.core.model import (
    ACMTL,
    ARCHITECTURES,
    BiLSTMCharEncoder,
    ModelConfig,
    MultiHeadSelfAttention,
    MultiKernelCNN,
    boundary_labels,
    count_parameters,
    sinusoidal_positions,
    type_labels,
)
from acmtl.core.train import tag_names

TAGS = tag_names(["LOC", "PER"])


def test_sinusoidal_positions_follow_eq5():
    pe = sinusoidal_positions(7, 10)
    for pos in range(7):
        for i in range(5):
            angle = pos / 10000 ** (2 * i / 10)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)


@pytest.mark.parametrize("need_weights", [False, True])
def test_attention_matches_torch_multihead_attention(need_weights):
    torch.manual_seed(0)
    ours = MultiHeadSelfAttention(dim=24, heads=4, dropout=0.0).eval()
    ref = torch.nn.MultiheadAttention(24, 4, batch_first=True).eval()
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.out.weight)
        ref.out_proj.bias.copy_(ours.out.bias)
    x = torch.randn(3, 6, 24)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 1 + [0] * 5], dtype=torch.bool)
    out, weights = ours(x, mask, need_weights=need_weights)
    expected, expected_weights = ref(x, x, x, key_padding_mask=~mask, average_attn_weights=False)
    assert torch.allclose(out, expected, atol=1e-5)
    if need_weights:
        assert torch.allclose(weights, expected_weights, atol=1e-6)
        assert torch.allclose(weights.sum(-1), torch.ones(3, 4, 6), atol=1e-6)


@pytest.mark.parametrize(("block", "merge"), [("paper", "concat"), ("residual", "concat"), ("residual", "max")])
def test_cnn_keeps_length_and_ignores_padding(block, merge):
    torch.manual_seed(0)
    cnn = MultiKernelCNN(dim=16, kernels=(3, 5, 7), channels=8, pool_size=3, block=block, merge=merge).eval()
    x = torch.randn(1, 5, 16)
    alone = cnn(x, torch.ones(1, 5, dtype=torch.bool))
    padded = torch.cat([x, torch.randn(1, 4, 16) * 100], dim=1)  # garbage in the padding
    mask = torch.tensor([[True] * 5 + [False] * 4])
    out = cnn(padded, mask)
    assert out.shape == (1, 9, 16)
    assert torch.allclose(out[:, :5], alone, atol=1e-5)
    assert torch.all(out[:, 5:] == 0)


def _reference_cnn(cnn: MultiKernelCNN, s: torch.Tensor, block: str, merge: str, pool: int) -> torch.Tensor:
    """Eq. 1-3 and 11 written out character by character, for one unpadded sentence s [T, D]."""
    t = s.shape[0]
    maps = []
    for conv in cnn.convs:  # C_k[i] = b + sum_j W[:, :, j] s[i + j - (f-1)/2]  (zero padding, Eq. 1)
        f = conv.kernel_size[0]
        padded = torch.cat([torch.zeros(f // 2, s.shape[1]), s, torch.zeros(f // 2, s.shape[1])])
        maps.append(torch.stack([conv.bias + sum(conv.weight[:, :, j] @ padded[i + j] for j in range(f))
                                 for i in range(t)]))  # [T, C]
    merged = torch.cat(maps, dim=1) if merge == "concat" else torch.stack(maps).max(dim=0).values
    s_prime = merged @ cnn.project.weight.T + cnn.project.bias

    def maxpool(x):  # stride 1, window `pool`, only over real characters
        return torch.stack([x[max(0, i - pool // 2): i + pool // 2 + 1].max(dim=0).values for i in range(t)])

    if block == "paper":
        return torch.nn.functional.gelu(maxpool(s + s_prime))
    return cnn.norm(s + torch.nn.functional.gelu(maxpool(s_prime)))


@pytest.mark.parametrize(("block", "merge", "pool"),
                         [("paper", "concat", 3), ("paper", "concat", 1), ("residual", "concat", 1),
                          ("residual", "concat", 3), ("paper", "max", 3), ("residual", "max", 1)])
def test_cnn_wirings_match_the_equations_by_hand(block, merge, pool):
    torch.manual_seed(0)
    cnn = MultiKernelCNN(dim=8, kernels=(3, 5), channels=4, pool_size=pool, block=block, merge=merge).eval()
    s = torch.randn(6, 8)
    with torch.no_grad():
        out = cnn(s[None], torch.ones(1, 6, dtype=torch.bool))[0]
        assert torch.allclose(out, _reference_cnn(cnn, s, block, merge, pool), atol=1e-5)


@pytest.mark.parametrize("size", [3, 5])
def test_sliding_max_is_maxpool_with_stride_1(size):
    from acmtl.core.model import SlidingMax

    x = torch.randn(2, 4, 9)
    reference = torch.nn.MaxPool1d(size, stride=1, padding=size // 2)
    assert torch.equal(SlidingMax(size)(x), reference(x))
    assert torch.equal(SlidingMax(size)(x[0]), reference(x[0]))  # unbatched, as notebook 00 shows it


def test_residual_block_keeps_each_characters_own_features():
    """Eq. 11 pools S + S': a character's features become its neighbours' maxima. The residual block
    keeps S on its own path, so a zero branch returns LN(S) for each character unchanged."""
    torch.manual_seed(0)
    s = torch.randn(1, 6, 8)
    mask = torch.ones(1, 6, dtype=torch.bool)
    for block in ("paper", "residual"):
        cnn = MultiKernelCNN(dim=8, kernels=(3,), channels=4, pool_size=3, block=block).eval()
        torch.nn.init.zeros_(cnn.project.weight), torch.nn.init.zeros_(cnn.project.bias)
        with torch.no_grad():
            out = cnn(s, mask)
        if block == "residual":
            assert torch.allclose(out, torch.nn.functional.layer_norm(s, (8,)), atol=1e-5)
        else:
            pooled = torch.nn.functional.max_pool1d(s.transpose(1, 2), 3, 1, 1).transpose(1, 2)
            assert torch.allclose(out, torch.nn.functional.gelu(pooled), atol=1e-5)


def test_even_kernels_are_rejected():
    with pytest.raises(ValueError, match="odd"):
        MultiKernelCNN(dim=8, kernels=(3, 4), channels=4, pool_size=3)


def test_auxiliary_labels_are_derived_from_bioes_tags():
    ids = torch.tensor([[TAGS.index(t) for t in ["O", "B-PER", "I-PER", "E-PER", "S-LOC"]]])
    assert boundary_labels(ids, TAGS).tolist() == [[0, 1, 2, 3, 4]]
    assert type_labels(ids, TAGS).tolist() == [[0, 2, 2, 2, 1]]  # O, LOC, PER


def bilstm_model(arch: str, **overrides) -> ACMTL:
    """Small models with the BiLSTM encoder, so every switch can be checked without loading BERT."""
    torch.manual_seed(0)
    cfg = ModelConfig.for_architecture(arch, TAGS, vocab_size=50, char_dim=16, lstm_hidden=16,
                                       syllable_dim=8, tone_dim=8, cnn_channels=8, attention_heads=4, **overrides)
    return ACMTL(cfg, BiLSTMCharEncoder(50, 16, 16))


def random_batch(batch=3, length=7):
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1, 5:] = False
    mask[2, 2:] = False
    return (torch.randint(1, 50, (batch, length), generator=g), torch.randint(1, 400, (batch, length), generator=g),
            torch.randint(1, 7, (batch, length), generator=g), mask,
            torch.randint(0, len(TAGS), (batch, length), generator=g))


@pytest.mark.parametrize("arch", [a for a in ARCHITECTURES if a != "encoder_crf"])
def test_every_architecture_trains_and_decodes(arch):
    """A few optimizer steps on one small batch: the loss falls and the model decodes the batch's own tags."""
    model = bilstm_model(arch)
    chars, syllables, tones, mask, _ = random_batch()
    sentences = [["B-PER", "E-PER", "O", "S-LOC", "O", "B-LOC", "E-LOC"], ["O", "B-LOC", "I-LOC", "E-LOC", "O"],
                 ["S-PER", "O"]]  # well-formed BIOES, so constrained decoding can return them
    tags = torch.tensor([[TAGS.index(t) for t in s + ["O"] * (7 - len(s))] for s in sentences])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = model(chars, syllables, tones, mask, tags).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses[::10]
    paths = model.eval().decode(chars, syllables, tones, mask)
    assert [[TAGS[i] for i in path] for path in paths] == sentences


@pytest.mark.parametrize("arch", ["acmtl", "acmtl_soft", "bert_mhsa_cnn", "bilstm_crf"])
def test_loss_is_the_weighted_sum_of_its_parts(arch):
    """The output's total is exactly w·ner + (1-w)/2·(boundary + type) (+ λ·sharing), and each part is
    what it is named: in eval mode (no dropout) ner is the CRF NLL of the emissions."""
    model = bilstm_model(arch).eval()
    chars, syllables, tones, mask, tags = random_batch()
    out = model(chars, syllables, tones, mask, tags)
    cfg, parts = model.cfg, out.parts()
    assert list(parts) == {"none": ["ner"], "hard": ["ner", "boundary", "type"],
                           "soft": ["ner", "boundary", "type", "sharing"]}[cfg.mtl]
    w = cfg.main_task_weight
    expected = out.ner if cfg.mtl == "none" else w * out.ner + (1 - w) / 2 * (out.boundary + out.type)
    if out.sharing is not None:
        expected = expected + cfg.soft_sharing_l2 * out.sharing
    assert torch.equal(out.loss, expected)  # bit for bit: training curves did not move
    emissions, _ = model.emissions(chars, syllables, tones, mask)
    assert torch.equal(out.ner, model.crf.nll(emissions, tags, mask))
    assert all(v.ndim == 0 and v.item() > 0 for v in parts.values())


def test_switches_change_the_parameters():
    params = {arch: count_parameters(bilstm_model(arch))["total"] for arch in ARCHITECTURES if arch != "encoder_crf"}
    assert params["bert_cnn"] < params["bert_mhsa_cnn"] and params["bert_mhsa"] < params["bert_mhsa_cnn"]
    assert params["bert_mhsa_cnn"] < params["acmtl"] < params["acmtl_soft"]
    assert params["encoder_pinyin_crf"] < params["bert_cnn"]


def test_attention_weights_are_exposed_and_normalised():
    model = bilstm_model("acmtl").eval()
    chars, syllables, tones, mask, _ = random_batch()
    weights = model.attention_weights(chars, syllables, tones, mask)
    assert weights.shape == (3, 4, 7, 7)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 4, 7), atol=1e-5)
    assert torch.all(weights[2, :, :, 2:] == 0)  # no attention to padding
    with pytest.raises(ValueError, match="no attention"):
        bilstm_model("bert_cnn").attention_weights(chars, syllables, tones, mask)


def test_mtl_weight_is_the_papers_default():
    assert ModelConfig(tags=TAGS).main_task_weight == 0.7


def test_config_round_trip_and_unknown_fields():
    cfg = ModelConfig.for_architecture("acmtl", TAGS)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown fields"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="unknown architecture"):
        ModelConfig.for_architecture("transformer-xl", TAGS)


BLOCK_ARCHS = [a for a, switches in ARCHITECTURES.items() if switches["use_attention"] or switches["use_cnn"]]


@pytest.mark.parametrize("arch", BLOCK_ARCHS)
def test_identity_start_passes_the_encoders_features_through(arch):
    """With identity_start every block AC-MTL and the Table 3 models add between the encoder and the CRF starts
    as the identity up to its LayerNorms (post-norm): S'' = LN_cnn(LN_att(E)) for any input, positions included."""
    model = bilstm_model(arch, identity_start=True, cnn_block="residual", pool_size=3).eval()
    chars, syllables, tones, mask, _ = random_batch()
    e = model.embed(chars, syllables, tones, mask)
    for block in model.blocks:
        expected = e
        if block.attention_norm is not None:
            expected = block.attention_norm(expected)
        if block.cnn is not None:
            expected = block.cnn.norm(expected).masked_fill(~mask.unsqueeze(2), 0.0)
        out, _ = block(e, mask)
        assert torch.allclose(out[mask], expected[mask], atol=1e-6), arch


def test_without_identity_start_the_added_layers_start_as_noise():
    """The paper's initialisation (the switch off): the same block changes the encoder's features at the start."""
    model = bilstm_model("acmtl", cnn_block="residual").eval()
    chars, syllables, tones, mask, _ = random_batch()
    e = model.embed(chars, syllables, tones, mask)
    block = model.blocks[0]
    out, _ = block(e, mask)
    assert not torch.allclose(out[mask], block.cnn.norm(block.attention_norm(e))[mask], atol=1e-3)


def test_identity_start_positions_reach_only_queries_and_keys():
    """Positions move the attention weights but never the values, and a zero W^O adds nothing."""
    torch.manual_seed(0)
    attn = MultiHeadSelfAttention(dim=16, heads=4, dropout=0.0, zero_output=True).eval()
    x, mask = torch.randn(2, 5, 16), torch.ones(2, 5, dtype=torch.bool)
    out, with_pe = attn(x, mask, need_weights=True, positions=sinusoidal_positions(5, 16))
    _, without = attn(x, mask, need_weights=True)
    assert torch.equal(out, torch.zeros_like(out)) and not torch.allclose(with_pe, without)
    with torch.no_grad():  # with W^O = I the output is the weighted values of x itself, not of x + PE
        attn.out.weight.copy_(torch.eye(16))
        out, weights = attn(x, mask, need_weights=True, positions=sinusoidal_positions(5, 16))
    v = torch.nn.functional.linear(x, attn.qkv.weight[32:], attn.qkv.bias[32:]).view(2, 5, 4, 4).transpose(1, 2)
    assert torch.allclose(out, (weights @ v).transpose(1, 2).reshape(2, 5, 16), atol=1e-5)
