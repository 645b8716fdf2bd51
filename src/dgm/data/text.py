"""Character-level text: any UTF-8 file (``text``), a word list (``words``) and a small
corpus of fortunes (``fortunes``); x are integer tokens of event shape (T,), int64.

``words`` needs nothing but pip: by default it is the ``web2`` list of the dependency
``english-words`` (MIT; 235,970 words of Webster's Second International Dictionary, 1934,
as FreeBSD ships it in /usr/share/dict/web2, proper nouns capitalised, letters and "-"
only), read from the installed package's files, offline, and sorted, so every machine
gets the same words in the same order. ``--data-root FILE`` reads any list of one word
per line instead, e.g. Debian's /usr/share/dict/words (package ``wamerican``).
``fortunes`` reads the optional Debian package ``fortunes-min`` (see ``dgm.data.system``).

The vocabulary is the sorted set of characters of the *whole* corpus (deterministic, the
same for every split): built from the train split alone, a valid or test character that
train never shows would have no token and the held-out likelihood could not be computed.
It is stored on the data (``TextData.vocab``: token i is ``vocab[i]``) and ``dgm train``
writes it into config.json, so ``dgm sample`` can decode tokens back to text.

Splits of running text (``text``, ``fortunes``) are contiguous: the last ``test_fraction``
of the characters is "test", the ``valid_fraction`` before it "valid" (each count rounded to
the nearest character), the rest "train",
so no held-out character is in a train window. Train windows of ``block_size`` characters
start every ``block_size // 2`` characters (overlapping halves: twice the windows of a
plain cut, each character seen in two contexts); valid and test windows do not overlap.
``words`` has one word per sequence, padded with the end token "\\n" to ``block_size``
(words that do not fit are dropped), split by a seeded permutation.

Example:
    >>> import os, tempfile
    >>> from dgm.data import get
    >>> path = os.path.join(tempfile.mkdtemp(), "abc.txt")
    >>> _ = open(path, "w").write("abcabcabca" * 10)
    >>> data = get("text", "train", path, block_size=8)
    >>> data.vocab, tuple(data.event_shape), data.x.dtype
    ('abc', (8,), torch.int64)
    >>> decode(data.x[:1], data.vocab)
    ['abcabcab']
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dgm.data.dataset import TensorData, register_dataset
from dgm.data.files import split_index
from dgm.data.options import TextOptions, WordsOptions
from dgm.data.system import FORTUNES_DIR, hidden_note, system_path

END = "\n"  # the end token padding each word of ``words``
WORD_LIST = "web2"  # the english-words list ``words`` reads by default (see the module)


class TextData(TensorData):
    """``TensorData`` of integer tokens with its character ``vocab`` (token i is the
    character ``vocab[i]``) and ``end_token``: the token whose first occurrence ends each
    sequence of padded data (``words``), the rest being padding that per-token figures do
    not count; None for running text. Both are in ``info`` and survive ``subset``/``to``."""

    def __init__(self, x: Tensor, *, vocab: str, name: str, end_token: int | None = None) -> None:
        super().__init__(x, name=name, vocab=vocab, end_token=end_token)


def encode(text: str, vocab: str) -> Tensor:
    """The characters of ``text`` as int64 tokens (their index in ``vocab``)."""
    lookup = {ch: i for i, ch in enumerate(vocab)}
    missing = sorted(set(text) - set(lookup))
    if missing:
        raise ValueError(f"characters {missing[:10]} are not in the vocabulary")
    return torch.tensor([lookup[ch] for ch in text], dtype=torch.long)


def encode_prompt(text: str, vocab: str) -> Tensor:
    """``text`` as int64 token ids (P,) of the character ``vocab`` (token i is ``vocab[i]``);
    a character the vocabulary lacks is an error naming it. What ``sample(prompt=...)`` of
    a sequence model takes, and the tokens of a text that becomes c.

    Example:
        >>> encode_prompt("abba", "ab").tolist()
        [0, 1, 1, 0]
    """
    missing = sorted(set(text) - set(vocab))
    if missing:
        raise ValueError(
            f"the prompt has characters the training text never had: "
            f"{', '.join(map(repr, missing))}; use characters of the run's vocabulary {vocab!r}"
        )
    return encode(text, vocab)  # (P,)


def encode_padded(texts: list[str], length: int, vocab: str) -> Tensor:
    """``texts`` as int64 tokens (N, length) of ``vocab``, each padded with the end token
    "\\n" (which ``vocab`` must hold); a text with a character outside ``vocab``, or
    longer than ``length``, is an error.

    Example:
        >>> encode_padded(["ab", "b"], 3, "\\nab").tolist()
        [[1, 2, 0], [2, 0, 0]]
        >>> encode_padded(["a"], 3, "\\t\\na").tolist()  # a tab sorts before the end token
        [[2, 1, 1]]
    """
    if END not in vocab:
        raise ValueError("the run's vocabulary has no end token to pad the text with")
    out = torch.full((len(texts), length), vocab.index(END), dtype=torch.long)
    for i, text in enumerate(texts):
        if len(text) > length:
            raise ValueError(
                f"the text {text!r} has {len(text)} characters; this run's texts hold at most "
                f"{length}"
            )
        out[i, : len(text)] = encode_prompt(text, vocab)  # names any unknown character
    return out  # (N, length)


def prompt_context(text: str, vocab: str, context_shape: tuple[int, ...]) -> Tensor:
    """The c a text gives a model conditioned on a text of ``context_shape`` (T,): its
    tokens of the run's ``vocab``, padded with the end token, int64 (T,)."""
    if len(context_shape) != 1:
        raise ValueError(f"a text context has shape (T,), the model takes {context_shape}")
    return encode_padded([text], context_shape[0], vocab)[0]


