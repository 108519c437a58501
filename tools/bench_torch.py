#!/usr/bin/python3
"""PyTorch reference for `make bench`: the same work as bench/bench_train.c.

    tools/bench_torch.py CONFIG.json CASE [--steps N] [--dtype fp32|bf16] [--threads 2]
    CASE: lora | roae | rosa | generate | prefill | gemm

Written the way a PyTorch/PEFT user would run it: a compact nn.Module with Hugging Face
LlamaForCausalLM / Qwen2ForCausalLM eager semantics (RMSNorm, rotate_half RoPE, GQA via
repeat_kv, eager attention with a causal mask and an FP32 softmax, SwiGLU, tied or untied
head, Qwen2 q/k/v bias), plus Qwen3's q_norm/k_norm and Gemma 3's text model (embedding
scale, (1 + w) norms, sandwich norms, GeGLU with the tanh GELU, query_pre_attn_scalar, sliding
and global layers with their own RoPE), no transformers / peft packages.  Weights are random (speed and
memory do not depend on their values) with the exact shapes of CONFIG.json; the base is
frozen (requires_grad False).

Cases (batch 4 x 256 random tokens, labels = ids, HF loss: shifted mean cross-entropy over
full FP32 logits; one AdamW step with clip_grad_norm_(1.0)):
  lora      PEFT LoRA r=8, alpha 16, dropout 0 on all seven projections
            (y = base(x) + (alpha/r) * B(A(x))).
  roae      RoAE r=8, alpha 1, r_low 0.25 on q and k after RoPE (docs/method.md):
            Z[..., D] *= 1 + alpha * SiLU(h A^T B^T).
  rosa      RoAE with only the upper half of the layers trainable (DLS, k_ratio 0.5); the
            lower half's adapters have requires_grad False, so autograd stops the backward
            at the lowest trainable layer by itself (the base is frozen).
  generate  batch 1, a 128-token random prompt, 128 new tokens greedy with a KV cache;
            tokens/s = 128 / (prefill + decode time).  The warm-up generates 8 tokens only.
  prefill   forward of 4 x 256 tokens filling a KV cache, LM head on the last position only.
  gemm      context, not a model case: the best GFLOP/s of F.linear (x W^T, as nn.Linear) of
            the shape of bench_train's GEMM ceiling (1024 x 2048 x 2048), for about 1 s each,
            in FP32 and under BF16 autocast (CONFIG is ignored).

--dtype bf16 runs forward (and loss) under torch.autocast('cpu', dtype=torch.bfloat16); the
backward runs outside it, as recommended; master weights and optimizer state stay FP32.

Each step (after one warm-up step) is timed; the median is printed as one JSON line.
peak_rss_mib is getrusage(RUSAGE_SELF).ru_maxrss: run one case per process.
"""

import argparse
import contextlib
import json
import math
import resource
import sys
import time

BATCH, SEQ = 4, 256
PROMPT, NEW_TOKENS = 128, 128


def parse_args(argv):
    p = argparse.ArgumentParser(description="PyTorch reference of bench/bench_train.c")
    p.add_argument("config")
    p.add_argument("case", choices=["lora", "roae", "rosa", "generate", "prefill", "gemm"])
    p.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up (median)")
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--recompute", action="store_true",
                   help="training: activation checkpointing per layer (torch.utils.checkpoint)")
    return p.parse_args(argv)


args = parse_args(sys.argv[1:])

import torch  # noqa: E402  (after argument parsing: --help stays fast)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torch.utils.checkpoint  # noqa: E402

torch.set_num_threads(args.threads)


