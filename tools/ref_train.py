#!/usr/bin/python3
"""Independent float64 PyTorch training reference for rosa: LoRA (HF PEFT) and RoSA (RoAE + DLS).

Reproduces what HF PEFT + HF Trainer (transformers <= 4.45, optim adamw_torch, as LLM-Adapters
ran them) compute, in float64, with no transformers / peft / safetensors packages.  The model
loader (safetensors reader, config) comes from tools/ref_llama.py; the forward here is its own
autograd-friendly copy of ref_llama.forward with adapter hooks (self-check proves they agree).

Subcommands:
  ref_train.py train --model DIR --data DUMP.json --init-adapter ADIR --out OUT.json
                     [--save-adapter ODIR] [hyper-parameters, see --help]
  ref_train.py make-adapter --model DIR --method lora|roae ... --seed S --out ADIR
  ref_train.py make-adapter --model DIR --method dora|ia3|ln_tuning|oft|miss|fourierft|shira|adalora ...
                     (PEFT methods, tools/ref_peft.py; --peft-init for PEFT's own init)
  ref_train.py make-data --model DIR --n N --seed S --out DUMP.json     (random token records)
  ref_train.py self-check

Architectures: those of ref_llama.py (Llama, Qwen2, Mistral, Qwen3, Gemma3 incl. the text part
of Gemma3ForConditionalGeneration), with their sliding windows and per-layer RoPE.  LoRA can
target any of q/k/v/o/gate/up/down_proj.  RoAE acts on Q/K after q_norm/k_norm (Qwen3, Gemma3)
and after (post-rope) or before (pre-rope) the layer's own RoPE.  DLS scores the pre-sublayer
norms: input_layernorm + post_attention_layernorm (Llama, Qwen2, Mistral, Qwen3) or
input_layernorm + pre_feedforward_layernorm (Gemma3); never q_norm/k_norm or Gemma's post norms.

See docs/reference.md ("Training reference", "PEFT methods") for the exact semantics.
"""

import argparse
import json
import math
import os
import re
import shutil
import struct
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_llama  # noqa: E402
import ref_peft  # noqa: E402
from ref_llama import _lin, _norm, _rms, _rotate_half  # noqa: E402

DT = torch.float64
IGNORE = -100
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
PREFIX = "base_model.model.model.layers.%d."


RefError = ref_peft.RefError


# --------------------------------------------------------------------------- safetensors writer