def decode(tokens: Tensor, vocab: str) -> list[str]:
    """One string per row of integer ``tokens`` (n, T): trailing end tokens ("\\n") are
    dropped and inner newlines written as the two characters "\\\\n", one line per row."""
    rows = []
    for row in tokens.reshape(len(tokens), -1).tolist():
        if any(not 0 <= t < len(vocab) for t in row):
            raise ValueError(f"tokens outside 0..{len(vocab) - 1} of the vocabulary")
        rows.append("".join(vocab[t] for t in row).rstrip(END).replace("\n", "\\n"))
    return rows


def _check(block_size: int, valid_fraction: float, test_fraction: float) -> None:
    if not isinstance(block_size, int) or block_size < 2:
        raise ValueError(f"block_size must be an int >= 2, got {block_size!r}")
    for name, f in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ValueError(f"{name} must be in [0, 1), got {f}")
    if valid_fraction + test_fraction >= 1:
        raise ValueError("valid_fraction + test_fraction must leave some text to train on")


def _windows(tokens: Tensor, block_size: int, stride: int) -> Tensor:
    """Windows (N, block_size) of ``tokens`` starting every ``stride`` tokens."""
    if len(tokens) < block_size:
        return tokens.new_empty(0, block_size)
    return tokens.unfold(0, block_size, stride).contiguous()  # (N, block_size)


def running_text(
    name: str,
    text: str,
    split: str,
    block_size: int,
    valid_fraction: float,
    test_fraction: float,
) -> TextData:
    """Split ``split`` of ``text`` as windows of ``block_size`` tokens (see the module)."""
    _check(block_size, valid_fraction, test_fraction)
    vocab = "".join(sorted(set(text)))
    tokens = encode(text, vocab)  # (N,)
    n = len(tokens)
    n_test, n_valid = round(test_fraction * n), round(valid_fraction * n)
    bounds = {
        "train": (0, n - n_test - n_valid),
        "valid": (n - n_test - n_valid, n - n_test),
        "test": (n - n_test, n),
    }
    lo, hi = bounds[split]
    stride = max(1, block_size // 2) if split == "train" else block_size
    x = _windows(tokens[lo:hi], block_size, stride)
    if len(x) == 0:
        raise ValueError(
            f"split {split!r} of {name!r} holds {hi - lo} characters, fewer than one window "
            f"of block_size={block_size}: use a longer text, a smaller --block-size or "
            "larger fractions"
        )
    return TextData(x, vocab=vocab, name=name)


@register_dataset(
    "text", "your UTF-8 text: --data-root FILE, windows of --block-size characters", TextOptions
)
def load_text(split: str, root: str | None, options: TextOptions) -> TextData:
    """Windows of ``block_size`` characters of the UTF-8 file ``root`` (see the module)."""
    if root is None:
        raise FileNotFoundError("dataset 'text' reads your file: pass --data-root FILE")
    path = Path(root).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"--data-root {path} is not a file of text")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e})") from None
    o = options
    return running_text("text", text, split, o.block_size, o.valid_fraction, o.test_fraction)


