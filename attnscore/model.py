"""A GPT-2-style decoder-only language model whose attention kind is a config option. The defaults
are the reference experiment's decoder (the course starter): sinusoidal positions added to token
embeddings scaled by sqrt(d_model), pre-LayerNorm residual blocks, a ReLU feed-forward, a final
LayerNorm, an untied output layer and Xavier-uniform init. GPT-2's own choices (learned positions,
GELU, tied embeddings) are options. The loss is computed a chunk of rows at a time (LinearCrossEntropy).
"""

import functools
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from attnscore import attention


@dataclass
class ModelConfig:
    vocab_size: int
    d_model: int = 512
    n_layers: int = 6
    n_heads: int = 8
    d_ff: int = 2048
    dropout: float = 0.1
    attention_dropout: float | None = None  # on the attention weights; None = dropout (reference)
    max_seq_len: int = 512
    attention: str = "dot"  # a kind registered in attnscore.attention.KINDS
    attention_options: dict = field(default_factory=dict)  # that kind's own settings, e.g. {"p": 2} for euclid
    attention_plugins: list = field(default_factory=list)  # modules imported first: they register more kinds
    positions: str = "sinusoidal"  # or "learned" (GPT-2)
    activation: str = "relu"  # or "gelu" (GPT-2)
    tie_embeddings: bool = False  # True: the output layer shares the token embedding (GPT-2)


def sinusoidal_positions(n_positions: int, d_model: int) -> torch.Tensor:
    """The fixed sin/cos table of "Attention Is All You Need", shape (n_positions, d_model)."""
    position = torch.arange(n_positions, dtype=torch.float32).unsqueeze(1)
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(1e4) / d_model))
    table = torch.zeros(n_positions, d_model)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq)
    return table


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.n_heads = cfg.n_heads
        self.kind = functools.partial(attention.get(cfg.attention), **cfg.attention_options)
        # The kind's learnable parameters (attention.register), one value per head, filled with
        # their initial value: no random numbers drawn, so a seed gives every kind the same weights.
        self.head_parameters = nn.ParameterDict(
            {
                name: nn.Parameter(torch.full((cfg.n_heads,), initial))
                for name, initial in attention.head_parameters(cfg.attention).items()
            }
        )
        self.dropout = cfg.dropout if cfg.attention_dropout is None else cfg.attention_dropout

    def attend(self, q, k, v, causal, dropout_p):
        """The kind on q, k, v shaped (batch, heads, time, head_dim), with its options and parameters."""
        return self.kind(q, k, v, causal, dropout_p, **dict(self.head_parameters.items()))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        dropout_p = self.dropout if self.training else 0.0
        y = self.attend(q, k, v, True, dropout_p)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        activation = {"relu": nn.ReLU(), "gelu": nn.GELU()}[cfg.activation]
        self.ff = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), activation, nn.Linear(cfg.d_ff, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.drop(self.ff(self.ln2(x)))


PAD_OUTPUTS_TO = 64


class LinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of the logits x @ weight.T + bias (in float32 at least) against
    targets, chunk_rows rows at a time.

    The logits are a step's largest tensor; here only one chunk's exist at a time, and when
    gradients are wanted the forward computes them at once (softmax minus one-hot: the
    log-softmax's own output, exponentiated in place), so backward only scales them. The matrix
    products are the plain ones, under the caller's autocast. The output rows are padded to a
    multiple of PAD_OUTPUTS_TO (zero weights, bias -inf: the padding's probability and gradients
    are exactly 0), a width the matrix product runs faster at (benchmarks/README.md; nanoGPT pads
    its vocabulary for the same reason).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, targets, chunk_rows: int, with_grads: bool):
        vocab, padding = weight.shape[0], -weight.shape[0] % PAD_OUTPUTS_TO
        weight = F.pad(weight, (0, 0, 0, padding))
        padded_bias = F.pad(bias if bias is not None else weight.new_zeros(vocab), (0, padding), value=-math.inf)
        nll = 0.0
        grad_x = torch.empty_like(x) if with_grads else None
        grad_weight = torch.zeros_like(weight) if with_grads else None
        grad_bias = torch.zeros_like(padded_bias) if with_grads and bias is not None else None
        for start in range(0, x.shape[0], chunk_rows):
            rows = slice(start, start + chunk_rows)
            logits = F.linear(x[rows], weight, padded_bias)
            log_probs = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
            nll -= log_probs.gather(-1, targets[rows].unsqueeze(-1)).sum()
            if with_grads:
                grad_logits = log_probs.exp_()
                grad_logits[torch.arange(len(logits), device=x.device), targets[rows]] -= 1
                grad_logits = grad_logits.to(logits.dtype)
                grad_x[rows] = grad_logits @ weight
                grad_weight += grad_logits.t() @ x[rows]
                if grad_bias is not None:
                    grad_bias += grad_logits.sum(0)
        if with_grads:
            grad_weight = grad_weight[:vocab]
            grad_bias = None if grad_bias is None else grad_bias[:vocab]
        ctx.save_for_backward(grad_x, grad_weight, grad_bias)
        return nll

    @staticmethod
    def backward(ctx, grad_nll):
        grads = (None if grad is None else grad * grad_nll for grad in ctx.saved_tensors)
        return *grads, None, None, None


def linear_cross_entropy(x, linear: nn.Linear, targets, chunk_rows: int = 1024):
    """F.cross_entropy(linear(x).float(), targets, reduction="sum") for x (rows, features) by
    LinearCrossEntropy; chunk_rows trades memory against per-chunk overhead (benchmarks/README.md)."""
    with_grads = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in linear.parameters()))
    return LinearCrossEntropy.apply(x, linear.weight, linear.bias, targets, chunk_rows, with_grads)


class DecoderLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        attention.load_plugins(cfg.attention_plugins)
        attention.check_options(cfg.attention, cfg.attention_options)
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        if cfg.positions == "learned":
            self.pos_emb = nn.Embedding(cfg.max_seq_len, cfg.d_model)
        else:
            self.register_buffer("pos_table", sinusoidal_positions(cfg.max_seq_len, cfg.d_model), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=not cfg.tie_embeddings)
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)
        if cfg.tie_embeddings:
            self.head.weight = self.tok_emb.weight

    def forward(self, idx, targets=None):
        """Logits (batch, time, vocab); with targets, the summed NLL instead (no logits kept)."""
        t = idx.shape[1]
        if t > self.cfg.max_seq_len:
            raise ValueError(f"sequence of {t} tokens exceeds model.max_seq_len={self.cfg.max_seq_len}")
        positions = self.pos_emb.weight[:t] if self.cfg.positions == "learned" else self.pos_table[:t]
        x = self.drop(self.tok_emb(idx) * math.sqrt(self.cfg.d_model) + positions)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        if targets is None:
            return self.head(x)
        return linear_cross_entropy(x.flatten(0, 1), self.head, targets.flatten())

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def training_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Model FLOPs of one training token, forward and backward (PaLM, appendix B; nanoGPT): 6 N for
    the N weights of the matrix multiplies (not embeddings, norms, biases), plus per layer and each
    of the T positions attended to (the masked half too, as is customary) 3 x (each head's score,
    attention.register's score_flops, + 2 d for the weighted sum). For dot that is 12 L d T.
    """
    d, heads = cfg.d_model, cfg.n_heads
    matmul_weights = cfg.n_layers * (4 * d * d + 2 * d * cfg.d_ff) + d * cfg.vocab_size
    score = attention.get(cfg.attention).score_flops(d // heads, **cfg.attention_options)
    return 6 * matmul_weights + 3 * cfg.n_layers * seq_len * (heads * score + 2 * d)
