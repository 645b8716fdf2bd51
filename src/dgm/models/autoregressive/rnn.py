"""Character-level recurrent language model: p(x) = Π_t p(x_t | x_<t) over T tokens.

References:
    Elman 1990, Finding Structure in Time, Cognitive Science 14 (the simple RNN).
    Hochreiter & Schmidhuber 1997, Long Short-Term Memory, Neural Computation 9 (LSTM).
    Cho et al. 2014, arXiv:1406.1078 (GRU).
    Karpathy 2015, The Unreasonable Effectiveness of Recurrent Neural Networks (char-rnn).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import Tensor, nn

from dgm.model import ContextConditional
from dgm.models.autoregressive.sampling import SequenceSampleOptions, draw
from dgm.models.autoregressive.sequence import TokenSequenceModel
from dgm.nn import mlp
from dgm.registry import register

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@dataclasses.dataclass
class CharRNNConfig(ContextConditional):
    vocab_size: int = 256  # tokens 0..V-1; dgm train sets it from the text's vocabulary
    cell: Literal["rnn", "lstm", "gru"] = "lstm"  # recurrent cell: tanh RNN, LSTM or GRU
    hidden_size: int = 256  # width of the hidden state (char-rnn's small model)
    num_layers: int = 2  # stacked recurrent layers
    embedding_dim: int = 64  # width of the token embedding fed to the first layer
    dropout: float = 0.0  # dropout between stacked layers (training only)
    end_token: int = -1  # padded text: tokens after the first one are padding; -1: no padding


@register("char_rnn", CharRNNConfig)
class CharRNN(TokenSequenceModel):
    """Recurrent language model over T tokens: log_prob is exact, in nats per sequence.

    The input at step t is the embedding of x_{t-1}, and at t = 1 a learned start token (an
    extra embedding row, id V, used only as input); the first hidden state is learned too.
    The top layer's state gives the logits of x_t, so p(x_1) is modelled and
    ``conditional_logits`` (B, T, V) come from one teacher-forced pass. ``sample`` draws
    the T tokens one by one, carrying the hidden state (temperature, top-k, top-p); with a
    ``prompt`` (token ids (P,)) the RNN reads the prompt in one call and draws the rest.
    With a ``context_shape`` the model is p(x | c) for a float context c, e.g. an image (a
    captioner, image to text): an MLP maps the flattened c to an offset of the first hidden
    state of every layer (Vinyals et al. 2015 feed the image once, at the start, too).

    References:
        Elman 1990; Hochreiter & Schmidhuber 1997 (LSTM); Cho et al. 2014,
        arXiv:1406.1078 (GRU); Karpathy 2015 (char-rnn); Vinyals et al. 2015, Show and
        Tell: A Neural Image Caption Generator, arXiv:1411.4555 (image context).

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("char_rnn", (6,), vocab_size=5, cell="gru", hidden_size=8)
        >>> x = model.sample(3, generator=torch.Generator().manual_seed(0), temperature=0.8)
        >>> x.shape, x.dtype, model.log_prob(x).shape, model.conditional_logits(x).shape
        (torch.Size([3, 6]), torch.int64, torch.Size([3]), torch.Size([3, 6, 5]))
    """

    sample_options = SequenceSampleOptions

    def __init__(self, event_shape: Iterable[int], config: CharRNNConfig) -> None:
        super().__init__(event_shape, config)
        if config.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {config.cell!r}")
        for name in ("hidden_size", "num_layers", "embedding_dim"):
            if getattr(config, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
        V, H, L = config.vocab_size, config.hidden_size, config.num_layers
        self.embed = nn.Embedding(V + 1, config.embedding_dim)  # id V: the start token
        dropout = config.dropout if L > 1 else 0.0
        self.rnn = CELLS[config.cell](config.embedding_dim, H, L, batch_first=True, dropout=dropout)
        self.h0 = nn.Parameter(torch.zeros(L, 1, H))  # learned start state
        if config.cell == "lstm":
            self.c0 = nn.Parameter(torch.zeros(L, 1, H))  # the LSTM's start cell state
        self.head = nn.Linear(H, V)
        cond = self.conditioning
        if cond.kind == "context":  # c -> an offset of the start state of every layer
            self.context_net = mlp(math.prod(cond.context_shape), (H,), L * H)

    def _start(self, n: int, c: Tensor | None = None) -> Any:
        """The start state for a batch of n: h (L, n, H), or (h, c) for an LSTM; learned,
        plus the context network's offset when the model takes a context c."""
        h = self.h0.expand(-1, n, -1)  # (L, n, H)
        if c is not None:
            L, H = self.config.num_layers, self.config.hidden_size
            offset = self.context_net(c.flatten(1)).view(n, L, H)  # (n, L, H)
            h = h + offset.transpose(0, 1)  # (L, n, H)
        h = h.contiguous()
        if self.config.cell == "lstm":
            return h, self.c0.expand(-1, n, -1).contiguous()
        return h

    # -- DiscreteAutoregressive -------------------------------------------------------------

    def conditional_logits(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """Logits (B, T, V) of p(x_t | x_<t) by teacher forcing."""
        x = self.check_x(x)
        c = self.check_c(c, len(x))
        start = torch.full_like(x[:, :1], self.config.vocab_size)  # (B, 1): the start token
        inputs = torch.cat([start, x[:, :-1]], dim=1)  # (B, T): x shifted right
        h, _ = self.rnn(self.embed(inputs), self._start(len(x), c))  # (B, T, H)
        return self.head(h)  # (B, T, V)

    # -- the contract -----------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        n: int,
        c: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> Tensor:
        """n sequences (n, T) int64, drawn token by token with the hidden state carried; the
        first P come from the ``prompt`` option, read by the RNN in one call."""
        settings = self.sample_settings(options)
        c = self.check_c(c, n)
        prompt = self.check_prompt(settings.prompt)  # (P,)
        P = len(prompt)
        out = torch.empty(n, self.num_dims, dtype=torch.long, device=self.device)
        out[:, :P] = prompt
        start = torch.full((n, 1), self.config.vocab_size, dtype=torch.long, device=self.device)
        tokens = torch.cat([start, out[:, :P]], dim=1)  # (n, 1 + P): start token + prompt
        state = self._start(n, c)
        for t in range(P, self.num_dims):
            h, state = self.rnn(self.embed(tokens), state)  # h: (n, t_in, H)
            out[:, t] = draw(self.head(h[:, -1]), settings, generator)
            tokens = out[:, t : t + 1]  # (n, 1)
        return out