@register_dataset(
    "fortunes", "Debian fortunes-min, concatenated: windows of --block-size chars", TextOptions
)
def load_fortunes(split: str, root: str | None, options: TextOptions) -> TextData:
    """The fortune files of ``root`` (default /usr/share/games/fortunes, Debian package
    ``fortunes-min``; the .dat indexes and .u8 links are skipped), in sorted order."""
    folder = Path(root).expanduser() if root is not None else system_path(FORTUNES_DIR)
    files = (
        sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8")
        )
        if folder is not None and folder.is_dir()
        else []
    )
    if not files:
        raise FileNotFoundError(
            f"no fortune files in {folder or FORTUNES_DIR}: install the Debian package "
            "fortunes-min (apt-get install fortunes-min) or pass --data-root FOLDER"
            + hidden_note(FORTUNES_DIR)
        )
    text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in files)
    o = options
    return running_text("fortunes", text, split, o.block_size, o.valid_fraction, o.test_fraction)


@functools.cache
def package_words(name: str = WORD_LIST) -> tuple[str, ...]:
    """The word list ``name`` of the pip package ``english-words``, sorted (the package
    stores a set, whose order would change with the hash seed)."""
    from english_words import get_english_words_set

    return tuple(sorted(get_english_words_set([name])))


def _file_words(path: Path) -> list[str]:
    if not path.is_file():
        why = "is a folder" if path.is_dir() else "does not exist"
        raise FileNotFoundError(
            f"--data-root {path} {why}: pass a file of one word per line, or no --data-root "
            "for the English word list dgm ships (english-words' web2)"
        )
    return [w for w in path.read_text(encoding="utf-8").split("\n") if w.strip()]


def _word_tokens(words: list[str] | tuple[str, ...], block_size: int, source: str) -> TextData:
    """The ``words`` shorter than ``block_size`` padded with END to ``block_size`` tokens
    (N, block_size), with their vocabulary; ``encode`` vectorised through code points
    (the vocabulary is sorted, so a character's token is a searchsorted)."""
    words = [w for w in words if len(w) < block_size]
    if not words:
        raise ValueError(f"{source} holds no word shorter than block_size={block_size}")
    vocab = "".join(sorted(set("".join(words)) | {END}))
    text = "".join(w.ljust(block_size, END) for w in words)
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)  # (N * block_size,)
    table = np.frombuffer(vocab.encode("utf-32-le"), dtype=np.uint32)  # (V,) sorted
    tokens = torch.from_numpy(np.searchsorted(table, points).astype(np.int64))
    x = tokens.view(len(words), block_size)  # (N, T)
    return TextData(x, vocab=vocab, name="words", end_token=vocab.index(END))


@functools.cache
def _package_word_tokens(block_size: int) -> TextData:
    """``_word_tokens`` of ``package_words()``, built once per process and block size
    (a split indexes it, which copies)."""
    return _word_tokens(package_words(), block_size, f"english-words' {WORD_LIST}")


@register_dataset(
    "words", "English words (english-words' web2 or --data-root FILE), one a row", WordsOptions
)
def load_words(split: str, root: str | None, options: WordsOptions) -> TextData:
    """One word per line of ``root`` (default: the sorted ``web2`` list of the pip package
    ``english-words``, see the module) as ``block_size`` tokens: the word, then the end
    token "\\n" repeated. Words of ``block_size`` characters or more are dropped (each
    needs one end token)."""
    block_size = options.block_size
    if root is None:
        words = _package_word_tokens(block_size)
    else:
        path = Path(root).expanduser()
        words = _word_tokens(_file_words(path), block_size, str(path))
    index = split_index(
        len(words), split, options.valid_fraction, options.test_fraction, options.seed
    )
    return words.subset(torch.from_numpy(index))


__all__ = [
    "TextData",
    "decode",
    "encode",
    "encode_padded",
    "encode_prompt",
    "load_fortunes",
    "load_text",
    "load_words",
    "package_words",
    "prompt_context",
]
