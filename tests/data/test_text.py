"""Character-level text data: vocabulary, windows, contiguous held-out tails, words,
fortunes, and the vocabulary reaching config.json and `dgm sample --out FILE.txt`."""

import json

import pytest
import torch

import dgm
from dgm.data import DataConfig, get
from dgm.data.text import decode, encode, package_words
from helpers import quiet_config


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "story.txt"
    path.write_text("".join(chr(ord("a") + (i * 7) % 11) for i in range(1000)) + "zé\n")
    return path


def test_vocabulary_is_the_sorted_characters_of_the_whole_file(text_file):
    text = text_file.read_text()
    for split in ("train", "valid", "test"):
        data = get("text", split, str(text_file), block_size=8)
        assert data.vocab == "".join(sorted(set(text)))  # "é" and "z" are only in test
        assert data.x.dtype == torch.int64 and tuple(data.event_shape) == (8,)
        assert int(data.x.max()) < len(data.vocab)


def test_splits_are_contiguous_tails_and_train_windows_never_reach_them(text_file):
    text = text_file.read_text()
    n = len(text)
    train, valid, test = (get("text", s, str(text_file), block_size=10) for s in dgm.data.SPLITS)
    decoded = {name: decode(d.x, d.vocab) for name, d in (("train", train), ("test", test))}
    # valid/test windows do not overlap and tile the tails in order
    assert "".join(decode(test.x, test.vocab)) == text[n - 100 :][: 10 * len(test)].rstrip("\n")
    assert "".join(decode(valid.x, valid.vocab)) == text[n - 200 : n - 100]
    # train windows overlap by half (stride 5) and end before the valid tail
    assert len(train) == (n - 200 - 10) // 5 + 1
    assert decoded["train"][1] == text[5:15]
    last = (len(train) - 1) * 5 + 10
    assert last <= n - 200


def test_each_tail_is_its_fraction_of_the_characters_rounded_to_the_nearest(tmp_path):
    """1,000 characters, valid 0.0996 and test 0.1236: tails of 100 and 124 characters
    (rounded to the nearest), 25 and 31 windows of 4 (flooring would give 24 and 30)."""
    path = tmp_path / "t.txt"
    text = "".join(chr(ord("a") + (i * 7) % 11) for i in range(1000))
    path.write_text(text)
    split = {s: get("text", s, str(path), block_size=4, valid_fraction=0.0996,
                    test_fraction=0.1236) for s in dgm.data.SPLITS}  # fmt: skip
    assert len(split["test"]) == 31 and len(split["valid"]) == 25
    assert "".join(decode(split["test"].x, split["test"].vocab)) == text[-124:]
    assert "".join(decode(split["valid"].x, split["valid"].vocab)) == text[-224:-124]
    assert len(split["train"]) == (1000 - 224 - 4) // 2 + 1  # stride 2, before the tails


def test_text_errors_name_the_fix(tmp_path, text_file):
    with pytest.raises(FileNotFoundError, match="--data-root"):
        get("text", "train")
    with pytest.raises(ValueError, match="block-size"):
        get("text", "valid", str(text_file), block_size=500)
    with pytest.raises(ValueError, match="block_size must be"):
        get("text", "train", str(text_file), block_size=1)
    with pytest.raises(FileNotFoundError, match="does not exist: pass a file of one word"):
        get("words", "train", str(tmp_path / "nope"))
    (tmp_path / "long").write_text("abcdefghijklmnop\n")
    with pytest.raises(ValueError, match="no word shorter than block_size=16"):
        get("words", "train", str(tmp_path / "long"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="fortunes-min"):
        get("fortunes", "train", str(tmp_path / "empty"))


def test_encode_and_decode_round_trip():
    vocab = "\nabc"
    tokens = encode("abc\n\ncab\n", vocab).view(3, 3)
    assert decode(tokens, vocab) == ["abc", "\\n\\nc", "ab"]  # trailing ends dropped


def test_words_are_padded_with_the_end_token_and_split_by_a_seed():
    train, valid, test = (get("words", s) for s in dgm.data.SPLITS)
    # the pip word list (english-words' web2), in sorted order whatever the hash seed
    assert len(train) + len(valid) + len(test) == sum(len(w) < 16 for w in package_words())
    assert decode(train.x[:3], train.vocab) == ["A", "Aani", "Aaron"]
    assert train.vocab == "\n-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    assert train.vocab == valid.vocab == test.vocab and train.vocab[0] == "\n"
    assert tuple(train.event_shape) == (16,)
    assert (train.x[:, -1] == 0).all()  # every word ends with at least one end token
    words = [set(map(tuple, d.x.tolist())) for d in (train, valid, test)]
    assert not (words[0] & words[1]) and not (words[0] & words[2]) and not (words[1] & words[2])
    assert len(test) == pytest.approx(0.1 * (len(train) + len(valid) + len(test)), abs=1)
    other = get("words", "test", seed=1)
    assert not torch.equal(other.x, test.x)
    assert torch.equal(train.subset(torch.arange(3)).x, train.x[:3])
    assert train.subset(torch.arange(3)).vocab == train.vocab  # kept through subset and to


def test_words_read_a_user_file_one_word_per_line(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("".join(f"w{i:03d}é\n" for i in range(100)) + "\n  \nmuchtoolongaword\n")
    data = {s: get("words", s, str(path), block_size=8) for s in dgm.data.SPLITS}
    assert sum(map(len, data.values())) == 100  # blank lines and words of >= 8 chars dropped
    test = data["test"]
    assert test.vocab == "\n0123456789wé"
    assert set(decode(test.x, test.vocab)) <= {f"w{i:03d}é" for i in range(100)}
    assert (data["train"].x[:, 5:] == 0).all()  # five characters, then end tokens


def test_fortunes_read_the_files_without_indexes(tmp_path):
    (tmp_path / "one").write_text("abcdefghij" * 20)
    (tmp_path / "one.dat").write_bytes(b"\x00\x01\xff")  # binary index: skipped
    data = get("fortunes", "train", str(tmp_path), block_size=8)
    assert data.vocab == "abcdefghij"


def test_train_writes_the_vocabulary_and_sample_writes_text(tmp_path, text_file):
    from dgm.cli import main
    from dgm.train import train

    data = DataConfig("text", root=str(text_file), block_size=6)
    model, _ = train(
        "char_rnn", data, tmp_path / "run", quiet_config(steps=3), progress=False, hidden_size=8
    )
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    vocab = get("text", "train", str(text_file)).vocab
    assert saved["vocab"] == vocab and saved["model_config"]["vocab_size"] == len(vocab)
    assert saved["data"]["options"]["block_size"] == 6 and tuple(model.event_shape) == (6,)
    out = tmp_path / "s.txt"
    assert (
        main(["sample", str(tmp_path / "run"), "-n", "5", "--top-k", "3", "--out", str(out)]) == 0
    )
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and all(set(line) <= set(vocab) | {"\\", "n"} for line in lines)
