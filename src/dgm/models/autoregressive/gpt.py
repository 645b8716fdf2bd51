"""Decoder-only transformer language model (GPT), in the spirit of nanoGPT's model.py.

p(x) = Π_t p(x_t | x_<t) over T tokens, with causal self-attention, learned positions,
pre-LayerNorm blocks and the output layer tied to the token embedding.

References:
    Vaswani et al. 2017, Attention Is All You Need, arXiv:1706.03762.
    Radford et al. 2019, Language Models are Unsupervised Multitask Learners (GPT-2).
    Karpathy, nanoGPT (github.com/karpathy/nanoGPT, model.py): the structure followed here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dgm.models.autoregressive.sampling import SequenceSampleOptions, draw
from dgm.models.autoregressive.sequence import TokenSequenceModel
from dgm.registry import register

Cache = list[tuple[Tensor, Tensor]]  # per layer: keys and values (B, nh, t, hs) so far


@dataclasses.dataclass
class GPTConfig:
    vocab_size: int = 256  # tokens 0..V-1; dgm train sets it from the text's vocabulary
    n_layer: int = 4  # transformer blocks (nanoGPT's Shakespeare-char run uses 6)
    n_head: int = 4  # attention heads; n_embd must be a multiple of it
    n_embd: int = 128  # width of the residual stream (small: trains on a CPU)
    dropout: float = 0.0  # on attention weights and residual branches (0: small data, short runs)
    end_token: int = -1  # padded text: tokens after the first one are padding; -1: no padding


@dataclasses.dataclass
class GPTSampleOptions(SequenceSampleOptions):
    use_cache: bool = True  # keep keys and values of past tokens (same draws, T times less work)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention where position t sees positions ≤ t."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, h: Tensor, past: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Any]:
        """h (B, t, C) -> (B, t, C), with the keys and values including ``past`` (the
        cached ones of earlier positions: the t new positions come after them)."""
        B, t, C = h.shape
        hs = C // self.n_head
        q, k, v = self.qkv(h).split(C, dim=2)  # 3 x (B, t, C)
        q = q.view(B, t, self.n_head, hs).transpose(1, 2)  # (B, nh, t, hs)
        k = k.view(B, t, self.n_head, hs).transpose(1, 2)  # (B, nh, t, hs)
        v = v.view(B, t, self.n_head, hs).transpose(1, 2)  # (B, nh, t, hs)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, nh, t_past + t, hs)
            v = torch.cat([past[1], v], dim=2)  # (B, nh, t_past + t, hs)
        # one new query attends to every cached position: no mask; else the causal one
        causal = past is None or t > 1
        if past is not None and t > 1:
            raise ValueError("with a cache, feed one new position at a time")
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=causal)
        y = y.transpose(1, 2).contiguous().view(B, t, C)  # (B, t, C)
        return self.resid_dropout(self.proj(y)), (k, v)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: h + attn(ln(h)), then h + mlp(ln(h))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
            nn.Dropout(config.dropout),
        )

    def forward(self, h: Tensor, past: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Any]:
        a, kv = self.attn(self.ln_1(h), past)
        h = h + a
        return h + self.mlp(self.ln_2(h)), kv


@register("gpt", GPTConfig)
class GPT(TokenSequenceModel):
    """Decoder-only transformer over T tokens: log_prob is exact, in nats per sequence.

    The input is a begin-of-sequence token (an extra id V, used only as input) followed by
    x_1..x_{T-1}, so position t predicts x_t given x_<t and p(x_1) is modelled; T comes
    from the event shape (``--block-size`` of the data), with one learned position each.
    The output layer shares the token embedding's weights (its first V rows). ``sample``
    draws token by token, with a key-value cache unless ``use_cache=False``; with a
    ``prompt`` (token ids (P,)) the cache is filled by one pass over the prompt.

    References:
        Vaswani et al. 2017, arXiv:1706.03762; Radford et al. 2019 (GPT-2);
        Karpathy, nanoGPT model.py.

    Example:
        >>> import torch, dgm
        >>> model = dgm.create("gpt", (6,), vocab_size=5, n_layer=1, n_head=2, n_embd=8)
        >>> x = model.sample(3, generator=torch.Generator().manual_seed(0), top_k=3)
        >>> x.shape, x.dtype, model.log_prob(x).shape, model.conditional_logits(x).shape
        (torch.Size([3, 6]), torch.int64, torch.Size([3]), torch.Size([3, 6, 5]))
    """

    sample_options = GPTSampleOptions

    def __init__(self, event_shape: Iterable[int], config: GPTConfig) -> None:
        super().__init__(event_shape, config)
        for name in ("n_layer", "n_head", "n_embd"):
            if getattr(config, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
        if config.n_embd % config.n_head:
            raise ValueError(f"n_embd={config.n_embd} must be a multiple of n_head={config.n_head}")
        V, C = config.vocab_size, config.n_embd
        self.wte = nn.Embedding(V + 1, C)  # id V: the begin-of-sequence token
        self.wpe = nn.Embedding(self.num_dims, C)  # one learned position per token
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(C)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # residual projections: GPT-2's scaling
            if name.endswith(("attn.proj.weight", "mlp.2.weight")):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def _forward(self, tokens: Tensor, start: int = 0, cache: Cache | None = None) -> Tensor:
        """Logits (B, t, V) for input ``tokens`` (B, t) at positions start..start+t-1;
        ``cache`` (a list, filled on the first call) holds the past keys and values."""
        t = tokens.shape[1]
        pos = torch.arange(start, start + t, device=tokens.device)  # (t,)
        h = self.drop(self.wte(tokens) + self.wpe(pos))  # (B, t, C)
        for i, block in enumerate(self.blocks):
            past = cache[i] if cache is not None and i < len(cache) else None
            h, kv = block(h, past)
            if cache is not None:
                cache[i : i + 1] = [kv]
        h = self.ln_f(h)  # (B, t, C)
        return h @ self.wte.weight[: self.config.vocab_size].T  # (B, t, V): tied weights

    # -- DiscreteAutoregressive -------------------------------------------------------------

    def conditional_logits(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """Logits (B, T, V) of p(x_t | x_<t) by teacher forcing."""
        x = self.check_x(x)
        self.check_c(c, len(x))
        bos = torch.full_like(x[:, :1], self.config.vocab_size)  # (B, 1)
        return self._forward(torch.cat([bos, x[:, :-1]], dim=1))  # (B, T, V)

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
        """n sequences (n, T) int64, drawn token by token, the first P from the ``prompt``
        option; with ``use_cache`` one pass over the prompt fills the cache (prefill), then
        each step feeds only the newest token and reuses the past keys and values."""
        settings = self.sample_settings(options)
        self.check_c(c, n)
        prompt = self.check_prompt(settings.prompt)  # (P,)
        P = len(prompt)
        bos = torch.full((n, 1), self.config.vocab_size, dtype=torch.long, device=self.device)
        seq = torch.cat([bos, prompt.expand(n, P)], dim=1)  # (n, 1 + P)
        cache: Cache = []
        for t in range(P, self.num_dims):
            if settings.use_cache:
                first = 0 if t == P else t  # the prefill feeds BOS + prompt, then one token
                logits = self._forward(seq[:, first:], start=first, cache=cache)[:, -1]  # (n, V)
            else:
                logits = self._forward(seq)[:, -1]  # (n, V): the whole prefix again
            seq = torch.cat([seq, draw(logits, settings, generator)[:, None]], dim=1)
        return seq[:, 1:]  # (n, T): without the begin-of-sequence token
