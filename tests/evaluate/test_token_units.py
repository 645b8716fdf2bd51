"""Per-token figures of token-sequence models count real tokens only: the end token
included, the padding after it excluded, never the T padded positions."""

import math

import pytest
import torch

import dgm
from dgm.data import get
from dgm.data.text import TextData
from dgm.evaluate.likelihood import evaluate
from dgm.registry import config_for_data

V, T, END = 4, 6, 0
# a hand-made padded batch: 2 real tokens + 4 padding, and 5 real tokens + 1 padding
X = torch.tensor([[2, END, END, END, END, END], [1, 2, 3, 1, END, END]])
REAL = torch.tensor([2, 5])


def uniform_model(name, end_token=END):
    """A real gpt or char_rnn whose every conditional is uniform over V tokens (output layer
    zeroed), so each position costs exactly log V nats."""
    if name == "gpt":
        model = dgm.create(
            "gpt", (T,), vocab_size=V, end_token=end_token, n_layer=1, n_head=1, n_embd=8
        )
        torch.nn.init.zeros_(model.wte.weight)  # tied output layer: logits h @ 0 = 0
    else:
        model = dgm.create("char_rnn", (T,), vocab_size=V, end_token=end_token, hidden_size=8)
        torch.nn.init.zeros_(model.head.weight)
        torch.nn.init.zeros_(model.head.bias)
    return model.double().eval()


@pytest.mark.parametrize("name", ["gpt", "char_rnn"])
def test_token_counts_end_at_the_first_end_token(name):
    model = uniform_model(name)
    assert model.token_counts(X).tolist() == REAL.tolist()
    no_end = torch.tensor([[1, 2, 3, 1, 2, 3]])  # no end token: all T are real
    assert model.token_counts(no_end).tolist() == [T]
    running = uniform_model(name, end_token=-1)  # running text: every position is a token
    assert running.token_counts(X).tolist() == [T, T]


@pytest.mark.parametrize("name", ["gpt", "char_rnn"])
def test_nats_per_token_divide_the_sequence_nll_by_the_real_tokens(name):
    model = uniform_model(name)
    torch.testing.assert_close(model.log_prob(X), torch.full((2,), -T * math.log(V)).double())
    expected = 2 * T * math.log(V) / 7  # Σ NLL over Σ real tokens (2 + 5), not over 2·T = 12
    out = evaluate(model, TextData(X, vocab="\nabc", name="t", end_token=END))
    assert out["nats_per_token"] == pytest.approx(expected, rel=1e-12)
    assert out["bits_per_token"] == pytest.approx(expected / math.log(2), rel=1e-12)
    assert out["tokens"] == pytest.approx(3.5)
    assert out["nats_per_token"] != pytest.approx(math.log(V))  # the padded-position figure
    assert "bits_per_dim" not in out  # per padded position: not reported for token models
    loss = model.loss(X)  # the training metric uses the same unit
    assert float(loss.metrics["nats_per_token"]) == pytest.approx(expected, rel=1e-12)
    assert float(loss.value.detach()) == pytest.approx(
        T * math.log(V), rel=1e-12
    )  # nats per sequence


def test_the_standard_error_is_that_of_the_ratio_and_reduces_to_nll_se_over_t():
    # running text: every sequence has T real tokens, so the ratio's SE is nll_se / T
    model = dgm.create("gpt", (T,), vocab_size=V, n_layer=1, n_head=1, n_embd=8).double()
    x = torch.randint(V, (40, T), generator=torch.Generator().manual_seed(0))
    out = evaluate(model, TextData(x, vocab="\nabc", name="t"))
    assert out["nats_per_token"] == pytest.approx(out["nll"] / T, rel=1e-12)
    assert out["nats_per_token_se"] == pytest.approx(out["nll_se"] / T, rel=1e-9)
    # padded: the delta-method SE of Σ nll_i / Σ n_i, checked against its direct formula
    padded = uniform_model("gpt")
    torch.nn.init.normal_(padded.wte.weight, generator=torch.Generator().manual_seed(1))
    x = torch.cat([X, torch.tensor([[3, 3, END, END, END, END], [1, 1, 1, 2, END, END]])])
    out = evaluate(padded, TextData(x, vocab="\nabc", name="t", end_token=END))
    nll = -padded.log_prob(x).detach()
    n = padded.token_counts(x).double()
    r = nll.sum() / n.sum()
    se = ((nll - r * n).square().sum() / (len(x) * (len(x) - 1))).sqrt() / n.mean()
    assert out["nats_per_token"] == pytest.approx(float(r), rel=1e-12)
    assert out["nats_per_token_se"] == pytest.approx(float(se), rel=1e-9)


def test_words_give_the_model_its_end_token_and_running_text_none(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("cat\ndog\nhorse\nemu\nowl\n" * 4)
    data = get("words", "train", str(words), block_size=8)
    assert data.vocab[data.info.end_token] == "\n"
    assert data.subset(torch.arange(2)).info.end_token == data.info.end_token
    config = config_for_data("gpt", data, {})
    assert config["end_token"] == data.info.end_token
    text = tmp_path / "text.txt"
    text.write_text("a line\nanother line\n" * 50)
    running = get("text", "train", str(text), block_size=8)
    assert running.info.end_token is None and "end_token" not in config_for_data("gpt", running, {})


def test_an_end_token_outside_the_vocabulary_is_refused():
    with pytest.raises(ValueError, match=r"end_token must be a token in 0\.\.3"):
        dgm.create("gpt", (T,), vocab_size=V, end_token=V, n_layer=1, n_head=1, n_embd=8)
