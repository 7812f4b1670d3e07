"""The reader's network, in plain PyTorch: MiniLM's six BERT layers reading a question and a
passage together, with two heads. Used only to train and export the reader (`train.py`); ctqa
answers with its ONNX export (`reader.py`), without torch.

- `answer_logit`: from [CLS], does this passage answer the question (a logit);
- `start_logits`, `end_logits`: per word piece, where the answer span starts and ends; [CLS]
  (position 0) stands for "no answer here", as in SQuAD 2.0 readers.

The layers start from the bundled all-MiniLM-L6-v2 weights (`from_minilm`); its word, position
and type embeddings stay frozen, so the trained reader shares them with the encoder.

>>> net = ReaderNet(ReaderShape(layers=1))
>>> ids = torch.tensor([[101, 2040, 102, 3000, 102]])
>>> logit, start, end = net(ids, torch.ones_like(ids), torch.tensor([[0, 0, 0, 1, 1]]))
>>> tuple(logit.shape), tuple(start.shape)
((1,), (1, 5))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class ReaderShape:
    """The network's shape; the defaults are MiniLM-L6-H384's, and `of_model` reads the
    bundled model's own `config.json`."""

    vocab: int = 30522
    dim: int = 384
    layers: int = 6
    heads: int = 12
    ffn: int = 1536
    positions: int = 512
    types: int = 2
    eps: float = 1e-12
    dropout: float = 0.1

    @classmethod
    def of_model(cls, config: Path) -> ReaderShape:
        """The shape a BERT `config.json` describes."""
        import json

        c = json.loads(config.read_text(encoding="utf-8"))
        return cls(
            vocab=c["vocab_size"],
            dim=c["hidden_size"],
            layers=c["num_hidden_layers"],
            heads=c["num_attention_heads"],
            ffn=c["intermediate_size"],
            positions=c["max_position_embeddings"],
            types=c["type_vocab_size"],
            eps=c["layer_norm_eps"],
            dropout=c["hidden_dropout_prob"],
        )


class Embeddings(nn.Module):
    def __init__(self, s: ReaderShape):
        super().__init__()
        self.word_embeddings = nn.Embedding(s.vocab, s.dim)
        self.position_embeddings = nn.Embedding(s.positions, s.dim)
        self.token_type_embeddings = nn.Embedding(s.types, s.dim)
        self.LayerNorm = nn.LayerNorm(s.dim, eps=s.eps)

    def forward(self, input_ids, token_type_ids):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
        total = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings(token_type_ids)
        )
        return self.LayerNorm(total)


class Layer(nn.Module):
    """One BERT layer: self-attention, then the feed-forward block, each with a residual."""

    def __init__(self, s: ReaderShape):
        super().__init__()
        self.heads = s.heads
        self.query = nn.Linear(s.dim, s.dim)
        self.key = nn.Linear(s.dim, s.dim)
        self.value = nn.Linear(s.dim, s.dim)
        self.attention_out = nn.Linear(s.dim, s.dim)
        self.attention_norm = nn.LayerNorm(s.dim, eps=s.eps)
        self.ffn_in = nn.Linear(s.dim, s.ffn)
        self.ffn_out = nn.Linear(s.ffn, s.dim)
        self.ffn_norm = nn.LayerNorm(s.dim, eps=s.eps)
        self.dropout = nn.Dropout(s.dropout)

    def forward(self, hidden: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = hidden.shape
        size = dim // self.heads

        def split(x):
            return x.view(batch, tokens, self.heads, size).transpose(1, 2)

        q, k, v = split(self.query(hidden)), split(self.key(hidden)), split(self.value(hidden))
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(size) + mask_bias, dim=-1)
        context = (weights @ v).transpose(1, 2).reshape(batch, tokens, dim)
        hidden = self.attention_norm(hidden + self.dropout(self.attention_out(context)))
        inner = nn.functional.gelu(self.ffn_in(hidden))
        return self.ffn_norm(hidden + self.dropout(self.ffn_out(inner)))