def write_safetensors(path, tensors):
    """tensors: dict name -> array-like.  Writes float32, names sorted, metadata {"format": "pt"},
    header JSON padded with spaces to a multiple of 8 bytes, data in header order."""
    header = {"__metadata__": {"format": "pt"}}
    blobs, off = [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name], dtype=np.float64)
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def save_adapter(adir, config, tensors):
    os.makedirs(adir, exist_ok=True)
    with open(os.path.join(adir, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    write_safetensors(os.path.join(adir, "adapter_model.safetensors"),
                      {k: v.detach().numpy() if torch.is_tensor(v) else v for k, v in tensors.items()})


# --------------------------------------------------------------------------- adapters


def _module_layer(i, mod):
    return "model.layers.%d.%s" % (i, mod)


def lora_modules(cfg, mcfg):
    """PEFT module matching: {(layer, module): (A name, B name)}.  target_modules: a list
    (name == t or name ends with "." + t) or a string (re.fullmatch); layers_to_transform."""
    tm = cfg["target_modules"]
    lt = cfg.get("layers_to_transform")
    if isinstance(lt, int):
        lt = [lt]
    if cfg.get("layers_pattern"):
        raise RefError("layers_pattern is not supported by the reference")
    mods, hit = {}, set()
    for i in range(mcfg.layers):
        if lt is not None and i not in lt:
            continue
        for mod in LINEARS:
            key = _module_layer(i, mod)
            if isinstance(tm, str):
                ok = re.fullmatch(tm, key) is not None
            else:
                m = [t for t in tm if key == t or key.endswith("." + t)]
                hit.update(m)
                ok = bool(m)
            if ok:
                base = PREFIX % i + mod
                mods[(i, mod)] = (base + ".lora_A.weight", base + ".lora_B.weight")
    if not mods:
        raise RefError("target_modules %r match no module" % (tm,))
    if not isinstance(tm, str):
        miss = [t for t in tm if t not in hit]
        if miss:
            raise RefError("target_modules %s match no module of this model" % miss)
    return mods


class LoraAdapter:
    """PEFT LoRA: y = x W^T (+ b) + scaling * (x A^T) B^T on the matched linears."""
    kind = "lora"

    def __init__(self, cfg, tensors, mcfg):
        self.config = cfg
        if cfg.get("peft_type", "LORA") != "LORA":
            raise RefError("adapter peft_type %r is not LORA" % cfg.get("peft_type"))
        for key, bad in (("bias", lambda v: v not in (None, "none")), ("use_dora", bool),
                         ("fan_in_fan_out", bool), ("rank_pattern", bool), ("alpha_pattern", bool),
                         ("modules_to_save", bool)):
            if key in cfg and bad(cfg[key]):
                raise RefError("adapter_config %s=%r is not supported by the reference" % (key, cfg[key]))
        self.r = int(cfg["r"])
        alpha = float(cfg["lora_alpha"])
        self.scaling = alpha / math.sqrt(self.r) if cfg.get("use_rslora", False) else alpha / self.r
        self.mods = lora_modules(cfg, mcfg)
        shapes = _linear_shapes(mcfg)
        expect = {}
        for (i, mod), (an, bn) in self.mods.items():
            o, n = shapes[mod]
            expect[an] = (self.r, n)
            expect[bn] = (o, self.r)
        self.params = _check_tensors(tensors, expect)

    def layer_param_names(self, i):
        return [n for (l, _), ab in sorted(self.mods.items()) if l == i for n in ab]

    def lin(self, i, mod, x, y):
        ab = self.mods.get((i, mod))
        if ab is None:
            return y
        A, B = self.params[ab[0]], self.params[ab[1]]
        return y + self.scaling * ((x @ A.t()) @ B.t())

    def qk(self, i, which, stage, h, z):
        return z


def roae_dims(head_dim, r_low):
    """m = max(1, floor(d_h*r_low/2 + 0.5)); D = [d_h/2-m .. d_h/2-1] + [d_h-m .. d_h-1]."""
    m = max(1, int(math.floor(head_dim * r_low / 2.0 + 0.5)))
    half = head_dim // 2
    if m > half:
        raise RefError("r_low %g selects more than head_dim/2 dimensions per half" % r_low)
    return list(range(half - m, half)) + list(range(head_dim - m, head_dim))


class RoaeAdapter:
    """RoAE: S = SiLU(h A^T B^T) per head on the low-frequency dims D of Q and/or K."""
    kind = "roae"

    def __init__(self, cfg, tensors, mcfg):
        self.config = cfg
        if cfg.get("peft_type") != "ROSA":
            raise RefError("adapter peft_type %r is not ROSA" % cfg.get("peft_type"))
        self.r = int(cfg["r"])
        self.alpha = float(cfg.get("alpha", 1.0))
        self.r_low = float(cfg.get("r_low", 0.25))
        self.targets = list(cfg.get("targets", ["q", "k"]))
        if not self.targets or any(t not in ("q", "k") for t in self.targets) or \
                len(set(self.targets)) != len(self.targets):
            raise RefError("targets %r: must be q,k | q | k" % (self.targets,))
        self.placement = cfg.get("placement", "post-rope")
        if self.placement not in ("post-rope", "pre-rope"):
            raise RefError("placement %r: must be post-rope or pre-rope" % self.placement)
        self.form = cfg.get("form", "gate")
        if self.form not in ("gate", "add"):
            raise RefError("form %r: must be gate or add" % self.form)
        if float(cfg.get("dropout", 0.0)) != 0.0:
            raise RefError("the reference supports RoAE dropout 0 only")
        if cfg.get("train_norms", False):
            raise RefError("train_norms=true is not supported by the reference")
        self.D = roae_dims(mcfg.head_dim, self.r_low)
        self.d_low = len(self.D)
        self.idx = torch.tensor(self.D, dtype=torch.long)
        self.heads = {"q": mcfg.heads, "k": mcfg.kv_heads}
        self.L = mcfg.layers
        expect = {}
        for i in range(self.L):
            for t in self.targets:
                base = PREFIX % i + "self_attn.roae_%s." % t
                expect[base + "lora_A.weight"] = (self.r, mcfg.hidden)
                expect[base + "lora_B.weight"] = (self.heads[t] * self.d_low, self.r)
        self.params = _check_tensors(tensors, expect)

    def layer_param_names(self, i):
        out = []
        for t in sorted(self.targets):
            base = PREFIX % i + "self_attn.roae_%s." % t
            out += [base + "lora_A.weight", base + "lora_B.weight"]
        return out

    def lin(self, i, mod, x, y):
        return y

    def qk(self, i, which, stage, h, z):
        """z: [B, nh, T, d] (Q or K before repeat_kv); stage 'pre' or 'post' RoPE."""
        if which not in self.targets or stage != {"post-rope": "post", "pre-rope": "pre"}[self.placement]:
            return z
        base = PREFIX % i + "self_attn.roae_%s." % which
        A, B = self.params[base + "lora_A.weight"], self.params[base + "lora_B.weight"]
        Bsz, nh, T, _ = z.shape
        u = (h @ A.t()) @ B.t()                                    # [B, T, nh*d_low], head-major
        u = u.view(Bsz, T, nh, self.d_low).transpose(1, 2)         # [B, nh, T, d_low]
        if self.form == "gate":
            delta = z.index_select(-1, self.idx) * (self.alpha * torch.nn.functional.silu(u))
        else:
            delta = self.alpha * u
        return z.index_add(-1, self.idx, delta)


def _linear_shapes(c):
    H, K, d, D, I = c.heads, c.kv_heads, c.head_dim, c.hidden, c.inter
    return {"self_attn.q_proj": (H * d, D), "self_attn.k_proj": (K * d, D), "self_attn.v_proj": (K * d, D),
            "self_attn.o_proj": (D, H * d), "mlp.gate_proj": (I, D), "mlp.up_proj": (I, D),
            "mlp.down_proj": (D, I)}


def _check_tensors(tensors, expect):
    extra = sorted(set(tensors) - set(expect))
    if extra:
        raise RefError("adapter has unexpected tensors, e.g. %s" % extra[:3])
    out = {}
    for n in sorted(expect):
        if n not in tensors:
            raise RefError("adapter tensor %s missing" % n)
        if tuple(tensors[n].shape) != tuple(expect[n]):
            raise RefError("adapter tensor %s has shape %s, expected %s"
                           % (n, tuple(tensors[n].shape), tuple(expect[n])))
        out[n] = torch.tensor(np.asarray(tensors[n], dtype=np.float64), dtype=DT)
    return out


def make_adapter_obj(cfg, tensors, mcfg):
    pt = cfg.get("peft_type")
    if pt == "LORA":
        if ref_peft.lora_needs_peft_path(cfg):
            return ref_peft.PeftLoraAdapter(cfg, tensors, mcfg)
        return LoraAdapter(cfg, tensors, mcfg)
    if pt == "ROSA":
        return RoaeAdapter(cfg, tensors, mcfg)
    if pt in ref_peft.ADAPTERS:
        return ref_peft.ADAPTERS[pt](cfg, tensors, mcfg)
    raise RefError("unsupported peft_type %r" % pt)


# PEFT names of the text layers when PEFT wrapped a Gemma3ForConditionalGeneration
# (transformers >= 4.52 module tree, and < 4.52); read as the Gemma3ForCausalLM names.
_ADAPTER_ALIASES = ("base_model.model.model.language_model.layers.", "base_model.model.language_model.model.layers.")


def canonical_adapter_names(w):
    out = {}
    for k, v in w.items():
        for a in _ADAPTER_ALIASES:
            if k.startswith(a):
                k = "base_model.model.model.layers." + k[len(a):]
                break
        if k in out:
            raise RefError("adapter tensor %s appears under two prefixes" % k)
        out[k] = v
    return out


def load_adapter(adir, mcfg):
    with open(os.path.join(adir, "adapter_config.json")) as f:
        cfg = json.load(f)
    w, _, _ = ref_llama.read_safetensors(os.path.join(adir, "adapter_model.safetensors"))
    return make_adapter_obj(cfg, canonical_adapter_names(w), mcfg)


# --------------------------------------------------------------------------- forward


def forward(m, ids, mask=None, adapter=None, norms=None):
    """ref_llama.forward with adapter hooks and (optionally) replaceable RMSNorm weights.
    ids, mask: [B][T] (tensors or lists).  norms: {layer: (gamma_in, gamma_post)} tensors
    (e.g. with requires_grad) used instead of the model's pre-sublayer norms, named by
    m.cfg.dls_norms: input_layernorm and post_attention_layernorm (Llama, Qwen2, Qwen3) or
    input_layernorm and pre_feedforward_layernorm (Gemma3; the weight is stored as w with
    scale 1 + w, and the gradient is the same either way).  Returns float64 logits [B,T,V].

    Per layer: the layer's own RoPE table (Gemma3 sliding layers: rope_local_base_freq) and
    mask (causal AND key padding AND, on sliding layers, q - k < sliding_window); Q/K go
    through q_norm/k_norm (Qwen3, Gemma3) before the RoAE 'pre' hook and RoPE."""
    c, w = m.cfg, m.w
    ids = torch.as_tensor(ids, dtype=torch.long)
    if ids.dim() == 1:
        ids = ids[None]
    B, T = ids.shape
    mask = torch.ones(B, T, dtype=torch.long) if mask is None else torch.as_tensor(mask, dtype=torch.long)
    if int(ids.min()) < 0 or int(ids.max()) >= c.vocab:
        raise RefError("token id out of range")
    H, K, d = c.heads, c.kv_heads, c.head_dim
    tables = ref_llama.layer_tables(m, mask)
    n_in, n_mid = c.dls_norms

    ad = adapter
    full = ad is not None and getattr(ad, "full", False)
    adnorm = ad is not None and getattr(ad, "norms", False)

    def lin(i, mod, x, bias_on):
        p = "model.layers.%d.%s." % (i, mod)
        if full:
            return ad.lin_full(i, mod, x, w[p + "weight"], w.get(p + "bias") if bias_on else None)
        y = _lin(x, w[p + "weight"], w.get(p + "bias") if bias_on else None)
        return y if ad is None else ad.lin(i, mod, x, y)

    def qk(i, which, stage, h, z):
        return z if ad is None else ad.qk(i, which, stage, h, z)

    x = ref_llama.embed(m, ids)
    for i in range(c.layers):
        p = "model.layers.%d." % i
        cos, sin, allowed = tables[i]
        g_in, g_mid = norms[i] if norms is not None else (w[p + n_in + ".weight"], w[p + n_mid + ".weight"])
        if adnorm:
            g_in = ad.norm(p + n_in, g_in)
            g_mid = ad.norm(p + n_mid, g_mid)
        h = _norm(c, x, g_in)
        q = lin(i, "self_attn.q_proj", h, c.qkv_bias).view(B, T, H, d)
        k = lin(i, "self_attn.k_proj", h, c.qkv_bias).view(B, T, K, d)
        v = lin(i, "self_attn.v_proj", h, c.qkv_bias).view(B, T, K, d).transpose(1, 2)
        if c.qk_norm:
            q = _norm(c, q, w[p + "self_attn.q_norm.weight"])
            k = _norm(c, k, w[p + "self_attn.k_norm.weight"])
        q = q.transpose(1, 2)
        k = k.transpose(1, 2)
        q = qk(i, "q", "pre", h, q)
        k = qk(i, "k", "pre", h, k)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        q = qk(i, "q", "post", h, q)
        k = qk(i, "k", "post", h, k)
        a = ref_llama.attend(c, q, k, v, allowed)
        o = lin(i, "self_attn.o_proj", a, c.o_bias)
        if c.sandwich:
            x = x + _norm(c, o, w[p + "post_attention_layernorm.weight"])
        else:
            x = x + o
        h = _norm(c, x, g_mid)
        gt = lin(i, "mlp.gate_proj", h, c.mlp_bias)
        up = lin(i, "mlp.up_proj", h, c.mlp_bias)
        y = lin(i, "mlp.down_proj", ref_llama._act(c, gt) * up, c.mlp_bias)
        if c.sandwich:
            y = _norm(c, y, w[p + "post_feedforward_layernorm.weight"])
        x = x + y
    x = _norm(c, x, ad.norm("model.norm", w["model.norm.weight"]) if adnorm else w["model.norm.weight"])
    return ref_llama.logits_head(m, x)


def ce_sum(logits, labels):
    """HF causal-LM loss pieces: (sum of CE over label tokens, count), logits[:, :-1] vs labels[:, 1:]."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    lg = logits[:, :-1]
    tg = labels[:, 1:]
    valid = tg != IGNORE
    lp = torch.log_softmax(lg, dim=-1)
    nll = -lp.gather(-1, tg.clamp(min=0)[..., None])[..., 0]
    return (nll * valid.to(DT)).sum(), int(valid.sum())


def pad_right(recs, pad_id=0):
    T = max(len(r["ids"]) for r in recs)
    ids, mask, labels = [], [], []
    for r in recs:
        n = T - len(r["ids"])
        ids.append(list(r["ids"]) + [pad_id] * n)
        mask.append([1] * len(r["ids"]) + [0] * n)
        labels.append(list(r["labels"]) + [IGNORE] * n)
    return ids, mask, labels


def n_label_tokens(rec):
    return sum(1 for t in rec["labels"][1:] if t != IGNORE)


# --------------------------------------------------------------------------- schedule / DLS


def lr_factor(kind, t, warmup, total):
    """transformers get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup (num_cycles 0.5)."""
    if t < warmup:
        return float(t) / float(max(1, warmup))
    if kind == "linear":
        return max(0.0, float(total - t) / float(max(1, total - warmup)))
    if kind == "cosine":
        progress = float(t - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))
    if kind == "constant":
        return 1.0
    raise RefError("unknown lr scheduler %r" % kind)


def dls_topk(scores, k):
    """Top-k layer indices by score, ties to the lower index; returned ascending."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return sorted(order[:k])


def round_half_up(x):
    return int(math.floor(x + 0.5))


# --------------------------------------------------------------------------- training


def load_dump(path):
    with open(path) as f:
        d = json.load(f)
    recs = d["records"] if isinstance(d, dict) else d
    out = []
    for j, r in enumerate(recs):
        ids, labels = [int(t) for t in r["ids"]], [int(t) for t in r["labels"]]
        if not ids or len(ids) != len(labels):
            raise RefError("record %d: ids and labels must be non-empty and of equal length" % j)
        out.append({"index": r.get("index", j), "ids": ids, "labels": labels})
    if not out:
        raise RefError("%s has no records" % path)
    return out


def resolve_dls(adapter, a, L):
    """DLS settings: the ROSA adapter config's "dls" block, overridden by --dls* flags."""
    base = dict(adapter.config.get("dls") or {}) if adapter.kind == "roae" else {}
    dls = {"enabled": bool(base.get("enabled", False)), "interval": int(base.get("interval", 50)),
           "warmup": int(base.get("warmup", 50)), "k_ratio": float(base.get("k_ratio", 0.5)),
           "p_exploit": float(base.get("p_exploit", 1.0)), "score_ema": float(base.get("score_ema", 0.0)),
           "inactive": base.get("inactive", "skip")}
    for key, val in (("enabled", None if a.dls is None else a.dls == "on"), ("interval", a.dls_interval),
                     ("warmup", a.dls_warmup), ("k_ratio", a.dls_k_ratio), ("p_exploit", a.dls_p_exploit),
                     ("score_ema", a.dls_score_ema), ("inactive", a.dls_inactive)):
        if val is not None:
            dls[key] = val
    if dls["enabled"]:
        if dls["p_exploit"] != 1.0:
            raise RefError("DLS p_exploit=%g: the reference is deterministic and supports p_exploit 1 only "
                           "(pass --dls-p-exploit 1)" % dls["p_exploit"])
        if dls["interval"] < 1 or dls["warmup"] < 0:
            raise RefError("DLS interval must be >= 1 and warmup >= 0")
        if dls["inactive"] not in ("skip", "zero-grad"):
            raise RefError("DLS inactive %r: must be skip or zero-grad" % dls["inactive"])
        if not 0.0 <= dls["score_ema"] < 1.0:
            raise RefError("DLS score_ema must be in [0, 1)")
        dls["k"] = min(L, max(1, round_half_up(dls["k_ratio"] * L)))
    return dls


def extra_loss(adapter):
    """A method's loss term (AdaLoRA's orthogonal regularisation), or None."""
    f = getattr(adapter, "extra_loss", None)
    return f() if f is not None else None


def train(m, adapter, recs, a, log=None):
    """Runs the HF-Trainer-equivalent loop.  Returns the OUT.json dict."""
    c = m.cfg
    L = c.layers
    bs, mbs = a.batch_size, a.micro_batch_size
    if bs < 1 or mbs < 1 or bs % mbs:
        raise RefError("--batch-size must be a positive multiple of --micro-batch-size")
    n_groups = len(recs) // bs
    if n_groups < 1:
        raise RefError("%d records are fewer than one batch of %d" % (len(recs), bs))
    n_micro = bs // mbs
    if a.dropout != 0.0:
        raise RefError("the reference supports dropout 0 only")
    if a.loss_norm not in ("mean", "token"):
        raise RefError("--loss-norm must be mean or token")
    dls = resolve_dls(adapter, a, L)

    names = sorted(adapter.params)
    params = adapter.params
    for n in names:
        params[n].requires_grad_(True)
    layer_of = {}
    for i in range(L):
        for n in adapter.layer_param_names(i):
            layer_of[n] = i
    assert set(layer_of) <= set(names)
    for n in names:             # tensors outside the layers (LN-Tuning's model.norm) are always active
        layer_of.setdefault(n, None)
    norms = {}
    for i in range(L):
        p = "model.layers.%d." % i
        norms[i] = tuple(m.w[p + nm + ".weight"].clone().requires_grad_(True) for nm in c.dls_norms)

    out = {"losses": [], "lrs": [], "grad_norms": [], "per_example_init_loss": [], "adapter": {},
           "norm_grads_step0": {}, "dls_selections": [], "scores": []}

    with torch.no_grad():
        for r in recs:
            s, n = ce_sum(forward(m, [r["ids"]], None, adapter), [r["labels"]])
            out["per_example_init_loss"].append(float(s) / n if n else None)

    opt = torch.optim.AdamW([params[n] for n in names], lr=a.lr, betas=(a.adam_beta1, a.adam_beta2),
                            eps=a.adam_epsilon, weight_decay=a.weight_decay)
    allocate = bool(getattr(a, "adalora_allocate", False))
    if allocate:
        if adapter.kind != "adalora":
            raise RefError("--adalora-allocate needs an ADALORA adapter")
        adapter.allocator_init()
        out["adalora"] = {"budgets": []}
    active = set(range(L))
    sel_scores = None          # scores driving the next selection (EMA of raw scores)
    for t in range(a.max_steps):
        if dls["enabled"] and t >= dls["warmup"] and (t - dls["warmup"]) % dls["interval"] == 0:
            sc = sel_scores if sel_scores is not None else [0.0] * L
            active = set(dls_topk(sc, dls["k"]))
            out["dls_selections"].append([t, sorted(active)])
        lr = a.lr * lr_factor(a.lr_scheduler, t, a.warmup_steps, a.max_steps)
        for gr in opt.param_groups:
            gr["lr"] = lr
        for n in names:
            params[n].grad = None
        for i in range(L):
            norms[i][0].grad = None
            norms[i][1].grad = None
        g0 = (t % n_groups) * bs
        step_recs = recs[g0:g0 + bs]
        tot_tokens = sum(n_label_tokens(r) for r in step_recs)
        mb_losses, ce_total, reg_total = [], 0.0, 0.0
        for j in range(n_micro):
            ids, mask, labels = pad_right(step_recs[j * mbs:(j + 1) * mbs])
            s, n = ce_sum(forward(m, ids, mask, adapter, norms), labels)
            if n == 0:
                mb_losses.append(0.0)
                continue
            reg = extra_loss(adapter)
            mb_losses.append(float(s) / n + (float(reg) if reg is not None else 0.0))
            ce_total += float(s)
            obj = s / n / n_micro if a.loss_norm == "mean" else s / tot_tokens
            if reg is not None:         # AdaLoRA's orthogonality term, added to each micro-batch's loss
                obj = obj + reg / n_micro
                reg_total += float(reg) / n_micro
            obj.backward()
        if a.loss_norm == "mean":
            loss = sum(mb_losses) / n_micro
        else:
            loss = (ce_total / tot_tokens if tot_tokens else 0.0) + reg_total
        # DLS layer scores from the RMSNorm weight gradients of this step (before clipping)
        raw, ng = [], {}
        for i in range(L):
            gi = [float(x.grad.norm()) if x.grad is not None else 0.0 for x in norms[i]]
            ng[str(i)] = gi
            raw.append(math.sqrt(gi[0] ** 2 + gi[1] ** 2))
        if t == 0:
            out["norm_grads_step0"] = ng
        out["scores"].append(raw)
        if sel_scores is None:
            sel_scores = list(raw)
        else:
            e = dls["score_ema"] if dls["enabled"] else 0.0
            sel_scores = [e * s0 + (1.0 - e) * s1 for s0, s1 in zip(sel_scores, raw)]
        # gradients of the step: every active param has one (zeros if it got none)
        for n in names:
            p = params[n]
            if layer_of[n] is None or layer_of[n] in active:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
            elif dls["inactive"] == "skip":
                p.grad = None
            else:
                p.grad = torch.zeros_like(p)
        upd = [params[n] for n in names if params[n].grad is not None]
        if upd:
            if a.max_grad_norm > 0:
                gn = float(torch.nn.utils.clip_grad_norm_(upd, a.max_grad_norm))
            else:
                gn = float(torch.norm(torch.stack([torch.norm(p.grad.detach(), 2.0) for p in upd]), 2.0))
        else:
            gn = 0.0
        opt.step()
        if allocate:                # PEFT's loop: backward, optimizer.step, update_and_allocate(step), zero_grad
            bgt, masked = adapter.update_and_allocate(t, {n: params[n].grad for n in names})
            out["adalora"]["budgets"].append([t, bgt, masked])
        out["losses"].append(loss)
        out["lrs"].append(lr)
        out["grad_norms"].append(gn)
        if log:
            log("step %d loss %.6f lr %.3e grad_norm %.4e active %s" % (t, loss, lr, gn, sorted(active)))
    out["adapter"] = {n: params[n].detach().reshape(-1).tolist() for n in names}
    out["dls"] = dls
    if allocate:
        out["adalora"]["rank_pattern"] = adapter.rank_pattern
    return out


# --------------------------------------------------------------------------- make-adapter / make-data


def kaiming_uniform(rng, out_f, in_f):
    """nn.init.kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    b = 1.0 / math.sqrt(in_f)
    return rng.uniform(-b, b, size=(out_f, in_f))


def _new_path(a):
    """make-adapter requests served by tools/ref_peft.py (plain LoRA without the new options keeps the
    legacy writer, byte for byte)."""
    if a.method in ref_peft.MAKERS:
        return True
    if a.method != "lora":
        return False
    tm = (a.target_modules or "")
    return bool(getattr(a, "rank_pattern", None) or getattr(a, "alpha_pattern", None)
                or tm.lower() == "all-linear" or tm.startswith("re:") or getattr(a, "peft_init", False))


def make_adapter(mcfg, a, model_dir=None, w=None):
    """Returns (config, tensors) for a fresh adapter (float32-representable values).
    w: the model's weights (needed by DoRA and LN-Tuning)."""
    rng = np.random.RandomState(a.seed)
    t = {}
    if _new_path(a):
        cls = ref_peft.MAKERS.get(a.method, ref_peft.PeftLoraAdapter)
        cfg, t = cls.make(mcfg, w, a, rng, model_dir)
    elif a.method == "lora":
        targets = [s for s in a.target_modules.split(",") if s]
        layers = None if a.layers is None else [int(s) for s in a.layers.split(",") if s != ""]
        cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": a.rank, "lora_alpha": a.alpha,
               "lora_dropout": 0.0, "target_modules": targets, "use_rslora": bool(a.rslora),
               "layers_to_transform": layers, "layers_pattern": None, "bias": "none",
               "fan_in_fan_out": False, "inference_mode": False, "init_lora_weights": True,
               "modules_to_save": None, "rank_pattern": {}, "alpha_pattern": {}, "use_dora": False,
               "base_model_name_or_path": model_dir, "revision": None}
        for (i, mod), (an, bn) in sorted(lora_modules(cfg, mcfg).items()):
            o, n = _linear_shapes(mcfg)[mod]
            t[an] = kaiming_uniform(rng, a.rank, n)
            t[bn] = rng.standard_normal((o, a.rank)) * a.b_std
    elif a.method == "roae":
        targets = [s for s in a.targets.split(",") if s]
        cfg = {"peft_type": "ROSA", "task_type": "CAUSAL_LM", "r": a.rank, "alpha": a.alpha,
               "r_low": a.r_low, "targets": targets, "placement": a.placement, "form": a.form,
               "dropout": 0.0, "train_norms": False,
               "dls": {"enabled": a.dls == "on", "interval": a.dls_interval, "warmup": a.dls_warmup,
                       "k_ratio": a.dls_k_ratio, "p_exploit": a.dls_p_exploit,
                       "score_ema": a.dls_score_ema, "inactive": a.dls_inactive, "seed": a.dls_seed}}
        d_low = len(roae_dims(mcfg.head_dim, a.r_low))
        for i in range(mcfg.layers):
            for tg in sorted(targets):
                nh = mcfg.heads if tg == "q" else mcfg.kv_heads
                base = PREFIX % i + "self_attn.roae_%s." % tg
                t[base + "lora_A.weight"] = kaiming_uniform(rng, a.rank, mcfg.hidden)
                t[base + "lora_B.weight"] = rng.standard_normal((nh * d_low, a.rank)) * a.b_std
    else:
        raise RefError("unknown method %r" % a.method)
    t = {k: v.astype(np.float32).astype(np.float64) for k, v in t.items()}
    make_adapter_obj(cfg, t, mcfg)  # validate
    return cfg, t


def make_data(vocab, n, min_len, max_len, seed, prompt_frac=0.5):
    """Random records: BOS(1) + random ids in [3, V) + EOS(2); the first ~prompt_frac of each
    record is prompt (labels -100), the rest its own ids (train_on_inputs=False style)."""
    rng = np.random.RandomState(seed)
    recs = []
    for j in range(n):
        ln = int(rng.randint(min_len, max_len + 1))
        ids = [1] + [int(x) for x in rng.randint(3, vocab, size=ln - 2)] + [2]
        npr = int(rng.randint(1, max(2, int(ln * prompt_frac) + 1)))
        labels = [IGNORE] * npr + ids[npr:]
        recs.append({"index": j, "ids": ids, "labels": labels})
    return recs


# --------------------------------------------------------------------------- self-check


def _fd_check(m, adapter, recs, nprobe, rng, label, norm_targets=True):
    """Autograd vs central finite differences of the mean-CE loss of a right-padded batch,
    for random entries of every adapter tensor and of the RMSNorm weights (norm_targets=False:
    adapter tensors only, for LN-Tuning whose adapter weights replace the norms' values)."""
    L = m.cfg.layers
    norms = {i: tuple(m.w["model.layers.%d.%s.weight" % (i, nm)].clone() for nm in m.cfg.dls_norms)
             for i in range(L)}
    ids, mask, labels = pad_right(recs)

    def loss():
        s, n = ce_sum(forward(m, ids, mask, adapter, norms), labels)
        reg = extra_loss(adapter)
        return s / n if reg is None else s / n + reg

    targets = [(n, adapter.params[n]) for n in sorted(adapter.params)]
    if norm_targets:
        targets += [("gamma_in[%d]" % i, norms[i][0]) for i in range(L)]
        targets += [("gamma_post[%d]" % i, norms[i][1]) for i in range(L)]
    for _, p in targets:
        p.requires_grad_(True)
        p.grad = None
    loss().backward()
    grads = {n: p.grad.clone() for n, p in targets}
    worst, gmax = 0.0, 0.0
    h = 1e-5
    with torch.no_grad():
        for n, p in targets:
            flat = p.view(-1)
            for j in rng.choice(flat.numel(), size=min(nprobe, flat.numel()), replace=False):
                old = float(flat[j])
                flat[j] = old + h
                lp = float(loss())
                flat[j] = old - h
                lm = float(loss())
                flat[j] = old
                fd = (lp - lm) / (2 * h)
                ag = float(grads[n].view(-1)[j])
                worst = max(worst, abs(fd - ag))
                gmax = max(gmax, abs(ag))
    for _, p in targets:
        p.requires_grad_(False)
        p.grad = None
    rel = worst / max(gmax, 1e-30)
    ok = rel < 1e-6 and gmax > 1e-6
    print("  fd %-34s max|fd-autograd| %.2e  (max|grad| %.2e, rel %.1e)  %s"
          % (label, worst, gmax, rel, "PASS" if ok else "FAIL"))
    return ok


def _with_weights(m, neww):
    """A shallow copy of model m whose weights dict has neww's entries replaced."""
    mm = _Args(cfg=m.cfg, w=dict(m.w), inv_freq=m.inv_freq, lm_head=m.lm_head)
    mm.w.update(neww)
    return mm


def _self_check_peft(tmp, m, mq, m05, recs, recs_q, recs5, rng):
    """Section 7: the PEFT methods of tools/ref_peft.py."""
    ok = True
    allmods = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    cases = [
        ("dora q,v", m, dict(method="dora", b_std=0.1)),
        ("dora all-linear rslora patterns", m, dict(method="dora", target_modules="all-linear", rslora=True,
                                                    rank_pattern="q_proj=2,layers.1.mlp.up_proj=6",
                                                    alpha_pattern="v_proj=3", b_std=0.1)),
        ("dora qwen2_bias q,k,v layers 0", mq, dict(method="dora", target_modules="q_proj,k_proj,v_proj",
                                                    layers="0", b_std=0.1)),
        ("lora all-linear rank_pattern", m, dict(method="lora", target_modules="all-linear",
                                                 rank_pattern="down_proj=2", b_std=0.1)),
        ("ia3 default (k,v,down ff)", m, dict(method="ia3", target_modules=None)),
        ("ia3 qwen2_bias all-linear ff up,down", mq, dict(method="ia3", target_modules="all-linear",
                                                          feedforward_modules="up_proj,down_proj")),
        ("ia3 regex ff regex", m, dict(method="ia3", target_modules=r"re:.*\.(q_proj|gate_proj)",
                                       feedforward_modules=r"re:.*gate_proj")),
        ("ln_tuning default", m, dict(method="ln_tuning", target_modules=None)),
        ("ln_tuning qwen2 input_layernorm", mq, dict(method="ln_tuning", target_modules="input_layernorm")),
        ("oft default (bs 32, q,v)", m, dict(method="oft")),
        ("oft all-linear (down bs 32->36)", m, dict(method="oft", target_modules="all-linear")),
        ("oft r=4 exact cayley qwen2", mq, dict(method="oft", target_modules=allmods, oft_r=4, oft_block_size=0,
                                                no_cayley_neumann=True)),
        ("oft block_share bs 8 terms 3", m, dict(method="oft", oft_block_size=8, block_share=True,
                                                 num_cayley_neumann_terms=3)),
        ("oft coft (inside eps ball)", m, dict(method="oft", coft=True, oft_eps=100.0)),
        ("miss default r=64", m, dict(method="miss", rank=64)),
        ("miss r=16 all-linear (pad)", m, dict(method="miss", rank=16, target_modules="all-linear")),
        ("miss bat r=8 qwen2", mq, dict(method="miss", rank=8, miss_init="bat", target_modules=allmods)),
        ("miss mini r=16 mini_r=8", m, dict(method="miss", rank=16, miss_init="mini", mini_r=8,
                                            target_modules="q_proj,down_proj")),
        ("fourierft default n 1000 (q,v)", m, dict(method="fourierft")),
        ("fourierft all-linear pattern qwen2", mq, dict(method="fourierft", target_modules="all-linear",
                                                        n_frequency=300, n_frequency_pattern="v_proj=50",
                                                        random_loc_seed=5, fourier_scaling=20.0)),
        ("shira r=8 seed null", m, dict(method="shira", rank=8)),
        ("shira r=4 seed 3 qwen2 all", mq, dict(method="shira", rank=4, shira_seed=3, target_modules=allmods)),
        ("adalora init_r 6 (no orth reg)", m, dict(method="adalora", rank=6, orth_reg_weight=0.0)),
        ("adalora + orth reg qwen2 all", mq, dict(method="adalora", rank=3, target_modules=allmods)),
    ]
    print("7. PEFT methods (tools/ref_peft.py, PEFT %s)" % ref_peft.PEFT_COMMIT[:12])
    print(" 7a. autograd vs finite differences")
    made = []
    for label, mm, kw in cases:
        kw.setdefault("rank", 4)
        cfg, tens = make_adapter(mm.cfg, _adapter_args(**kw), None, mm.w)
        rr = recs if mm is m else recs_q
        ad = make_adapter_obj(cfg, tens, mm.cfg)
        made.append((label, mm, rr, cfg, tens, kw))
        if ad.kind == "dora":
            # PEFT detaches ||W + s B A||: autograd is the derivative with that norm held constant, so
            # the finite differences hold it at its current value too (dora_norms)
            ad.dora_norms = ad.weight_norms(mm.w)
        ok &= _fd_check(mm, ad, rr, 3, rng, label, norm_targets=ad.kind != "ln_tuning")

    print(" 7b. merged weights forward == adapter forward; PEFT init == base model; save/load round trip")
    for label, mm, rr, cfg, tens, kw in made:
        ids, mask, _ = pad_right(rr)
        ad = make_adapter_obj(cfg, tens, mm.cfg)
        with torch.no_grad():
            y = forward(mm, ids, mask, ad)
            base = ref_llama.forward(mm, ids, mask)
            ym = forward(_with_weights(mm, ad.merged_weights(mm.w)), ids, mask)
        dm = float((y - ym).abs().max())
        moved = float((y - base).abs().max())
        cfg0, tens0 = make_adapter(mm.cfg, _adapter_args(**dict(kw, peft_init=True)), None, mm.w)
        if ad.kind == "fourierft":     # PEFT's default init is randn; init_weights=True gives zeros
            tens0 = {n: np.zeros_like(v) for n, v in tens0.items()}
        with torch.no_grad():
            d0 = float((forward(mm, ids, mask, make_adapter_obj(cfg0, tens0, mm.cfg)) - base).abs().max())
        d = os.path.join(tmp, "rt")
        save_adapter(d, cfg, ad.params)
        ad2 = load_adapter(d, mm.cfg)
        with torch.no_grad():
            drt = float((forward(mm, ids, mask, ad2) - y).abs().max())
        same = sorted(ad2.params) == sorted(ad.params) and \
            all(tuple(ad2.params[n].shape) == tuple(ad.params[n].shape) for n in ad.params)
        tol0 = 1e-5 if ad.kind == "dora" else 0.0      # DoRA: float32-rounded ||W|| / float64 ||W||
        good = dm < 1e-10 and moved > 1e-4 and d0 <= tol0 and drt == 0.0 and same
        ok &= good
        print("  %-36s merged %.1e  init %.1e  moved %.1e  reload %.1e  %s"
              % (label, dm, d0, moved, drt, "PASS" if good else "FAIL"))

    print(" 7c. OFT rotation details")
    vec = torch.tensor(np.random.RandomState(3).standard_normal((3, 6)) * 0.3, dtype=DT)
    S = ref_peft.oft_skew(vec, 4)
    I = torch.eye(4, dtype=DT)
    Rn = ref_peft.oft_rotation(vec, 4, True, 5)
    exp_n = I + 2 * S + 2 * S @ S + 2 * S @ S @ S + S @ S @ S @ S
    Rc = ref_peft.oft_rotation(vec, 4, False)
    exp_c = (I - S) @ torch.linalg.inv(I + S)
    orth = float((Rc @ Rc.transpose(-1, -2) - I).abs().max())
    pr = ref_peft.oft_project(vec, 4, 0.05)
    nrm = torch.linalg.norm(ref_peft.oft_skew(pr, 4), dim=(1, 2))
    e = float(0.05 / math.sqrt(3.0))
    good = float((Rn - exp_n).abs().max()) < 1e-14 and float((Rc - exp_c).abs().max()) < 1e-12 and orth < 1e-12 \
        and float((nrm - e).abs().max()) < 1e-7 and bool((S[:, 0, 1] == vec[:, 0]).all()) \
        and bool((S[:, 1, 0] == -vec[:, 0]).all()) and bool((S[:, 0, 2] == vec[:, 1]).all())
    ok &= good
    cfg, tens = make_adapter(m.cfg, _adapter_args(method="oft", coft=True, init_std=0.1), None, m.w)
    ad = make_adapter_obj(cfg, tens, m.cfg)
    before = {n: float(torch.linalg.norm(ref_peft.oft_skew(ad.params[n], 32), dim=(1, 2)).max()) for n in ad.params}
    with torch.no_grad():
        forward(m, [recs[0]["ids"]], None, ad)
    for n in ad.params:
        e = float(ad.eps / math.sqrt(ad.params[n].shape[0]))
        nr = float(torch.linalg.norm(ref_peft.oft_skew(ad.params[n], 32), dim=(1, 2)).max())
        good &= before[n] > e and abs(nr - e) < 1e-6 * e
    print("  neumann series, exact cayley (|RR^T-I| %.1e), skew layout, coft projection to eps/sqrt(blocks)  %s"
          % (orth, "PASS" if good else "FAIL"))

    print(" 7c'. FourierFT frequency positions and SHiRA masks")
    ix = ref_peft.fourierft_indices(32, 64, 100, 777)
    perm = torch.randperm(32 * 64, generator=torch.Generator().manual_seed(777))[:100]
    sh = ref_peft.shira_random_mask_indices(32, 64, 4, None)
    perm2 = torch.randperm(32 * 64, generator=torch.Generator())[:4 * 96]
    good = bool((ix[0] * 64 + ix[1] == perm).all()) and sh.shape == (2, 384) and \
        sorted((sh[0] * 64 + sh[1]).tolist()) == sorted(perm2.tolist()) and \
        (sh[0] * 64 + sh[1]).tolist() == sorted(perm2.tolist())
    ok &= good
    print("  randperm(out*in, Generator().manual_seed(seed))[:n]; SHiRA row-major mask order  %s"
          % ("PASS" if good else "FAIL"))

    print(" 7d. AdaLoRA rank allocation (update_and_allocate after each step)")
    cfg, tens = make_adapter(m.cfg, _adapter_args(method="adalora", rank=6, target_r=2, total_step=8,
                                                  target_modules="q_proj,v_proj,down_proj"), None, m.w)
    cfg = dict(cfg, tinit=1, tfinal=2)
    ad = make_adapter_obj(cfg, tens, m.cfg)
    res = train(m, ad, recs5, _train_args(max_steps=8, adalora_allocate=True))
    good = True
    nm = len(ad.mods)
    for t_, bgt, masked in res["adalora"]["budgets"]:
        exp = 6 * nm if t_ <= 1 else 2 * nm if t_ > 6 else \
            int((6 * nm - 2 * nm) * (1 - (t_ - 1) / 5) ** 3 + 2 * nm)
        good &= bgt == exp and masked == (t_ > 1)
    kept = sum(sum(v) for v in res["adalora"]["rank_pattern"].values())
    nz = sum(int((ad.params[e[2]] != 0).sum()) for e in ad.mods.values())
    good &= kept == 2 * nm and nz <= kept
    scfg, st = ad.saved()
    d = os.path.join(tmp, "ada")
    save_adapter(d, scfg, st)
    ad2 = load_adapter(d, m.cfg)
    ids, mask, _ = pad_right(recs)
    with torch.no_grad():
        drt = float((forward(m, ids, mask, ad2) - forward(m, ids, mask, ad)).abs().max())
    good &= drt < 1e-6 and all(ad2.params[e[0]].shape[0] == sum(scfg["rank_pattern"]["model.layers.%d.%s.lora_E" % k])
                               for k, e in ad2.mods.items())
    ok &= good
    print("  budgets %s  kept %d  reload (resized by rank_pattern) %.1e  %s"
          % ([b for _, b, _ in res["adalora"]["budgets"]], kept, drt, "PASS" if good else "FAIL"))

    print(" 7e. training loop == manual AdamW loop (PEFT methods, DLS composes)")
    dls_kw = dict(dls="on", dls_p_exploit=1.0)
    runs = [("dora mean clip", m, dict(method="dora", b_std=0.1), dict()),
            ("ia3 dls skip", m05, dict(method="ia3", target_modules="all-linear"),
             dict(dls_interval=2, dls_warmup=1, dls_k_ratio=0.34, dls_inactive="skip", **dls_kw)),
            ("ln_tuning dls zero-grad", m05, dict(method="ln_tuning", target_modules=None),
             dict(dls_interval=1, dls_warmup=1, dls_k_ratio=0.34, dls_inactive="zero-grad", **dls_kw)),
            ("oft token cosine", m, dict(method="oft", oft_block_size=16), dict(loss_norm="token",
                                                                                 lr_scheduler="cosine")),
            ("oft coft active", m, dict(method="oft", coft=True), dict()),
            ("miss dls skip", m05, dict(method="miss", rank=16, target_modules="all-linear"),
             dict(dls_interval=2, dls_warmup=0, dls_k_ratio=0.5, dls_inactive="skip", **dls_kw)),
            ("miss bat", m, dict(method="miss", rank=8, miss_init="bat"), dict(max_grad_norm=1e-3)),
            ("fourierft dls skip", m05, dict(method="fourierft", n_frequency=200, target_modules="q_proj,down_proj"),
             dict(dls_interval=1, dls_warmup=1, dls_k_ratio=0.34, dls_inactive="skip", **dls_kw)),
            ("shira", m, dict(method="shira", rank=8), dict()),
            ("adalora orth dls zero-grad", m05, dict(method="adalora", rank=6, target_modules="all-linear"),
             dict(dls_interval=2, dls_warmup=1, dls_k_ratio=0.34, dls_inactive="zero-grad", **dls_kw)),
            ("adalora orth token", m, dict(method="adalora", rank=4), dict(loss_norm="token"))]
    for label, mm, akw, tkw in runs:
        akw.setdefault("rank", 4)
        cfg, tens = make_adapter(mm.cfg, _adapter_args(**akw), None, mm.w)
        ta = _train_args(**tkw)
        res = train(mm, make_adapter_obj(cfg, tens, mm.cfg), recs5, ta)
        act, cur = [], None
        sel = dict((s_, set(l)) for s_, l in res["dls_selections"])
        for t in range(ta.max_steps):
            if t in sel:
                cur = sel[t]
            act.append(cur)
        lm, P = _manual_train(mm, make_adapter_obj(cfg, tens, mm.cfg), recs5, ta, act, ta.dls_inactive or "skip")
        dl = max(abs(x - y) for x, y in zip(res["losses"], lm))
        dp = max(float((torch.tensor(res["adapter"][n], dtype=DT) - P[n].reshape(-1)).abs().max()) for n in P)
        moved = max(float((torch.tensor(res["adapter"][n], dtype=DT) -
                           torch.tensor(np.asarray(tens[n]), dtype=DT).reshape(-1)).abs().max()) for n in P)
        good = dl < 1e-12 and dp < 1e-12 and moved > 1e-6
        extra = ""
        if res["dls_selections"]:
            extra = " sel %s" % res["dls_selections"]
            for s_, l in res["dls_selections"]:
                exp = dls_topk(res["scores"][s_ - 1] if s_ > 0 else [0.0] * mm.cfg.layers, res["dls"]["k"])
                good &= exp == l
            # inactive layers' tensors did not move (skip: no decay, no update)
        ok &= good
        print("  %-26s max|dloss| %.1e max|dparam| %.1e%s  %s" % (label, dl, dp, extra, "PASS" if good else "FAIL"))
    return ok


class _Args:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _adapter_args(**kw):
    d = dict(seed=7, method="lora", rank=4, alpha=8.0, target_modules="q_proj,v_proj", rslora=False,
             layers=None, b_std=0.02, targets="q,k", r_low=0.25, placement="post-rope", form="gate",
             dls="off", dls_interval=2, dls_warmup=2, dls_k_ratio=0.5, dls_p_exploit=1.0, dls_score_ema=0.0,
             dls_inactive="skip", dls_seed=42, peft_init=False, init_std=None, rank_pattern=None,
             alpha_pattern=None, feedforward_modules=None, oft_r=0, oft_block_size=32, coft=False, oft_eps=6e-5,
             block_share=False, no_cayley_neumann=False, num_cayley_neumann_terms=5, miss_init="miss", mini_r=1,
             n_frequency=1000, fourier_scaling=150.0, random_loc_seed=777, n_frequency_pattern=None, shira_seed=None,
             target_r=8, orth_reg_weight=0.5, total_step=10)
    d.update(kw)
    return _Args(**d)


def _train_args(**kw):
    d = dict(batch_size=4, micro_batch_size=2, max_steps=5, lr=1e-2, warmup_steps=1, lr_scheduler="linear",
             max_grad_norm=1.0, weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8,
             loss_norm="mean", dropout=0.0, dls=None, dls_interval=None, dls_warmup=None, dls_k_ratio=None,
             dls_p_exploit=None, dls_score_ema=None, dls_inactive=None, adalora_allocate=False)
    d.update(kw)
    return _Args(**d)


def _manual_train(m, adapter, recs, a, active_by_step, inactive="skip"):
    """Independent re-implementation of the optimizer side (manual AdamW with per-tensor step
    counts, clipping, schedule, loss normalisation, DLS masking) for the self-check.
    active_by_step: list of sets of active layers (None = all)."""
    names = sorted(adapter.params)
    P = {n: adapter.params[n].detach().clone() for n in names}
    st = {n: (torch.zeros_like(P[n]), torch.zeros_like(P[n]), 0) for n in names}
    L = m.cfg.layers
    layer_of = {n: i for i in range(L) for n in adapter.layer_param_names(i)}
    for n in names:
        layer_of.setdefault(n, None)
    bs, mbs = a.batch_size, a.micro_batch_size
    G = len(recs) // bs
    losses = []
    for t in range(a.max_steps):
        lr = a.lr * lr_factor(a.lr_scheduler, t, a.warmup_steps, a.max_steps)
        act = active_by_step[t]
        step_recs = recs[(t % G) * bs:(t % G) * bs + bs]
        # whole-step objective in one graph, built from per-record sums
        for n in names:
            adapter.params[n] = P[n].clone().requires_grad_(True)
        tot = 0.0
        lsum = 0.0
        ntok_step = sum(n_label_tokens(r) for r in step_recs)
        nmb = bs // mbs
        for j in range(nmb):
            mb = step_recs[j * mbs:(j + 1) * mbs]
            ids, mask, labels = pad_right(mb)
            s, n = ce_sum(forward(m, ids, mask, adapter), labels)
            if n == 0:
                continue
            if a.loss_norm == "mean":
                tot = tot + s / n / nmb
                lsum += float(s) / n / nmb
            else:
                tot = tot + s / ntok_step
                lsum += float(s) / ntok_step
            reg = extra_loss(adapter)
            if reg is not None:
                tot = tot + reg / nmb
                lsum += float(reg) / nmb
        losses.append(lsum)
        gs = torch.autograd.grad(tot, [adapter.params[n] for n in names], allow_unused=True)
        for n in names:         # OFT coft projects its weights in place during the forward
            P[n] = adapter.params[n].detach().clone()
        G_ = {n: (g if g is not None else torch.zeros_like(P[n])) for n, g in zip(names, gs)}
        if inactive == "skip":
            upd = [n for n in names if act is None or layer_of[n] is None or layer_of[n] in act]
        else:
            upd = names
            for n in names:
                if act is not None and layer_of[n] is not None and layer_of[n] not in act:
                    G_[n] = torch.zeros_like(G_[n])
        norm = math.sqrt(sum(float((G_[n] ** 2).sum()) for n in upd))
        coef = min(1.0, a.max_grad_norm / (norm + 1e-6)) if a.max_grad_norm > 0 else 1.0
        b1, b2 = a.adam_beta1, a.adam_beta2
        for n in upd:
            g = G_[n] * coef
            m1, v1, k = st[n]
            k += 1
            p = P[n] * (1 - lr * a.weight_decay)
            m1 = b1 * m1 + (1 - b1) * g
            v1 = b2 * v1 + (1 - b2) * g * g
            den = (v1.sqrt() / math.sqrt(1 - b2 ** k)) + a.adam_epsilon
            P[n] = p - (lr / (1 - b1 ** k)) * m1 / den
            st[n] = (m1, v1, k)
    for n in names:
        adapter.params[n] = P[n]
    return losses, P


def self_check():
    tmp = tempfile.mkdtemp(prefix="ref_train_check_")
    try:
        return _self_check(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _self_check(tmp):
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    t0 = time.time()
    ok = True
    import make_test_models
    mdirs = {}
    for i, name in enumerate(make_test_models.CASES):
        if name in ("llama_gqa", "qwen2_bias"):
            mdirs[name] = make_test_models.build_case(tmp, name, 1000 + i)
    rng = np.random.RandomState(0)

    print("1. forward without adapter == ref_llama.forward (right-padded batch)")
    for name, d in mdirs.items():
        m = ref_llama.load_model(d)
        recs = make_data(m.cfg.vocab, 3, 6, 14, 1)
        ids, mask, _ = pad_right(recs)
        diff = float((forward(m, ids, mask) - ref_llama.forward(m, ids, mask)).abs().max())
        good = diff < 1e-12
        ok &= good
        print("  %-12s max|diff| %.2e  %s" % (name, diff, "PASS" if good else "FAIL"))

    print("2. autograd vs finite differences (adapter tensors and RMSNorm weights)")
    m = ref_llama.load_model(mdirs["llama_gqa"])
    mq = ref_llama.load_model(mdirs["qwen2_bias"])
    recs = make_data(m.cfg.vocab, 3, 7, 12, 2)
    recs_q = make_data(mq.cfg.vocab, 3, 7, 12, 3)
    allmods = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    cases = [
        (m, recs, "lora all modules", dict(target_modules=allmods, b_std=0.1)),
        (m, recs, "lora rslora layers 0,2", dict(target_modules="q_proj,down_proj", rslora=True,
                                                 layers="0,2", b_std=0.1)),
        (mq, recs_q, "lora qwen2_bias q,v", dict(b_std=0.1)),
    ]
    for pl in ("post-rope", "pre-rope"):
        for fm in ("gate", "add"):
            cases.append((m, recs, "roae q,k %s %s" % (pl, fm),
                          dict(method="roae", rank=4, alpha=1.0, placement=pl, form=fm, b_std=0.3)))
    cases.append((m, recs, "roae q only r_low 0.5", dict(method="roae", targets="q", r_low=0.5, b_std=0.3)))
    cases.append((mq, recs_q, "roae k only qwen2_bias", dict(method="roae", targets="k", b_std=0.3)))
    for mm, rr, label, kw in cases:
        cfg, tens = make_adapter(mm.cfg, _adapter_args(**kw))
        ok &= _fd_check(mm, make_adapter_obj(cfg, tens, mm.cfg), rr, 3, rng, label)

    print("3. RoAE with B = 0 equals the base model")
    ids, mask, _ = pad_right(recs)
    base = ref_llama.forward(m, ids, mask)
    for pl in ("post-rope", "pre-rope"):
        for fm in ("gate", "add"):
            cfg, tens = make_adapter(m.cfg, _adapter_args(method="roae", placement=pl, form=fm, b_std=0.0))
            diff = float((forward(m, ids, mask, make_adapter_obj(cfg, tens, m.cfg)) - base).abs().max())
            cfg, tens = make_adapter(m.cfg, _adapter_args(method="roae", placement=pl, form=fm, b_std=0.3))
            moved = float((forward(m, ids, mask, make_adapter_obj(cfg, tens, m.cfg)) - base).abs().max())
            good = diff == 0.0 and moved > 1e-3
            ok &= good
            print("  %-9s %-4s B=0: max|diff| %.1e   (B!=0 moves logits by %.2e)  %s"
                  % (pl, fm, diff, moved, "PASS" if good else "FAIL"))

    print("4. a sequence's loss alone == in a right-padded batch")
    recs4 = make_data(m.cfg.vocab, 4, 5, 20, 4)
    for label, kw in (("lora", dict(target_modules=allmods)), ("roae", dict(method="roae", b_std=0.3))):
        cfg, tens = make_adapter(m.cfg, _adapter_args(**kw))
        ad = make_adapter_obj(cfg, tens, m.cfg)
        ids, mask, labels = pad_right(recs4)
        lg = forward(m, ids, mask, ad)
        worst = 0.0
        for b, r in enumerate(recs4):
            s1, n1 = ce_sum(forward(m, [r["ids"]], None, ad), [r["labels"]])
            s2, n2 = ce_sum(lg[b:b + 1], [labels[b]])
            worst = max(worst, abs(float(s1) / n1 - float(s2) / n2))
        good = worst < 1e-12
        ok &= good
        print("  %-5s max|loss alone - loss in batch| %.2e  %s" % (label, worst, "PASS" if good else "FAIL"))

    print("5. training loop == independent manual AdamW/clip/schedule/accumulation")
    recs5 = make_data(m.cfg.vocab, 10, 6, 16, 5)
    recs5[3]["labels"] = [IGNORE] * len(recs5[3]["ids"])     # a record without label tokens
    # a model whose layer-0 norms are scaled by 0.5, so that DLS selections change over steps
    m05 = ref_llama.load_model(mdirs["llama_gqa"])
    for key in ("input_layernorm", "post_attention_layernorm"):
        m05.w["model.layers.0.%s.weight" % key] = m05.w["model.layers.0.%s.weight" % key] * 0.5
    dls_kw = dict(dls="on", dls_p_exploit=1.0)
    runs = [("lora mean linear clip", m, dict(target_modules=allmods), dict()),
            ("lora token cosine noclip", m, dict(target_modules="q_proj,v_proj"),
             dict(loss_norm="token", lr_scheduler="cosine", max_grad_norm=0.0, warmup_steps=2)),
            ("lora mbs1 clip-active", m, dict(target_modules="q_proj", b_std=0.1),
             dict(micro_batch_size=1, max_grad_norm=1e-3)),
            ("lora dls skip token", m05, dict(target_modules="q_proj,up_proj", layers="1,2"),
             dict(dls_interval=2, dls_warmup=1, dls_k_ratio=0.34, dls_inactive="skip", loss_norm="token",
                  **dls_kw)),
            ("roae dls skip", m05, dict(method="roae", b_std=0.3),
             dict(dls_interval=1, dls_warmup=1, dls_k_ratio=0.34, dls_inactive="skip", max_steps=6, **dls_kw)),
            ("roae dls zero-grad", m05, dict(method="roae", b_std=0.3, placement="pre-rope", form="add"),
             dict(dls_interval=1, dls_warmup=0, dls_k_ratio=0.34, dls_inactive="zero-grad", max_steps=6,
                  **dls_kw)),
            ("roae dls skip k=2 wrap", m, dict(method="roae", b_std=0.3, targets="q"),
             dict(dls_interval=2, dls_warmup=2, dls_k_ratio=0.5, dls_inactive="skip", max_steps=7, **dls_kw))]
    for label, mm, akw, tkw in runs:
        cfg, tens = make_adapter(mm.cfg, _adapter_args(**akw))
        ta = _train_args(**tkw)
        res = train(mm, make_adapter_obj(cfg, tens, mm.cfg), recs5, ta)
        # active sets per step from the recorded selections
        act, cur = [], None
        sel = dict((s, set(l)) for s, l in res["dls_selections"])
        for t in range(ta.max_steps):
            if t in sel:
                cur = sel[t]
            act.append(cur)
        lm, P = _manual_train(mm, make_adapter_obj(cfg, tens, mm.cfg), recs5, ta, act,
                              ta.dls_inactive or "skip")
        dl = max(abs(x - y) for x, y in zip(res["losses"], lm))
        dp = max(float((torch.tensor(res["adapter"][n], dtype=DT) - P[n].reshape(-1)).abs().max()) for n in P)
        good = dl < 1e-12 and dp < 1e-12
        extra = ""
        if res["dls_selections"]:
            extra = " sel %s" % res["dls_selections"]
            # top-k of the previous step's recorded scores
            for s, l in res["dls_selections"]:
                exp = dls_topk(res["scores"][s - 1] if s > 0 else [0.0] * mm.cfg.layers, res["dls"]["k"])
                good &= exp == l
        ok &= good
        print("  %-26s max|dloss| %.1e max|dparam| %.1e%s  %s" % (label, dl, dp, extra, "PASS" if good else "FAIL"))

    print("6. LR schedules (transformers formulas)")
    lin = [lr_factor("linear", t, 3, 10) for t in range(10)]
    cos_ = [lr_factor("cosine", t, 2, 6) for t in range(6)]
    exp_lin = [0, 1 / 3, 2 / 3, 1, 6 / 7, 5 / 7, 4 / 7, 3 / 7, 2 / 7, 1 / 7]
    exp_cos = [0, 0.5, 1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))]
    good = max(abs(x - y) for x, y in zip(lin + cos_, exp_lin + exp_cos)) < 1e-15 and lr_factor("linear", 0, 0, 5) == 1.0
    ok &= good
    print("  linear W=3 T=10 and cosine W=2 T=6  %s" % ("PASS" if good else "FAIL"))

    ok &= _self_check_peft(tmp, m, mq, m05, recs, recs_q, recs5, rng)

    print("8. Qwen3 / Gemma3 / sliding windows (issue 14 tiny models)")
    adirs = ref_llama.build_arch_models(os.path.join(tmp, "arch"))
    ms = {n: ref_llama.load_model(d) for n, d in adirs.items()}
    for name, mm in ms.items():
        recs7 = make_data(mm.cfg.vocab, 3, 6, 14, 7)
        ids, mask, _ = pad_right(recs7)
        ids_l, mask_l = ref_llama.pad_batch([r["ids"] for r in recs7], "left")
        d1 = float((forward(mm, ids, mask) - ref_llama.forward(mm, ids, mask)).abs().max())
        d2 = float((forward(mm, ids_l, mask_l) - ref_llama.forward(mm, ids_l, mask_l)).abs().max())
        good = d1 < 1e-12 and d2 < 1e-12
        ok &= good
        print("  forward == ref_llama.forward %-22s right %.1e left %.1e  %s"
              % (name, d1, d2, "PASS" if good else "FAIL"))
    cases7 = []
    for name in ("gemma3-tiny", "qwen3-tiny", "qwen3-tiny-tied-bias", "gemma3-mm-tiny"):
        mm = ms[name]
        rr = make_data(mm.cfg.vocab, 3, 7, 12, 8)
        cases7.append((mm, rr, "lora all %s" % name, dict(target_modules=allmods, b_std=0.1)))
        cases7.append((mm, rr, "roae post gate %s" % name, dict(method="roae", b_std=0.3)))
        if name in ("gemma3-tiny", "qwen3-tiny"):
            cases7.append((mm, rr, "roae pre add %s" % name,
                           dict(method="roae", placement="pre-rope", form="add", b_std=0.3)))
    for name in ("qwen3-window-tiny", "mistral-window-tiny"):
        mm = ms[name]
        cases7.append((mm, make_data(mm.cfg.vocab, 3, 8, 14, 9), "lora q,v %s" % name, dict(b_std=0.1)))
    for mm, rr, label, kw in cases7:
        cfg, tens = make_adapter(mm.cfg, _adapter_args(**kw))
        ok &= _fd_check(mm, make_adapter_obj(cfg, tens, mm.cfg), rr, 3, rng, label)
    # a sequence's loss alone == in a right-padded batch, sequences longer than the window
    mg = ms["gemma3-tiny"]
    recs7 = make_data(mg.cfg.vocab, 4, 5, 20, 10)
    cfg, tens = make_adapter(mg.cfg, _adapter_args(method="roae", b_std=0.3))
    ad = make_adapter_obj(cfg, tens, mg.cfg)
    ids, mask, labels = pad_right(recs7)
    lg = forward(mg, ids, mask, ad)
    worst = 0.0
    for b, r in enumerate(recs7):
        s1, n1 = ce_sum(forward(mg, [r["ids"]], None, ad), [r["labels"]])
        s2, n2 = ce_sum(lg[b:b + 1], [labels[b]])
        worst = max(worst, abs(float(s1) / n1 - float(s2) / n2))
    good = worst < 1e-12
    ok &= good
    print("  gemma3-tiny roae: max|loss alone - loss in batch| %.2e  %s" % (worst, "PASS" if good else "FAIL"))
    # DLS on Gemma3 scores input_layernorm + pre_feedforward_layernorm: train vs manual loop,
    # and the step-0 norm gradients vs autograd through those two weights directly
    recs7 = make_data(mg.cfg.vocab, 8, 6, 16, 11)
    cfg, tens = make_adapter(mg.cfg, _adapter_args(method="roae", b_std=0.3))
    ta = _train_args(dls="on", dls_interval=1, dls_warmup=1, dls_k_ratio=0.4, dls_p_exploit=1.0,
                     dls_inactive="skip", max_steps=4)
    res = train(mg, make_adapter_obj(cfg, tens, mg.cfg), recs7, ta)
    act, cur = [], None
    sel = dict((s_, set(l_)) for s_, l_ in res["dls_selections"])
    for t in range(ta.max_steps):
        cur = sel.get(t, cur)
        act.append(cur)
    lm, P = _manual_train(mg, make_adapter_obj(cfg, tens, mg.cfg), recs7, ta, act, "skip")
    dl = max(abs(x - y) for x, y in zip(res["losses"], lm))
    dp = max(float((torch.tensor(res["adapter"][n], dtype=DT) - P[n].reshape(-1)).abs().max()) for n in P)
    ad = make_adapter_obj(cfg, tens, mg.cfg)
    gam = {i: tuple(mg.w["model.layers.%d.%s.weight" % (i, nm)].clone().requires_grad_(True)
                    for nm in ("input_layernorm", "pre_feedforward_layernorm")) for i in range(mg.cfg.layers)}
    tot = 0.0
    for j in range(ta.batch_size // ta.micro_batch_size):
        ids, mask, labels = pad_right(recs7[j * ta.micro_batch_size:(j + 1) * ta.micro_batch_size])
        s_, n_ = ce_sum(forward(mg, ids, mask, ad, gam), labels)
        tot = tot + s_ / n_ / (ta.batch_size // ta.micro_batch_size)
    tot.backward()
    dn = max(abs(float(gam[i][k].grad.norm()) - res["norm_grads_step0"][str(i)][k])
             for i in range(mg.cfg.layers) for k in (0, 1))
    good = dl < 1e-12 and dp < 1e-12 and dn < 1e-12 and len(res["dls_selections"]) == 3
    ok &= good
    print("  gemma3-tiny roae+DLS train vs manual: max|dloss| %.1e max|dparam| %.1e, step-0 norm grads "
          "(input, pre_feedforward) %.1e, sel %s  %s" % (dl, dp, dn, res["dls_selections"],
                                                        "PASS" if good else "FAIL"))
    # PEFT names of a Gemma3ForConditionalGeneration-wrapped adapter load as the text names
    cfg, tens = make_adapter(ms["gemma3-mm-tiny"].cfg, _adapter_args(target_modules=allmods))
    alias = {k.replace("base_model.model.model.layers.", _ADAPTER_ALIASES[0]): v for k, v in tens.items()}
    a1 = make_adapter_obj(cfg, canonical_adapter_names(alias), ms["gemma3-mm-tiny"].cfg)
    good = sorted(a1.params) == sorted(tens)
    ok &= good
    print("  adapter names under %s load as the text names  %s" % (_ADAPTER_ALIASES[0], "PASS" if good else "FAIL"))

    print("self-check %s (%.1fs)" % ("PASSED" if ok else "FAILED", time.time() - t0))
    return 0 if ok else 1


# --------------------------------------------------------------------------- CLI


def _add_dls_flags(p, defaults):
    p.add_argument("--dls", choices=("on", "off"), default=defaults.get("dls"),
                   help="enable DLS (train: overrides the ROSA config's dls.enabled; LoRA: default off)")
    p.add_argument("--dls-interval", type=int, default=defaults.get("interval"))
    p.add_argument("--dls-warmup", type=int, default=defaults.get("warmup"))
    p.add_argument("--dls-k-ratio", type=float, default=defaults.get("k_ratio"))
    p.add_argument("--dls-p-exploit", type=float, default=defaults.get("p_exploit"))
    p.add_argument("--dls-score-ema", type=float, default=defaults.get("score_ema"))
    p.add_argument("--dls-inactive", choices=("skip", "zero-grad"), default=defaults.get("inactive"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd")

    p = sub.add_parser("train", help="train an adapter, write OUT.json")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True, help="rosa tokenize --json dump ({'records': [{ids, labels}]})")
    p.add_argument("--init-adapter", required=True, help="PEFT adapter dir (LORA or ROSA)")
    p.add_argument("--out", required=True, help="OUT.json")
    p.add_argument("--save-adapter", help="write the final adapter (float32) here")
    p.add_argument("--max-steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--micro-batch-size", type=int, default=2)
    p.add_argument("--lr", "--learning-rate", dest="lr", type=float, default=3e-4)
    p.add_argument("--lr-scheduler", choices=("linear", "cosine", "constant"), default="linear")
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="0 = no clipping")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--adam-beta1", type=float, default=0.9)
    p.add_argument("--adam-beta2", type=float, default=0.999)
    p.add_argument("--adam-epsilon", type=float, default=1e-8)
    p.add_argument("--loss-norm", choices=("mean", "token"), default="mean")
    p.add_argument("--dropout", type=float, default=0.0, help="must be 0 (adapter-config dropout is ignored)")
    p.add_argument("--adalora-allocate", action="store_true",
                   help="AdaLoRA: call PEFT's update_and_allocate(step) after every optimizer step (HF Trainer "
                        "does not); OUT.json gets \"adalora\": {budgets, rank_pattern}")
    p.add_argument("-q", "--quiet", action="store_true")
    _add_dls_flags(p, {})

    p = sub.add_parser("make-adapter", help="write a random PEFT adapter (B != 0)")
    p.add_argument("--model", required=True)
    p.add_argument("--method", choices=("lora", "roae", "dora", "ia3", "ln_tuning", "oft", "miss", "fourierft", "shira", "adalora"), required=True)
    p.add_argument("--rank", type=int, default=None, help="LoRA/DoRA/RoAE r (default 8), MiSS r (default 64)")
    p.add_argument("--alpha", type=float, default=None, help="lora_alpha (default 2*rank) / RoAE alpha (default 1)")
    p.add_argument("--target-modules", default=None,
                   help="comma list, 'all-linear' or 're:REGEX' (default q_proj,v_proj; IA3 and LN-Tuning: "
                        "PEFT's llama mapping)")
    p.add_argument("--rslora", action="store_true")
    p.add_argument("--layers", default=None, help="layers_to_transform, e.g. 0,2")
    p.add_argument("--targets", default="q,k")
    p.add_argument("--r-low", type=float, default=0.25)
    p.add_argument("--placement", choices=("post-rope", "pre-rope"), default="post-rope")
    p.add_argument("--form", choices=("gate", "add"), default="gate")
    p.add_argument("--b-std", type=float, default=0.02, help="B ~ N(0, b_std) (0 gives B = 0)")
    g = p.add_argument_group("PEFT methods (tools/ref_peft.py)")
    g.add_argument("--peft-init", action="store_true",
                   help="PEFT's own default init (LoRA/DoRA B=0, IA3 ones, LN copy, OFT/MiSS zeros)")
    g.add_argument("--init-std", type=float, default=None,
                   help="random init spread: DoRA magnitude *(1+std N) (0.1), IA3 1+std N (0.1), LN gamma*(1+std N) "
                        "(0.1), OFT N(0,std) (0.1), MiSS N(0,std) (0.02)")
    g.add_argument("--rank-pattern", default=None, help="LoRA/DoRA rank_pattern, e.g. 'q_proj=2,layers.1.mlp.up_proj=6'")
    g.add_argument("--alpha-pattern", default=None, help="LoRA/DoRA alpha_pattern, e.g. 'v_proj=3'")
    g.add_argument("--feedforward-modules", default=None, help="IA3 feedforward_modules (default down_proj)")
    g.add_argument("--oft-r", type=int, default=0, help="OFT r (default 0: from oft_block_size)")
    g.add_argument("--oft-block-size", type=int, default=32)
    g.add_argument("--coft", action="store_true")
    g.add_argument("--oft-eps", type=float, default=6e-5)
    g.add_argument("--block-share", action="store_true")
    g.add_argument("--no-cayley-neumann", action="store_true", help="use_cayley_neumann false (exact Cayley)")
    g.add_argument("--num-cayley-neumann-terms", type=int, default=5)
    g.add_argument("--miss-init", choices=("miss", "bat", "mini"), default="miss",
                   help="MiSS init_weights: true (miss), \"bat\" or \"mini\"")
    g.add_argument("--mini-r", type=int, default=1)
    g.add_argument("--n-frequency", type=int, default=1000, help="FourierFT n_frequency")
    g.add_argument("--fourier-scaling", type=float, default=150.0, help="FourierFT scaling")
    g.add_argument("--random-loc-seed", type=int, default=777, help="FourierFT random_loc_seed")
    g.add_argument("--n-frequency-pattern", default=None, help="FourierFT n_frequency_pattern, e.g. 'v_proj=50'")
    g.add_argument("--shira-seed", type=int, default=None, help="SHiRA random_seed (default null)")
    g.add_argument("--target-r", type=int, default=8, help="AdaLoRA target_r (init_r is --rank, default 12)")
    g.add_argument("--orth-reg-weight", type=float, default=0.5, help="AdaLoRA orth_reg_weight")
    g.add_argument("--total-step", type=int, default=10, help="AdaLoRA total_step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dls-seed", type=int, default=42)
    p.add_argument("--out", required=True)
    _add_dls_flags(p, {"dls": "on", "interval": 50, "warmup": 50, "k_ratio": 0.5, "p_exploit": 1.0,
                       "score_ema": 0.0, "inactive": "skip"})

    p = sub.add_parser("make-data", help="write random token records in the rosa tokenize --json dump format")
    p.add_argument("--model", required=True)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--min-len", type=int, default=8)
    p.add_argument("--max-len", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)

    sub.add_parser("self-check", help="internal consistency checks (no rosa needed)")

    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    try:
        if a.cmd == "self-check":
            return self_check()
        if a.cmd == "train":
            m = ref_llama.load_model(a.model)
            adapter = load_adapter(a.init_adapter, m.cfg)
            recs = load_dump(a.data)
            t0 = time.time()
            res = train(m, adapter, recs, a, None if a.quiet else (lambda s: print(s, file=sys.stderr)))
            res["method"] = adapter.kind
            with open(a.out, "w") as f:
                json.dump(res, f)
                f.write("\n")
            if a.save_adapter:
                if hasattr(adapter, "saved"):
                    save_adapter(a.save_adapter, *adapter.saved())
                else:
                    save_adapter(a.save_adapter, adapter.config, adapter.params)
            if not a.quiet:
                print("trained %d steps in %.2fs -> %s" % (a.max_steps, time.time() - t0, a.out), file=sys.stderr)
            return 0
        if a.cmd == "make-adapter":
            m = ref_llama.load_model(a.model)
            if a.rank is None:
                a.rank = {"miss": 64, "adalora": 12}.get(a.method, 8)
            if a.alpha is None:
                a.alpha = 2.0 * a.rank if a.method in ("lora", "dora") else 8.0 if a.method == "adalora" else 1.0
            if a.target_modules is None and a.method in ("lora", "dora"):
                a.target_modules = "q_proj,v_proj"
            cfg, t = make_adapter(m.cfg, a, os.path.abspath(a.model), m.w)
            save_adapter(a.out, cfg, t)
            return 0
        if a.cmd == "make-data":
            m = ref_llama.load_model(a.model)
            recs = make_data(m.cfg.vocab, a.n, a.min_len, a.max_len, a.seed)
            with open(a.out, "w") as f:
                json.dump({"records": recs, "count": len(recs)}, f)
                f.write("\n")
            return 0
        ap.print_help()
        return 2
    except (RefError, KeyError, ValueError, OSError) as e:
        print("ref_train.py: error: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
