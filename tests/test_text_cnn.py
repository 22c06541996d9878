"""The TextCNN and input masking of Sec. 15.1.2: vocabulary, padding invariance, masking statistics, learning."""

import numpy as np
import pytest
import torch
from torch import nn

from domainknowledge.models.text_cnn import (
    PADDING_INDEX,
    THESIS_DROPOUT,
    THESIS_NUM_FILTERS,
    UNKNOWN_INDEX,
    TextCNN,
    Vocabulary,
    mask_tokens,
    pad_masks,
)

MESSAGES = [["gg", "wp", "LUL"], ["gg", "LUL", "LUL"], ["nice", "gg"], ["LUL"]]


def small_model(vocabulary_size=20, seed=0, **kwargs):
    torch.manual_seed(seed)
    options = dict(embedding_dim=8, num_filters=4)
    options.update(kwargs)
    return TextCNN(vocabulary_size, 3, **options).eval()


def test_vocabulary_counts_order_and_min_count():
    vocabulary = Vocabulary.build(MESSAGES, min_count=2)
    assert vocabulary.counts == {"LUL": 4, "gg": 3, "wp": 1, "nice": 1}
    assert vocabulary.tokens == ("<pad>", "<unk>", "LUL", "gg")       # by count, then alphabetically
    assert len(vocabulary) == 4
    assert "gg" in vocabulary and "wp" not in vocabulary and "<pad>" not in vocabulary
    assert Vocabulary.build(MESSAGES).tokens[2:] == ("LUL", "gg", "nice", "wp")


def test_vocabulary_encode_pads_truncates_and_marks_unknown():
    vocabulary = Vocabulary.build(MESSAGES, min_count=2)
    ids = vocabulary.encode([["gg", "wp"], ["LUL", "gg", "LUL", "gg"], [], ["<pad>"]], max_length=3)
    assert ids.dtype == torch.long
    assert ids.tolist() == [[3, UNKNOWN_INDEX, PADDING_INDEX], [2, 3, 2], [0, 0, 0], [UNKNOWN_INDEX, 0, 0]]
    with pytest.raises(TypeError):
        vocabulary.encode(["gg wp"], max_length=3)
    with pytest.raises(ValueError):
        Vocabulary.build(MESSAGES, min_count=0)


def test_embedding_matrix_zero_for_tokens_without_vector():
    vocabulary = Vocabulary.build(MESSAGES)
    matrix = vocabulary.embedding_matrix({"gg": np.ones(2), "wp": np.full(2, 2.0)}, dimension=2)
    assert matrix.shape == (6, 2)
    assert matrix[vocabulary.index("gg")].tolist() == [1.0, 1.0]
    assert matrix[vocabulary.index("wp")].tolist() == [2.0, 2.0]
    assert not matrix[[PADDING_INDEX, UNKNOWN_INDEX, vocabulary.index("LUL")]].any()
    model = TextCNN(len(vocabulary), 3, embeddings=matrix, num_filters=2)
    assert torch.equal(model.embedding.weight.detach(), torch.from_numpy(matrix))   # initialised, trainable
    assert model.embedding.weight.requires_grad


def test_defaults_are_the_thesis_hyperparameters_and_output_shape():
    model = TextCNN(50, 3)
    assert model.convolution.filter_heights == (3, 4, 5)
    assert model.convolution.num_filters == THESIS_NUM_FILTERS == 182
    assert model.dropout.p == THESIS_DROPOUT == 0.27
    ids = torch.randint(2, 50, (7, 11), generator=torch.Generator().manual_seed(0))
    assert model(ids).shape == (7, 3)