class Config:
    def __init__(self, path):
        with open(path) as f:
            c = json.load(f)
        self.hidden = c["hidden_size"]
        self.inter = c["intermediate_size"]
        self.layers = c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads", self.heads)
        self.head_dim = c.get("head_dim", self.hidden // self.heads)
        self.vocab = c["vocab_size"]
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = float(c.get("rope_theta", 10000.0))
        self.tied = bool(c.get("tie_word_embeddings", False))
        self.qkv_bias = c.get("model_type") == "qwen2" or bool(c.get("attention_bias", False))
        self.o_bias = bool(c.get("attention_bias", False))
        mt = c.get("model_type")
        self.qk_norm = mt in ("qwen3", "gemma3_text")
        self.gemma = mt == "gemma3_text"
        self.scale = float(c.get("query_pre_attn_scalar", self.head_dim)) ** -0.5
        pattern = c.get("sliding_window_pattern", 6)
        types = c.get("layer_types") or ["sliding_attention" if self.gemma and (i + 1) % pattern else "full_attention"
                                         for i in range(self.layers)]
        self.window = [c.get("sliding_window") if t == "sliding_attention" else None for t in types]
        self.local_theta = float(c.get("rope_local_base_freq", 10000.0))


# ----------------------------------------------------------------------------- adapters


class LoraLinear(nn.Module):
    """PEFT's lora.Linear with dropout 0: y = base(x) + scaling * B(A(x))."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.normal_(self.lora_B.weight, std=1e-3)  # B != 0: the work of mid-training
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling


class RoAE(nn.Module):
    """One RoAE branch (q or k): the gate 1 + alpha * SiLU(h A^T B^T) of the low dims D."""

    def __init__(self, hidden, heads, head_dim, r, alpha, r_low):
        super().__init__()
        self.m = max(1, int(math.floor(head_dim * r_low / 2 + 0.5)))
        self.heads, self.head_dim, self.alpha = heads, head_dim, alpha
        self.A = nn.Linear(hidden, r, bias=False)
        self.B = nn.Linear(r, heads * 2 * self.m, bias=False)
        nn.init.kaiming_uniform_(self.A.weight, a=math.sqrt(5))
        nn.init.normal_(self.B.weight, std=1e-3)

    def forward(self, h, z):
        """h: [B, T, hidden] (input of q_proj / k_proj); z: rotated [B, H, T, hd]."""
        b, t, _ = h.shape
        s = F.silu(self.B(self.A(h))).view(b, t, self.heads, 2 * self.m).transpose(1, 2)
        g = 1 + self.alpha * s
        m, half = self.m, self.head_dim // 2
        return torch.cat([z[..., :half - m], z[..., half - m:half] * g[..., :m],
                          z[..., half:self.head_dim - m], z[..., self.head_dim - m:] * g[..., m:]], dim=-1)


# ----------------------------------------------------------------------------- model


class RMSNorm(nn.Module):
    def __init__(self, n, eps, plus_one=False):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n) if plus_one else torch.ones(n))
        self.eps, self.plus_one = eps, plus_one

    def forward(self, x):
        dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.plus_one:  # Gemma: x * (1 + w) in FP32
            return (x * (1.0 + self.weight.float())).to(dtype)
        return self.weight * x.to(dtype)


def rotate_half(x):
    x1, x2 = x[..., :x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n):
    if n == 1:
        return x
    b, h, t, d = x.shape
    return x[:, :, None, :, :].expand(b, h, n, t, d).reshape(b, h * n, t, d)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        hd = c.head_dim
        self.q_proj = nn.Linear(c.hidden, c.heads * hd, bias=c.qkv_bias)
        self.k_proj = nn.Linear(c.hidden, c.kv_heads * hd, bias=c.qkv_bias)
        self.v_proj = nn.Linear(c.hidden, c.kv_heads * hd, bias=c.qkv_bias)
        self.o_proj = nn.Linear(c.heads * hd, c.hidden, bias=c.o_bias)
        if c.qk_norm:
            self.q_norm = RMSNorm(hd, c.eps, c.gemma)
            self.k_norm = RMSNorm(hd, c.eps, c.gemma)
        self.roae_q = self.roae_k = None

    def forward(self, x, cos, sin, mask, cache):
        c = self.c
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, c.heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, c.kv_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, c.kv_heads, c.head_dim).transpose(1, 2)
        if c.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.roae_q is not None:
            q = self.roae_q(x, q)
        if self.roae_k is not None:
            k = self.roae_k(x, k)
        if cache is not None:  # (k, v) lists of the tokens so far
            if cache[0] is not None:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[0], cache[1] = k, v
        n_rep = c.heads // c.kv_heads
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
        w = torch.matmul(q, k.transpose(2, 3)) * c.scale
        if mask is not None:
            w = w + mask
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        o = torch.matmul(w, v).transpose(1, 2).reshape(b, t, c.heads * c.head_dim)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden, c.inter, bias=False)
        self.up_proj = nn.Linear(c.hidden, c.inter, bias=False)
        self.down_proj = nn.Linear(c.inter, c.hidden, bias=False)

        self.gelu = c.gemma

    def forward(self, x):
        g = self.gate_proj(x)
        g = F.gelu(g, approximate="tanh") if self.gelu else F.silu(g)
        return self.down_proj(g * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.gemma = c.gemma
        self.input_layernorm = RMSNorm(c.hidden, c.eps, c.gemma)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden, c.eps, c.gemma)
        self.mlp = MLP(c)
        if c.gemma:  # the sandwich: post_attention_layernorm is on the attention output
            self.pre_feedforward_layernorm = RMSNorm(c.hidden, c.eps, True)
            self.post_feedforward_layernorm = RMSNorm(c.hidden, c.eps, True)

    def forward(self, x, cos, sin, mask, cache):
        if self.gemma:
            x = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), cos, sin, mask, cache))
            return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class CausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c.vocab, c.hidden)
        self.layers = nn.ModuleList([Layer(c) for _ in range(c.layers)])
        self.norm = RMSNorm(c.hidden, c.eps, c.gemma)
        self.lm_head = nn.Linear(c.hidden, c.vocab, bias=False)
        if c.tied:
            self.lm_head.weight = self.embed_tokens.weight
        dims = torch.arange(0, c.head_dim, 2, dtype=torch.float32) / c.head_dim
        self.inv_freq = 1.0 / (c.theta ** dims)
        self.local_inv_freq = 1.0 / (c.local_theta ** dims)

    def rope(self, start, t, local=False):
        pos = torch.arange(start, start + t, dtype=torch.float32)
        emb = torch.cat([torch.outer(pos, self.local_inv_freq if local else self.inv_freq)] * 2, dim=-1)
        return emb.cos()[None, None], emb.sin()[None, None]

    def forward(self, ids, caches=None, last_only=False):
        b, t = ids.shape
        start = 0 if caches is None or caches[0][0] is None else caches[0][0].shape[2]
        x = self.embed_tokens(ids)
        if self.c.gemma:
            x = x * torch.tensor(self.c.hidden ** 0.5, dtype=x.dtype)
        ropes = [self.rope(start, t), self.rope(start, t, True)]
        full = None
        if t > 1:
            full = torch.full((t, start + t), torch.finfo(torch.float32).min).triu(start + 1)[None, None]
        masks = {}
        for w in set(self.c.window):
            masks[w] = full
            if w is not None:  # sliding: also mask keys w or more positions back
                q_pos = torch.arange(start, start + t)[:, None]
                old = q_pos - torch.arange(start + t)[None, :] >= w
                base = full if full is not None else torch.zeros(t, start + t)[None, None]
                masks[w] = base.masked_fill(old[None, None], torch.finfo(torch.float32).min)
        for i, layer in enumerate(self.layers):
            w = self.c.window[i]
            cos, sin = ropes[self.c.gemma and w is not None]
            mask = masks[w]
            if self.training and args.recompute:  # rosa's --recompute: keep each layer's input only
                x = torch.utils.checkpoint.checkpoint(layer, x, cos, sin, mask, None, use_reentrant=False)
            else:
                x = layer(x, cos, sin, mask, None if caches is None else caches[i])
        x = self.norm(x)
        if last_only:
            x = x[:, -1:, :]
        return self.lm_head(x).float()


def hf_loss(logits, labels):
    v = logits.shape[-1]
    return F.cross_entropy(logits[..., :-1, :].contiguous().view(-1, v), labels[..., 1:].contiguous().view(-1))


def build(c):
    torch.manual_seed(0)
    with torch.no_grad():
        m = CausalLM(c)
        for p in m.parameters():  # random values of a plausible scale; the speed ignores them
            if p.dim() > 1:
                p.normal_(0.0, 0.02)
    m.requires_grad_(False)
    return m


def add_adapters(m, case):
    c = m.c
    for layer in m.layers:
        if case == "lora":
            for mod in (layer.self_attn, layer.mlp):
                for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
                    if hasattr(mod, name):
                        setattr(mod, name, LoraLinear(getattr(mod, name), 8, 16.0))
        else:
            layer.self_attn.roae_q = RoAE(c.hidden, c.heads, c.head_dim, 8, 1.0, 0.25)
            layer.self_attn.roae_k = RoAE(c.hidden, c.kv_heads, c.head_dim, 8, 1.0, 0.25)
    adapter = [p for n, p in m.named_parameters() if "lora_" in n or "roae_" in n]
    for p in adapter:
        p.requires_grad_(True)
    if case == "rosa":  # DLS, k_ratio 0.5: the upper half of the layers is active
        for layer in m.layers[:c.layers // 2]:
            for mod in (layer.self_attn.roae_q, layer.self_attn.roae_k):
                mod.requires_grad_(False)
    return adapter


def autocast(dtype):
    if dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def train_case(m, case):
    params = add_adapters(m, case)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    opt = torch.optim.AdamW(params, lr=1e-4)
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, m.c.vocab, (BATCH, SEQ), generator=g)
    times = []
    for _ in range(args.steps + 1):  # the first step warms up
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast(args.dtype):
            loss = hf_loss(m(ids), ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in params if p.requires_grad], 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        del loss
    sec = median(times[1:])
    return BATCH * SEQ / sec, sec, {"trainable": trainable}


@torch.no_grad()
def generate_once(m, prompt, n_new=NEW_TOKENS):
    caches = [[None, None] for _ in range(m.c.layers)]
    logits = m(prompt, caches, last_only=True)
    out = [int(logits[0, -1].argmax())]
    while len(out) < n_new:
        logits = m(torch.tensor([[out[-1]]]), caches)
        out.append(int(logits[0, -1].argmax()))
    return out


@torch.no_grad()
def generate_case(m, prefill_only):
    g = torch.Generator().manual_seed(3)
    times = []
    if prefill_only:
        ids = torch.randint(0, m.c.vocab, (BATCH, SEQ), generator=g)
        for _ in range(args.steps + 1):
            caches = [[None, None] for _ in range(m.c.layers)]
            t0 = time.perf_counter()
            with autocast(args.dtype):
                m(ids, caches, last_only=True)
            times.append(time.perf_counter() - t0)
            del caches
        sec = median(times[1:])
        return BATCH * SEQ / sec, sec, {}
    prompt = torch.randint(0, m.c.vocab, (1, PROMPT), generator=g)
    with autocast(args.dtype):  # warm-up: the prompt and a few tokens are enough
        generate_once(m, prompt, 8)
    for _ in range(args.steps):
        t0 = time.perf_counter()
        with autocast(args.dtype):
            generate_once(m, prompt)
        times.append(time.perf_counter() - t0)
    sec = median(times)
    return NEW_TOKENS / sec, sec, {}


def gemm_case():
    """Best GFLOP/s of x W^T (1024 x 2048 x 2048), FP32 and BF16 autocast, ~1 s each."""
    M, N, K = 1024, 2048, 2048
    a, w = torch.randn(M, K), torch.randn(N, K)
    out = {}
    for dtype in ("fp32", "bf16"):
        best = 0.0
        with torch.no_grad(), autocast(dtype):
            F.linear(a, w)  # warm-up
            t_end = time.perf_counter() + 1.0
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                F.linear(a, w)
                best = max(best, 2.0 * M * N * K / (time.perf_counter() - t0) / 1e9)
        out["gflops_" + dtype] = round(best, 1)
    return out


def main():
    if args.case == "gemm":
        out = {"case": "gemm", "torch": torch.__version__, "threads": torch.get_num_threads()}
        out.update(gemm_case())
        print(json.dumps(out), flush=True)
        return
    c = Config(args.config)
    m = build(c)
    if args.case in ("generate", "prefill"):
        m.eval()
        tps, sec, extra = generate_case(m, args.case == "prefill")
    else:
        m.train()
        tps, sec, extra = train_case(m, args.case)
    out = {"case": args.case, "tokens_per_second": round(tps, 1), "seconds_per_step": round(sec, 4),
           "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0),
           "dtype": args.dtype, "recompute": args.recompute, "torch": torch.__version__, "threads": torch.get_num_threads(),
           "steps": args.steps}
    out.update(extra)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