def mask_bias(attention_mask: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """Additive attention bias, [batch, 1, 1, tokens]: 0 where a token is read, very negative on
    padding."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * -10000.0


class ReaderNet(nn.Module):
    """Question and passage in, (`answer_logit`, `start_logits`, `end_logits`) out."""

    def __init__(self, shape: ReaderShape | None = None):
        super().__init__()
        s = shape or ReaderShape()
        self.shape = s
        self.embeddings = Embeddings(s)
        self.layers = nn.ModuleList(Layer(s) for _ in range(s.layers))
        self.pooler = nn.Linear(s.dim, s.dim)  # BERT's pooler, from MiniLM's weights
        self.answer_head = nn.Linear(s.dim, 1)
        self.span_head = nn.Linear(s.dim, 2)
        self.dropout = nn.Dropout(s.dropout)

    def lower(self, input_ids, attention_mask, token_type_ids, layers: int) -> torch.Tensor:
        """Hidden states after the first `layers` layers (cached while training upper ones)."""
        hidden = self.embeddings(input_ids, token_type_ids)
        bias = mask_bias(attention_mask, hidden.dtype)
        for layer in self.layers[:layers]:
            hidden = layer(hidden, bias)
        return hidden

    def upper(self, hidden, attention_mask, layers: int):
        """The remaining layers and the heads, from the states after `layers` layers."""
        bias = mask_bias(attention_mask, hidden.dtype)
        for layer in self.layers[layers:]:
            hidden = layer(hidden, bias)
        pooled = torch.tanh(self.pooler(hidden[:, 0]))
        answer_logit = self.answer_head(self.dropout(pooled))[:, 0]
        start, end = self.span_head(hidden).unbind(dim=-1)
        # padding can never be a span boundary
        padding = (attention_mask == 0).to(start.dtype) * -10000.0
        return answer_logit, start + padding, end + padding

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.lower(input_ids, attention_mask, token_type_ids, 0)
        return self.upper(hidden, attention_mask, 0)


# MiniLM's parameter names (sentence-transformers' BertModel) -> ours, per layer.
LAYER_NAMES = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attention_out",
    "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "ffn_in",
    "output.dense": "ffn_out",
    "output.LayerNorm": "ffn_norm",
}


def minilm_state(weights: Path, shape: ReaderShape) -> dict[str, torch.Tensor]:
    """MiniLM's `model.safetensors` as a state dict of `ReaderNet` (heads excluded)."""
    from safetensors.torch import load_file

    raw = load_file(str(weights))
    state = {}
    for name, tensor in raw.items():
        if name.startswith("embeddings.") and not name.endswith("position_ids"):
            state[name] = tensor
        elif name.startswith("pooler.dense."):
            state["pooler." + name.rsplit(".", 1)[1]] = tensor
        elif name.startswith("encoder.layer."):
            _, _, number, rest = name.split(".", 3)
            if int(number) >= shape.layers:
                continue
            module, kind = rest.rsplit(".", 1)
            state[f"layers.{number}.{LAYER_NAMES[module]}.{kind}"] = tensor
    return state


def from_minilm(weights: Path, shape: ReaderShape | None = None, seed: int = 0) -> ReaderNet:
    """A `ReaderNet` with MiniLM's embeddings, layers and pooler, and fresh heads (seeded)."""
    torch.manual_seed(seed)
    net = ReaderNet(shape or ReaderShape.of_model(weights.parent / "config.json"))
    missing, unexpected = net.load_state_dict(minilm_state(weights, net.shape), strict=False)
    fresh = {n for n in missing if not n.startswith(("answer_head.", "span_head."))}
    if fresh or unexpected:
        raise ValueError(f"MiniLM weights do not fit the reader: {sorted(fresh | set(unexpected))}")
    for p in net.embeddings.parameters():
        p.requires_grad = False
    return net
