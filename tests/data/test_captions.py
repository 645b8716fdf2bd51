"""Fashion-MNIST with captions: the two directions pair the same images and texts, the
vocabulary round-trips, and the paraphrases are seeded draws of the image's class."""

import pytest
import torch

from dgm.data import get
from dgm.data.captions import CAPTION_LENGTH, PARAPHRASES, VOCAB, encode_captions
from dgm.data.text import decode, prompt_context
from dgm.evaluate.caption_accuracy import caption_accuracy, caption_accuracy_line, names_class
from dgm.registry import config_for_data
from system_files import FASHION_MNIST

pytestmark = FASHION_MNIST


@pytest.fixture(scope="module")
def test_pair():
    return get("fashion_mnist_text", "test"), get("fashion_mnist_captions", "test")


def test_the_two_directions_pair_the_same_images_and_captions(test_pair):
    text_to_image, captions = test_pair
    images = get("fashion_mnist", "test")
    assert torch.equal(text_to_image.x, images.x) and torch.equal(captions.context, images.x)
    assert torch.equal(text_to_image.context, captions.x)  # the same caption per image
    assert torch.equal(text_to_image.y, images.y) and torch.equal(captions.y, images.y)
    assert captions.x.shape == (len(images), CAPTION_LENGTH) and captions.x.dtype == torch.int64
    assert text_to_image.info.context_vocab == len(VOCAB) and captions.info.context_vocab == 0
    assert text_to_image.vocab == captions.vocab == VOCAB
    texts = decode(captions.x, VOCAB)
    assert all(names_class(t, y) for t, y in zip(texts, captions.y.tolist(), strict=True))
    assert caption_accuracy(texts, captions.y) == 1.0
    # every paraphrase of every class occurs, about equally often (1000 / 3 or 1000 / 4)
    counts = {t: texts.count(t) for group in PARAPHRASES for t in group}
    per_class = [len(group) for group in PARAPHRASES for _ in group]
    share = torch.tensor([counts[t] * n for t, n in zip(counts, per_class, strict=True)]) / 1000
    assert ((share - 1).abs() < 0.2).all()  # 1000 per class, split evenly (sd <= 5.5 %)


def test_vocabulary_round_trip_and_padding():
    every = [t for group in PARAPHRASES for t in group]
    tokens = encode_captions(every)  # (31, 16)
    assert decode(tokens, VOCAB) == every
    assert (tokens[:, -1] == VOCAB.index("\n")).all()  # each caption ends with an end token
    assert VOCAB.index("\n") == 0  # the text encoder's padding token
    assert all(len(set(a) & set(b)) == 0 for a in PARAPHRASES for b in PARAPHRASES if a is not b)
    with pytest.raises(ValueError, match=r"'A'.*vocabulary"):
        encode_captions(["A sneaker"])
    with pytest.raises(ValueError, match="at most 16"):
        encode_captions(["a" * 17])
    assert (
        prompt_context("a sneaker", VOCAB, (16,)).tolist()
        == encode_captions(["a sneaker"])[0].tolist()
    )
    with pytest.raises(ValueError, match=r"shape \(T,\)"):
        prompt_context("a sneaker", VOCAB, (4, 4))


def test_paraphrases_are_seeded_per_split_and_seed(test_pair):
    _, captions = test_pair
    again = get("fashion_mnist_captions", "test")
    other = get("fashion_mnist_captions", "test", seed=1)
    assert torch.equal(again.x, captions.x)  # same seed: the same draw
    assert not torch.equal(other.x, captions.x)  # another seed: another draw ...
    assert torch.equal(other.y, captions.y)  # ... of the same images (test is fixed)
    valid = get("fashion_mnist_captions", "valid")
    text_valid = get("fashion_mnist_text", "valid", binarize="static")
    assert torch.equal(valid.x, text_valid.context)  # options of the images change no text
    assert set(text_valid.x.unique().tolist()) == {0.0, 1.0}
    with pytest.raises(ValueError, match="takes no option"):
        get("fashion_mnist_captions", "test", binarize="static")


def test_models_read_the_context_kind_from_the_data(test_pair):
    text_to_image, captions = test_pair
    vae = config_for_data("vae", text_to_image, {})
    assert vae == {"context_shape": (CAPTION_LENGTH,), "context_vocab": len(VOCAB)}
    rnn = config_for_data("char_rnn", captions, {})
    assert rnn == {"context_shape": (1, 28, 28), "vocab_size": len(VOCAB), "end_token": 0}
    small = captions.subset(torch.arange(3))  # subsets keep the vocabulary
    assert small.vocab == VOCAB and small.context.shape == (3, 1, 28, 28)


def test_caption_accuracy_counts_exact_paraphrases(test_pair):
    _, captions = test_pair
    labels = captions.y[:4]
    right = [PARAPHRASES[y][0] for y in labels.tolist()]
    assert caption_accuracy(right, labels) == 1.0
    wrong = right[:2] + [PARAPHRASES[(y + 1) % 10][0] for y in labels[2:].tolist()]
    assert caption_accuracy(wrong, labels) == 0.5
    assert caption_accuracy([right[0] + " x"], labels[:1]) == 0.0  # not exactly a paraphrase
    line = caption_accuracy_line(captions, wrong)
    assert line is not None and "2 of 4" in line and "50.0 %" in line
    assert caption_accuracy_line(test_pair[0], wrong) is None  # images are x: no captions
    three = captions.subset(torch.arange(3))  # 7 captions for 3 examples: labels cycle
    cycled = [PARAPHRASES[int(three.y[i % 3])][0] for i in range(7)]
    assert "7 of 7" in caption_accuracy_line(three, cycled)
    # 57 right of 100: 0.57 * 100 is 56.99999999999999 in floats, a count of 57
    mixed = [PARAPHRASES[(int(three.y[i % 3]) + (i >= 57)) % 10][0] for i in range(100)]
    assert "57 of 100 captions" in caption_accuracy_line(three, mixed)
    with pytest.raises(ValueError, match="one per label"):
        caption_accuracy(right, labels[:2])