def test_padding_does_not_change_logits():
    model = small_model()
    ids = torch.tensor([[5, 7, 9, 3, 4, 11]])
    padded = torch.cat([ids, torch.zeros(1, 9, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(padded), model(ids))
    batch = torch.tensor([[5, 7, 9, 3, 4, 11], [8, 6, 0, 0, 0, 0]])     # and in a batch of mixed lengths
    torch.testing.assert_close(model(batch)[1:], model(torch.tensor([[8, 6]])))


def test_sequence_shorter_than_largest_filter():
    model = small_model()
    for length in (1, 2, 4):
        ids = torch.arange(2, 2 + length).reshape(1, length)
        logits = model(ids)
        assert logits.shape == (1, 3) and torch.isfinite(logits).all()
    empty = model(torch.zeros(1, 3, dtype=torch.long))                    # no tokens: all pooled features 0
    torch.testing.assert_close(empty, model.output.bias.detach().reshape(1, 3))


def test_unknown_and_masked_tokens_are_zero_vectors_that_keep_their_position():
    model = small_model()
    model.embedding.weight.data[UNKNOWN_INDEX] = 5.0                     # ignored: unknown is always zero
    with_unknown = torch.tensor([[UNKNOWN_INDEX, 7]])
    features = model.features(with_unknown)
    zero_first = model.convolution(torch.cat([torch.zeros(1, 1, 8), model.embedding.weight[7].reshape(1, 1, 8)], 1),
                                   torch.ones(1, 2, dtype=torch.bool))
    torch.testing.assert_close(features, zero_first)
    assert not torch.allclose(features, model.features(torch.tensor([[7]])))  # unlike padding, it is a position


def test_masking_probability_zero_and_one():
    ids = torch.tensor([[4, 5, 6, 0], [7, 8, 0, 0]])
    signal = torch.tensor([[True, False, True, False], [False, True, False, False]])
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(mask_tokens(ids, signal, 0.0, generator), ids)
    masked = mask_tokens(ids, signal, 1.0, generator)
    assert torch.equal(masked == UNKNOWN_INDEX, signal)
    assert torch.equal(masked[~signal], ids[~signal])
    assert ids[0, 0] == 4                                                 # input untouched


def test_masking_half_hides_about_half_and_is_seeded():
    ids = torch.randint(2, 100, (200, 50), generator=torch.Generator().manual_seed(1))
    signal = torch.rand(200, 50, generator=torch.Generator().manual_seed(2)) < 0.3
    masked = mask_tokens(ids, signal, 0.5, torch.Generator().manual_seed(3))
    share = (masked[signal] == UNKNOWN_INDEX).float().mean().item()
    n = int(signal.sum())
    assert abs(share - 0.5) < 4 * (0.25 / n) ** 0.5                     # within 4 standard errors
    assert torch.equal(masked[~signal], ids[~signal])
    assert torch.equal(masked, mask_tokens(ids, signal, 0.5, torch.Generator().manual_seed(3)))
    assert not torch.equal(masked, mask_tokens(ids, signal, 0.5, torch.Generator().manual_seed(4)))
    with pytest.raises(ValueError):
        mask_tokens(ids, signal[:, :3], 0.5)
    with pytest.raises(ValueError):
        mask_tokens(ids, signal, 1.5)


def test_pad_masks_aligns_with_encode():
    masks = pad_masks([np.array([True, False, True]), [], [False, True]], max_length=2)
    assert masks.tolist() == [[True, False], [False, False], [False, True]]


def test_learns_a_separable_problem_with_masking_of_other_tokens():
    """class 1 iff token 7 occurs; random other tokens (some "signal" tokens masked) are noise."""
    generator = torch.Generator().manual_seed(0)
    n, length, vocabulary_size = 512, 12, 30
    lengths = torch.randint(3, length + 1, (n,), generator=generator)
    ids = torch.randint(8, vocabulary_size, (n, length), generator=generator)
    labels = torch.randint(0, 2, (n,), generator=generator)
    positions = (torch.rand(n, generator=generator) * lengths).long()
    ids[labels == 1, positions[labels == 1]] = 7
    ids[torch.arange(length).expand(n, length) >= lengths[:, None]] = PADDING_INDEX
    signal = (ids >= 20)                                                  # a stand-in lexicon, not token 7
    torch.manual_seed(0)
    model = TextCNN(vocabulary_size, 2, embedding_dim=16, num_filters=8, dropout=0.2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    train, test = slice(0, 384), slice(384, n)
    for epoch in range(15):
        model.train()
        order = torch.randperm(384, generator=generator)
        for batch in order.split(64):
            inputs = mask_tokens(ids[train][batch], signal[train][batch], 0.5, generator)
            optimizer.zero_grad()
            loss_fn(model(inputs), labels[train][batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(ids[test]).argmax(1) == labels[test]).float().mean().item()
    assert accuracy > 0.95
    assert not model.embedding.weight[[PADDING_INDEX, UNKNOWN_INDEX]].any()   # zero rows stay zero
