#!/usr/bin/python3
"""Independent float64 reference forward pass for Llama-family causal LMs.

Implements the forward of transformers' LlamaForCausalLM, Qwen2ForCausalLM and
MistralForCausalLM (HF 4.4x semantics), Qwen3ForCausalLM and Gemma3ForCausalLM (also the text
part of a Gemma3ForConditionalGeneration checkpoint) in plain torch, computed in float64, with
its own safetensors reader.  No transformers / safetensors packages are used.

Module use:
    m = load_model("path/to/hf_dir")
    logits = forward(m, ids, mask)          # ids, mask: [B][T] -> float64 tensor [B,T,V]
    new_ids = greedy(m, [1], 16)

CLI:
    ref_llama.py --model DIR --ids "1,2,3" [--ids "4,5"] [--generate N]
    ref_llama.py --self-test SHARED_DIR     (checks SHARED_DIR/models/stories260K/vectors.json,
                                             or SHARED_DIR itself if it holds vectors.json)
    ref_llama.py --self-test-arch           (Qwen3 / Gemma3 / sliding-window checks on tiny
                                             random models built in a temporary directory)

Semantics (see docs/reference.md):
  * RMSNorm: w * x * rsqrt(mean(x^2) + eps); Gemma3: (1 + w) * x * rsqrt(mean(x^2) + eps).
  * RoPE: rotate_half layout (pairs j, j + d/2), inv_freq = 1 / theta^(arange(0,d,2)/d),
    rope_scaling None/default, linear (inv_freq / factor), llama3 (as in transformers'
    _compute_llama3_parameters).  Computed in float64 (HF computes cos/sin in float32).
    Per layer: Gemma3 sliding layers use rope_local_base_freq with default RoPE, full layers
    rope_theta with rope_scaling (or the per-layer-type rope_parameters of transformers 5).
  * GQA via repeat_kv (query head h uses kv head h // (H / Hkv)), scale head_dim^-0.5
    (Gemma3: query_pre_attn_scalar^-0.5; attn_logit_softcapping tanh-caps the scores before
    the mask, final_logit_softcapping the logits, when set; Gemma 3 checkpoints set neither).
  * Qwen3 / Gemma3: q_norm / k_norm (RMSNorm over head_dim, one [head_dim] weight shared by
    the heads) on each head of Q and K after the projections, before RoPE and repeat_kv.
    Qwen3: q/k/v/o biases iff attention_bias (default false); head_dim from the config
    (Qwen3Config default 128, independent of hidden/heads).
  * MLP: down(act(gate(x)) * up(x)), act = silu, or gelu tanh approximation for Gemma3
    (gelu_pytorch_tanh); optional biases (Llama mlp_bias).
  * Gemma3 layer: x += post_attention_layernorm(attn(input_layernorm(x)));
    x += post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x))); embeddings times
    sqrt(hidden_size) (HF rounds that factor to the embedding dtype; float64 here); tied.
  * Batched inputs with an attention mask (1 real, 0 pad), left or right padding:
    position_ids = clamp(cumsum(mask) - 1, min=0); causal mask AND key padding mask AND, on
    sliding layers, the window: key index k is visible from query index q iff q - k < W
    (indices in the padded sequence; transformers masking_utils.sliding_window_overlay,
    kv_idx > q_idx - sliding_window, i.e. W tokens including the current one).  Sliding
    layers: every layer of Mistral with sliding_window set; Qwen3 layer_types, default
    sliding iff use_sliding_window and i >= max_window_layers; Gemma3 layer_types, default
    full iff (i + 1) % sliding_window_pattern == 0.  Fully masked query rows (pad rows)
    attend uniformly instead of producing NaN.
  * Gemma3ForConditionalGeneration: config text_config over Gemma3TextConfig's defaults;
    tensors language_model.model.* / model.language_model.* -> model.*,
    language_model.lm_head.* -> lm_head.*; vision_tower.* and multi_modal_projector.* (also
    under model.) are ignored (text-only reference; no image tokens are ever embedded).
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

DT = torch.float64

# --------------------------------------------------------------------------- safetensors


def _decode(dtype, raw, shape):
    if dtype == "F32":
        a = np.frombuffer(raw, dtype="<f4")
    elif dtype == "F64":
        a = np.frombuffer(raw, dtype="<f8")
    elif dtype == "F16":
        a = np.frombuffer(raw, dtype="<f2")
    elif dtype == "BF16":
        u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        a = u.view(np.float32)
    else:
        raise ValueError("unsupported safetensors dtype %r" % dtype)
    n = int(np.prod(shape)) if len(shape) else 1
    if a.size != n:
        raise ValueError("tensor byte size does not match shape %r (%s)" % (shape, dtype))
    return a.astype(np.float64).reshape(shape)


def read_safetensors(path):
    """Returns (dict name -> float64 numpy array, metadata dict or None, dict name -> dtype)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError("%s: too short" % path)
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError("%s: header length %d past end of file" % (path, n))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    meta = header.pop("__metadata__", None)
    out, dtypes = {}, {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        if not (0 <= b <= e <= len(body)):
            raise ValueError("%s: bad data_offsets for %s" % (path, name))
        out[name] = _decode(info["dtype"], body[b:e], list(info["shape"]))
        dtypes[name] = info["dtype"]
    return out, meta, dtypes


def read_weights(model_dir):
    """Reads model.safetensors or the shards listed in model.safetensors.index.json."""
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wmap = json.load(f)["weight_map"]
        weights, dtypes = {}, {}
        for fn in sorted(set(wmap.values())):
            w, _, d = read_safetensors(os.path.join(model_dir, fn))
            for k in w:
                if wmap.get(k) != fn:
                    raise ValueError("%s holds %s but the index maps it to %r" % (fn, k, wmap.get(k)))
            weights.update(w)
            dtypes.update(d)
        missing = set(wmap) - set(weights)
        if missing:
            raise ValueError("index lists tensors not found in shards: %s" % sorted(missing)[:5])
        return weights, dtypes
    w, _, d = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    return w, d


# --------------------------------------------------------------------------- config / rope

FULL, SLIDING = "full_attention", "sliding_attention"

# Gemma3TextConfig.__init__ defaults (transformers 4.50-4.57 configuration_gemma3.py).  A
# Gemma3ForConditionalGeneration config's text_config lists only what differs from these
# (google/gemma-3-4b-it's gives hidden_size, intermediate_size, num_hidden_layers,
# rope_scaling and sliding_window), so a loader must apply them.
GEMMA3_TEXT_DEFAULTS = {
    "vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
    "attention_bias": False, "query_pre_attn_scalar": 256, "sliding_window": 4096,
    "final_logit_softcapping": None, "attn_logit_softcapping": None, "rope_scaling": None,
    "rope_local_base_freq": 10000.0, "sliding_window_pattern": 6, "tie_word_embeddings": True,
    "use_bidirectional_attention": False,
}


def _family(cfg):
    arch = (cfg.get("architectures") or ["LlamaForCausalLM"])[0]
    mt = cfg.get("model_type", "")
    if arch == "Gemma3ForConditionalGeneration" or mt == "gemma3":
        return "gemma3_mm"
    if arch == "Gemma3ForCausalLM" or mt == "gemma3_text":
        return "gemma3"
    if arch == "Qwen3ForCausalLM" or mt == "qwen3":
        return "qwen3"
    if arch.startswith("Qwen2") or mt == "qwen2":
        return "qwen2"
    if arch.startswith("Mistral") or mt == "mistral":
        return "mistral"
    if arch.startswith("Llama") or mt == "llama":
        return "llama"
    raise ValueError("unsupported architecture %r / model_type %r" % (arch, mt))


class Config:
    """Per-model settings.  Per-layer ones: layer_types[i] (FULL / SLIDING), window[i] (None or
    the sliding window in tokens), rope[i] ((theta, rope_scaling) of the layer)."""

    def __init__(self, cfg):
        self.raw = cfg
        fam = _family(cfg)
        self.multimodal = fam == "gemma3_mm"
        if self.multimodal:
            if not isinstance(cfg.get("text_config"), dict):
                raise ValueError("Gemma3ForConditionalGeneration config without a text_config")
            tc = dict(GEMMA3_TEXT_DEFAULTS)
            tc.update(cfg["text_config"])
            if "tie_word_embeddings" not in cfg["text_config"] and "tie_word_embeddings" in cfg:
                tc["tie_word_embeddings"] = cfg["tie_word_embeddings"]
            cfg = tc
            fam = "gemma3"
        elif fam == "gemma3":
            tc = dict(GEMMA3_TEXT_DEFAULTS)
            tc.update(cfg)
            cfg = tc
        self.family = fam
        self.text = cfg
        gemma = fam == "gemma3"
        act = cfg.get("hidden_activation") or cfg.get("hidden_act") if gemma else cfg.get("hidden_act", "silu")
        if gemma and act != "gelu_pytorch_tanh":
            raise ValueError("unsupported gemma3 hidden_activation %r" % act)
        if not gemma and act != "silu":
            raise ValueError("unsupported hidden_act %r" % act)
        self.act = "gelu_tanh" if gemma else "silu"
        self.hidden = cfg["hidden_size"]
        self.inter = cfg["intermediate_size"]
        self.layers = cfg["num_hidden_layers"]
        self.heads = cfg["num_attention_heads"]
        kv = cfg.get("num_key_value_heads")
        self.kv_heads = self.heads if kv is None else kv
        hd = cfg.get("head_dim")
        if fam == "qwen3" and "head_dim" not in cfg:
            hd = 128                        # Qwen3Config's default, not hidden / heads
        self.head_dim = hd if hd else self.hidden // self.heads
        if self.heads % self.kv_heads:
            raise ValueError("num_attention_heads not a multiple of num_key_value_heads")
        self.eps = cfg["rms_norm_eps"] if not (fam == "qwen3" and "rms_norm_eps" not in cfg) else 1e-6
        rp = cfg.get("rope_parameters")
        self.theta = cfg.get("rope_theta")
        if self.theta is None and isinstance(rp, dict) and "rope_theta" in rp:
            self.theta = rp["rope_theta"]
        if self.theta is None:
            self.theta = 10000.0
        self.vocab = cfg["vocab_size"]
        self.tie = bool(cfg.get("tie_word_embeddings", fam == "gemma3"))
        ab = bool(cfg.get("attention_bias", False))
        self.qkv_bias = fam == "qwen2" or (fam in ("llama", "qwen3", "gemma3") and ab)
        self.o_bias = fam in ("llama", "qwen3", "gemma3") and ab
        self.mlp_bias = fam == "llama" and bool(cfg.get("mlp_bias", False))
        # Qwen3 / Gemma3: RMSNorm over head_dim on each head of Q and K, before RoPE.
        self.qk_norm = fam in ("qwen3", "gemma3")
        # Gemma: norms scale by (1 + w); 4 norms per layer; embeddings times sqrt(hidden).
        self.norm_offset = 1.0 if gemma else 0.0
        self.sandwich = gemma
        self.embed_scale = math.sqrt(self.hidden) if gemma else None
        self.attn_scale = float(cfg["query_pre_attn_scalar"]) ** -0.5 if gemma else self.head_dim ** -0.5
        self.attn_softcap = cfg.get("attn_logit_softcapping") if gemma else None
        self.final_softcap = cfg.get("final_logit_softcapping") if gemma else None
        if gemma and cfg.get("use_bidirectional_attention", False):
            raise ValueError("gemma3 use_bidirectional_attention=true is not supported by the reference")
        # DLS "pre-sublayer" norms: the norms whose outputs feed attention and the MLP.
        self.dls_norms = ("input_layernorm", "pre_feedforward_layernorm") if gemma else \
            ("input_layernorm", "post_attention_layernorm")
        if cfg.get("partial_rotary_factor", 1.0) != 1.0:
            raise ValueError("partial_rotary_factor != 1 not supported")
        self.rope_scaling = cfg.get("rope_scaling")
        if self.rope_scaling is None and isinstance(rp, dict) and not gemma and \
                rp.get("rope_type", "default") != "default":
            self.rope_scaling = rp
        # Attention types / windows per layer
        L = self.layers
        self.sliding_window = None
        window = None
        lt = cfg.get("layer_types")
        if fam == "mistral":
            self.sliding_window = cfg.get("sliding_window")
            lt = [SLIDING if self.sliding_window is not None else FULL] * L
            window = self.sliding_window
        elif fam == "qwen2" and cfg.get("use_sliding_window", False):
            # Per-layer windows (max_window_layers) differ between HF versions; not modelled.
            raise ValueError("qwen2 use_sliding_window=true is not supported by the reference")
        elif fam == "qwen3":
            # Qwen3Config: sliding_window = sliding_window if use_sliding_window else None;
            # layer_types default: sliding iff sliding_window is set and i >= max_window_layers.
            window = cfg.get("sliding_window") if cfg.get("use_sliding_window", False) else None
            if not lt:
                mwl = cfg.get("max_window_layers", 28)
                lt = [SLIDING if window is not None and i >= mwl else FULL for i in range(L)]
        elif gemma:
            window = cfg.get("sliding_window")
            if not lt:
                pat = cfg.get("sliding_window_pattern", cfg.get("_sliding_window_pattern", 6))
                lt = [SLIDING if (i + 1) % pat else FULL for i in range(L)]
        if not lt:
            lt = [FULL] * L
        if len(lt) != L or any(t not in (FULL, SLIDING) for t in lt):
            raise ValueError("layer_types must list %d of %s / %s" % (L, FULL, SLIDING))
        if SLIDING in lt and (window is None or int(window) < 1):
            raise ValueError("sliding_attention layers need a positive sliding_window")
        self.layer_types = list(lt)
        self.window = [int(window) if t == SLIDING else None for t in lt]
        # RoPE per layer.  Gemma3: sliding layers use rope_local_base_freq with default RoPE,
        # full layers rope_theta with rope_scaling (transformers >= 4.57 / 5: rope_parameters
        # keyed by layer type).
        if gemma:
            if isinstance(rp, dict) and (FULL in rp or SLIDING in rp):
                per = {}
                for t, dflt in ((FULL, self.theta), (SLIDING, cfg.get("rope_local_base_freq", 10000.0))):
                    r = dict(rp.get(t) or {})
                    th = r.get("rope_theta", dflt)
                    per[t] = (float(th), r if r.get("rope_type", "default") != "default" else None)
            else:
                per = {FULL: (float(self.theta), self.rope_scaling),
                       SLIDING: (float(cfg.get("rope_local_base_freq", 10000.0)), None)}
            self.rope = [per[t] for t in lt]
        else:
            self.rope = [(float(self.theta), self.rope_scaling)] * L


def inv_freq_of(d, theta, rs):
    """float64 RoPE inverse frequencies [d/2] for base theta, with HF rope_scaling semantics."""
    base = float(theta)
    inv = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.int64).to(DT) / d))
    if not rs:
        return inv
    rtype = rs.get("rope_type", rs.get("type", "default"))
    if rtype == "default":
        return inv
    if rtype == "linear":
        return inv / float(rs["factor"])
    if rtype == "llama3":
        factor = float(rs["factor"])
        lff = float(rs["low_freq_factor"])
        hff = float(rs["high_freq_factor"])
        old = float(rs["original_max_position_embeddings"])
        low_wl = old / lff
        high_wl = old / hff
        wavelen = 2 * math.pi / inv
        inv_l = torch.where(wavelen > low_wl, inv / factor, inv)
        smooth = (old / wavelen - lff) / (hff - lff)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        is_medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
        return torch.where(is_medium, smoothed, inv_l)
    raise ValueError("unsupported rope_scaling type %r" % rtype)


def inv_freq(cfg):
    """float64 RoPE inverse frequencies [head_dim/2] of the model's (full-attention) layers."""
    return inv_freq_of(cfg.head_dim, cfg.theta, cfg.rope_scaling)


def llama3_bands(cfg):
    """Counts of (high, medium, low) frequency bands for a llama3 rope config."""
    d = cfg.head_dim
    inv = 1.0 / (float(cfg.theta) ** (torch.arange(0, d, 2, dtype=torch.int64).to(DT) / d))
    rs = cfg.rope_scaling
    old = float(rs["original_max_position_embeddings"])
    wl = 2 * math.pi / inv
    high = int((wl < old / float(rs["high_freq_factor"])).sum())
    low = int((wl > old / float(rs["low_freq_factor"])).sum())
    return high, len(wl) - high - low, low


# --------------------------------------------------------------------------- model

# Gemma3ForConditionalGeneration checkpoints: text weights under "language_model.model." and
# "language_model.lm_head." (checkpoints saved by transformers < 4.52, e.g. google/gemma-3-4b-it
# on the Hub) or "model.language_model." and "lm_head." (saved by >= 4.52; the conversion
# mapping turns the old names into these).  The vision tower and projector are ignored.
_MM_TEXT_PREFIXES = (("language_model.model.", "model."), ("model.language_model.", "model."),
                     ("language_model.lm_head.", "lm_head."))
_MM_IGNORED_PREFIXES = ("vision_tower.", "multi_modal_projector.", "model.vision_tower.",
                        "model.multi_modal_projector.")


def text_weight_names(w):
    """Maps a Gemma3ForConditionalGeneration state dict onto Gemma3ForCausalLM names, dropping
    the vision tower and the projector.  Returns (dict, list of ignored names)."""
    out, ignored = {}, []
    for k, v in w.items():
        if k.startswith(_MM_IGNORED_PREFIXES):
            ignored.append(k)
            continue
        for old, new in _MM_TEXT_PREFIXES:
            if k.startswith(old):
                k = new + k[len(old):]
                break
        else:
            if not k.startswith("lm_head."):
                raise ValueError("multimodal checkpoint tensor %s is neither text nor vision" % k)
        if k in out:
            raise ValueError("tensor %s appears under two prefixes" % k)
        out[k] = v
    return out, ignored


def expected_shapes(c):
    H, K, d, D, I = c.heads, c.kv_heads, c.head_dim, c.hidden, c.inter
    exp = {"model.embed_tokens.weight": (c.vocab, D), "model.norm.weight": (D,)}
    for i in range(c.layers):
        p = "model.layers.%d." % i
        exp[p + "input_layernorm.weight"] = (D,)
        exp[p + "post_attention_layernorm.weight"] = (D,)
        if c.sandwich:
            exp[p + "pre_feedforward_layernorm.weight"] = (D,)
            exp[p + "post_feedforward_layernorm.weight"] = (D,)
        if c.qk_norm:
            exp[p + "self_attn.q_norm.weight"] = (d,)
            exp[p + "self_attn.k_norm.weight"] = (d,)
        exp[p + "self_attn.q_proj.weight"] = (H * d, D)
        exp[p + "self_attn.k_proj.weight"] = (K * d, D)
        exp[p + "self_attn.v_proj.weight"] = (K * d, D)
        exp[p + "self_attn.o_proj.weight"] = (D, H * d)
        exp[p + "mlp.gate_proj.weight"] = (I, D)
        exp[p + "mlp.up_proj.weight"] = (I, D)
        exp[p + "mlp.down_proj.weight"] = (D, I)
        if c.qkv_bias:
            exp[p + "self_attn.q_proj.bias"] = (H * d,)
            exp[p + "self_attn.k_proj.bias"] = (K * d,)
            exp[p + "self_attn.v_proj.bias"] = (K * d,)
        if c.o_bias:
            exp[p + "self_attn.o_proj.bias"] = (D,)
        if c.mlp_bias:
            exp[p + "mlp.gate_proj.bias"] = (I,)
            exp[p + "mlp.up_proj.bias"] = (I,)
            exp[p + "mlp.down_proj.bias"] = (D,)
    return exp


class Model:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = Config(json.load(f))
        w, self.dtypes = read_weights(model_dir)
        self.ignored = []
        if self.cfg.multimodal:
            w, self.ignored = text_weight_names(w)
        self.w = {k: torch.from_numpy(v) for k, v in w.items()}
        c = self.cfg
        if "lm_head.weight" in self.w and not c.tie:
            self.lm_head = self.w["lm_head.weight"]
        elif c.tie:
            self.lm_head = self.w["model.embed_tokens.weight"]
        else:
            raise ValueError("lm_head.weight missing and tie_word_embeddings is false")
        self.inv_freq = inv_freq(c)
        # per-layer inverse frequencies (shared tensor objects for equal settings)
        cache = {}
        self.inv_freqs = []
        for th, rs in c.rope:
            key = json.dumps([th, rs], sort_keys=True)
            if key not in cache:
                cache[key] = inv_freq_of(c.head_dim, th, rs)
            self.inv_freqs.append(cache[key])
        # check shapes up front
        for k, s in expected_shapes(c).items():
            if k not in self.w:
                raise ValueError("missing tensor %s" % k)
            if tuple(self.w[k].shape) != s:
                raise ValueError("%s has shape %s, expected %s" % (k, tuple(self.w[k].shape), s))
        if tuple(self.lm_head.shape) != (c.vocab, c.hidden):
            raise ValueError("lm_head has shape %s" % (tuple(self.lm_head.shape),))


def load_model(model_dir):
    return Model(model_dir)


def _rms(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _norm(c, x, w):
    """The model's RMSNorm: w * x̂ (Llama, Qwen) or (1 + w) * x̂ (Gemma)."""
    return _rms(x, w + c.norm_offset if c.norm_offset else w, c.eps)


def _lin(x, w, b=None):
    y = x @ w.t()
    return y if b is None else y + b


def _rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def _act(c, x):
    if c.act == "gelu_tanh":
        return torch.nn.functional.gelu(x, approximate="tanh")
    return torch.nn.functional.silu(x)


def layer_tables(m, mask, position_ids=None):
    """Per-layer (cos, sin, allowed) for a batch.  mask: long [B,T].

    cos/sin: [B,1,T,d] from the layer's inverse frequencies at positions
    clamp(cumsum(mask) - 1, 0) (or position_ids).  allowed: bool [B,1,T(q),T(k)]: causal
    (k <= q) AND key is real (mask) AND, on a sliding layer with window W, q - k < W, where
    q and k are indices in the (padded) sequence, as transformers' masking_utils computes it
    (sliding_window_overlay: kv_idx > q_idx - W).  Query rows with no allowed key (pad rows)
    attend to every key instead of producing NaN."""
    c = m.cfg
    B, T = mask.shape
    if position_ids is None:
        pos = (mask.cumsum(-1) - 1).clamp(min=0).to(DT)             # [B,T]
    else:
        pos = torch.as_tensor(position_ids, dtype=DT).expand(B, T)
    qi = torch.arange(T)[:, None]
    ki = torch.arange(T)[None, :]
    base = (ki <= qi)[None] & mask.bool()[:, None, :]                # [B,T(q),T(k)]
    rope_cache, mask_cache, out = {}, {}, []
    for i in range(c.layers):
        inv = m.inv_freqs[i]
        if id(inv) not in rope_cache:
            freqs = pos[..., None] * inv                             # [B,T,d/2]
            emb = torch.cat((freqs, freqs), dim=-1)
            rope_cache[id(inv)] = (emb.cos()[:, None], emb.sin()[:, None])
        W = c.window[i]
        if W not in mask_cache:
            allowed = base if W is None else base & ((qi - ki) < W)[None]
            dead = ~allowed.any(-1, keepdim=True)
            mask_cache[W] = (allowed | dead)[:, None]                # [B,1,T,T]
        out.append(rope_cache[id(inv)] + (mask_cache[W],))
    return out


def embed(m, ids):
    x = m.w["model.embed_tokens.weight"][ids]
    if m.cfg.embed_scale is not None:
        # HF multiplies by sqrt(hidden) cast to the embedding dtype; float64 here.
        x = x * m.cfg.embed_scale
    return x


def logits_head(m, x):
    lg = x @ m.lm_head.t()
    cap = m.cfg.final_softcap
    if cap is not None:
        lg = torch.tanh(lg / cap) * cap
    return lg


def attend(c, q, k, v, allowed):
    """q: [B,H,T,d]; k, v: [B,K,T,d] (before repeat_kv).  Returns [B,T,H*d]."""
    B, H, T, d = q.shape
    K = k.shape[1]
    rep = H // K
    # repeat_kv: [B,K,T,d] -> [B,K*rep,T,d], head h uses kv head h // rep
    k = k[:, :, None].expand(B, K, rep, T, d).reshape(B, H, T, d)
    v = v[:, :, None].expand(B, K, rep, T, d).reshape(B, H, T, d)
    s = (q @ k.transpose(2, 3)) * c.attn_scale
    if c.attn_softcap is not None:
        s = torch.tanh(s / c.attn_softcap) * c.attn_softcap
    s = s.masked_fill(~allowed, float("-inf"))
    a = torch.softmax(s, dim=-1) @ v                                  # [B,H,T,d]
    return a.transpose(1, 2).reshape(B, T, H * d)


def forward(m, ids, mask=None, position_ids=None, hidden=None):
    """ids: [B][T] ints; mask: [B][T] of 0/1 (None = all ones).  Returns float64 [B,T,V].

    position_ids defaults to clamp(cumsum(mask) - 1, 0) (what HF generate() passes); pass
    [B][T] explicitly to override (HF's plain forward without position_ids uses arange(T)).
    hidden: a list to which each decoder layer's output [B,T,D] is appended."""
    c, w = m.cfg, m.w
    ids = torch.as_tensor(ids, dtype=torch.long)
    if ids.dim() == 1:
        ids = ids[None]
    B, T = ids.shape
    mask = torch.ones(B, T, dtype=torch.long) if mask is None else torch.as_tensor(mask, dtype=torch.long)
    if mask.shape != ids.shape:
        raise ValueError("mask shape differs from ids shape")
    if int(ids.min()) < 0 or int(ids.max()) >= c.vocab:
        raise ValueError("token id out of range")
    H, K, d = c.heads, c.kv_heads, c.head_dim
    tables = layer_tables(m, mask, position_ids)

    x = embed(m, ids)                                                # [B,T,D]
    for i in range(c.layers):
        p = "model.layers.%d." % i
        g = w.get
        cos, sin, allowed = tables[i]
        h = _norm(c, x, w[p + "input_layernorm.weight"])
        q = _lin(h, w[p + "self_attn.q_proj.weight"], g(p + "self_attn.q_proj.bias") if c.qkv_bias else None)
        k = _lin(h, w[p + "self_attn.k_proj.weight"], g(p + "self_attn.k_proj.bias") if c.qkv_bias else None)
        v = _lin(h, w[p + "self_attn.v_proj.weight"], g(p + "self_attn.v_proj.bias") if c.qkv_bias else None)
        q = q.view(B, T, H, d)
        k = k.view(B, T, K, d)
        if c.qk_norm:                                                # per head, over head_dim
            q = _norm(c, q, w[p + "self_attn.q_norm.weight"])
            k = _norm(c, k, w[p + "self_attn.k_norm.weight"])
        q = q.transpose(1, 2)
        k = k.transpose(1, 2)
        v = v.view(B, T, K, d).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        a = attend(c, q, k, v, allowed)
        o = _lin(a, w[p + "self_attn.o_proj.weight"], g(p + "self_attn.o_proj.bias") if c.o_bias else None)
        if c.sandwich:
            x = x + _norm(c, o, w[p + "post_attention_layernorm.weight"])
            h = _norm(c, x, w[p + "pre_feedforward_layernorm.weight"])
        else:
            x = x + o
            h = _norm(c, x, w[p + "post_attention_layernorm.weight"])
        mb = c.mlp_bias
        gt = _lin(h, w[p + "mlp.gate_proj.weight"], g(p + "mlp.gate_proj.bias") if mb else None)
        up = _lin(h, w[p + "mlp.up_proj.weight"], g(p + "mlp.up_proj.bias") if mb else None)
        y = _lin(_act(c, gt) * up, w[p + "mlp.down_proj.weight"], g(p + "mlp.down_proj.bias") if mb else None)
        if c.sandwich:
            y = _norm(c, y, w[p + "post_feedforward_layernorm.weight"])
        x = x + y
        if hidden is not None:
            hidden.append(x)
    x = _norm(c, x, w["model.norm.weight"])
    return logits_head(m, x)


def argmax_lowest(v):
    v = np.asarray(v)
    return int(np.argmax(v))  # numpy returns the first (lowest) index among ties


def greedy(m, ids, n):
    """Greedy decode n tokens after ids (full recompute each step).  Returns new ids."""
    seq = list(ids)
    out = []
    for _ in range(n):
        lg = forward(m, [seq])[0, -1].numpy()
        t = argmax_lowest(lg)
        out.append(t)
        seq.append(t)
    return out


def mean_ce(m, ids):
    lg = forward(m, [ids])[0]
    lp = torch.log_softmax(lg[:-1], dim=-1)
    tgt = torch.as_tensor(ids[1:], dtype=torch.long)
    return float(-lp.gather(1, tgt[:, None]).mean())


# --------------------------------------------------------------------------- self-test


def self_test(shared):
    cands = [shared, os.path.join(shared, "stories260K"), os.path.join(shared, "models", "stories260K")]
    mdir = next((p for p in cands if os.path.exists(os.path.join(p, "vectors.json"))), None)
    if mdir is None:
        print("self-test: no vectors.json under %s" % shared)
        return 1
    with open(os.path.join(mdir, "vectors.json")) as f:
        vec = json.load(f)
    m = load_model(mdir)
    tol = 1e-9
    ok = True
    worst = {"last_logits_first16": 0.0, "sequence_last_logits_first16": 0.0, "mean_ce": 0.0}
    for p in vec["prompts"]:
        lg = forward(m, [p["input_ids"]])[0, -1].numpy()
        d1 = float(np.max(np.abs(lg[:16] - np.array(p["last_logits_first16"]))))
        top5 = sorted(range(len(lg)), key=lambda i: (-lg[i], i))[:5]
        t5ok = top5 == [t for t, _ in p["last_logits_top5"]] and \
            max(abs(lg[t] - v) for t, v in p["last_logits_top5"]) < tol
        sl = forward(m, [p["sequence_ids"]])[0, -1].numpy()
        d2 = float(np.max(np.abs(sl[:16] - np.array(p["sequence_last_logits_first16"]))))
        d3 = abs(mean_ce(m, p["sequence_ids"]) - p["mean_ce"])
        cont = greedy(m, p["input_ids"], p["num_new_tokens"])
        cok = cont == p["continuation_ids"]
        worst["last_logits_first16"] = max(worst["last_logits_first16"], d1)
        worst["sequence_last_logits_first16"] = max(worst["sequence_last_logits_first16"], d2)
        worst["mean_ce"] = max(worst["mean_ce"], d3)
        good = d1 < tol and d2 < tol and d3 < tol and t5ok and cok
        ok &= good
        print("prompt %-20r last16 %.3e  seq16 %.3e  mean_ce %.3e  top5 %s  continuation(%d) %s  %s"
              % (p["prompt"], d1, d2, d3, "ok" if t5ok else "MISMATCH", len(cont),
                 "ok" if cok else "MISMATCH", "PASS" if good else "FAIL"))
    # batched consistency: all prompts at once, right and left padded
    seqs = [p["sequence_ids"] for p in vec["prompts"]]
    bd = batch_consistency(m, seqs)
    print("batched (left/right padding) vs single: max |diff| %.3e  %s" % (bd, "PASS" if bd < tol else "FAIL"))
    ok &= bd < tol
    g = vec["greedy"]
    gids = greedy(m, g["input_ids"], g["num_new_tokens"])
    nmatch = sum(1 for a, b in zip(gids, g["ids"]) if a == b)
    gok = gids == g["ids"]
    ok &= gok
    print("greedy from %s: %d/%d ids match  %s" % (g["input_ids"], nmatch, len(g["ids"]), "PASS" if gok else "FAIL"))
    print("max abs diff: " + ", ".join("%s %.3e" % kv for kv in worst.items()))
    print("self-test %s" % ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


def pad_batch(seqs, side, pad_id=0):
    T = max(len(s) for s in seqs)
    ids, mask = [], []
    for s in seqs:
        n = T - len(s)
        if side == "right":
            ids.append(list(s) + [pad_id] * n)
            mask.append([1] * len(s) + [0] * n)
        else:
            ids.append([pad_id] * n + list(s))
            mask.append([0] * n + [1] * len(s))
    return ids, mask


def batch_consistency(m, seqs):
    """Max |diff| between real-position logits of padded batches and single-sequence runs."""
    singles = [forward(m, [s])[0] for s in seqs]
    worst = 0.0
    for side in ("right", "left"):
        ids, mask = pad_batch(seqs, side)
        lg = forward(m, ids, mask)
        if not torch.isfinite(lg).all():
            return float("inf")
        T = len(ids[0])
        for b, s in enumerate(seqs):
            off = 0 if side == "right" else T - len(s)
            worst = max(worst, float((lg[b, off:off + len(s)] - singles[b]).abs().max()))
    return worst


# --------------------------------------------------------------------------- architecture self-test

ARCH_CASES = ("qwen3-tiny", "qwen3-tiny-tied-bias", "qwen3-window-tiny", "gemma3-tiny", "gemma3-mm-tiny",
              "mistral-window-tiny")


def build_arch_models(root, names=ARCH_CASES):
    """Writes the issue-14 tiny models (make_test_models.py cases, same seeds) under root."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_test_models
    out = {}
    for i, name in enumerate(make_test_models.CASES):
        if name in names:
            out[name] = make_test_models.build_case(root, name, 1000 + i)
    return out


def window_locality(m, T=24, seed=0):
    """Receptive-field check of every layer at the last position t = T-1 of a T-token sequence,
    alone and left-padded in a batch.  A sliding layer with window W reaches W-1 tokens further
    back than the layer before it (R_i = R_{i-1} + W_i - 1; a full layer reaches everything).
    Changing the token at t - R_i - 1 must leave layer i's output at t exactly unchanged, and
    changing the token at t - R_i (or token 0 when R_i is unbounded) must change it.
    Returns (ok, lines)."""
    c = m.cfg
    rng = np.random.RandomState(seed)
    base = [int(v) for v in rng.randint(3, c.vocab, size=T)]
    t = T - 1
    npad = 3

    def outs(seq, pad):
        hs = []
        ids = [0] * pad + seq
        forward(m, [ids], [[0] * pad + [1] * len(seq)], hidden=hs)
        return [h[0, pad + t] for h in hs]

    def changed(seq, j):
        s = list(seq)
        s[j] = 3 + (s[j] - 3 + 1 + (s[j] * 7) % (c.vocab - 4)) % (c.vocab - 3)
        assert s[j] != seq[j]
        return s

    ok, lines, R = True, [], 0
    for pad in (0, npad):
        ref = outs(base, pad)
        R = 0
        for i in range(c.layers):
            W = c.window[i]
            R = None if (R is None or W is None) else R + W - 1
            far = None if R is None else t - R - 1          # first token out of reach
            near = 0 if R is None else t - R                 # the farthest token in reach
            d_far = None
            if far is not None and far >= 0:
                d_far = float((outs(changed(base, far), pad)[i] - ref[i]).abs().max())
            d_near = float((outs(changed(base, near), pad)[i] - ref[i]).abs().max()) if near >= 0 else None
            good = (d_far is None or d_far == 0.0) and (d_near is None or d_near > 1e-8)
            ok &= good
            lines.append("    pad %d layer %d %-17s window %-4s reach %-4s out-of-reach token %s: %s, "
                         "farthest in reach %s: %s  %s"
                         % (pad, i, c.layer_types[i], W, "all" if R is None else R, far,
                            "-" if d_far is None else "%.1e" % d_far, near,
                            "-" if d_near is None else "%.1e" % d_near, "PASS" if good else "FAIL"))
    return ok, lines


def _mm_as_text(mdir, out):
    """Rewrites a Gemma3ForConditionalGeneration dir as a Gemma3ForCausalLM one (text config
    with Gemma3TextConfig's defaults filled in, model.* names, vision tensors dropped)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_test_models
    with open(os.path.join(mdir, "config.json")) as f:
        cfg = json.load(f)
    tc = dict(GEMMA3_TEXT_DEFAULTS)
    tc.update(cfg["text_config"])
    tc["architectures"] = ["Gemma3ForCausalLM"]
    w, _ = read_weights(mdir)
    w, _ = text_weight_names(w)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(tc, f)
    make_test_models.write_safetensors(os.path.join(out, "model.safetensors"),
                                       {k: v.astype(np.float32) for k, v in w.items()}, "F32")
    return out


def self_test_arch():
    """Qwen3 / Gemma3 / sliding-window checks on the issue-14 tiny models (no files needed)."""
    import shutil
    import tempfile
    tmp = tempfile.mkdtemp(prefix="ref_llama_arch_")
    ok = True
    try:
        dirs = build_arch_models(tmp)
        rng = np.random.RandomState(1)
        print("a. sliding-window reach per layer (alone and left-padded)")
        for name, d in dirs.items():
            m = load_model(d)
            good, lines = window_locality(m)
            ok &= good
            print("  %-22s %s" % (name, "PASS" if good else "FAIL"))
            for ln in lines:
                if not ln.endswith("PASS") or os.environ.get("REF_VERBOSE"):
                    print(ln)
        print("b. left-/right-padded batch rows == the sequence alone (lengths 20, 6, 11, 9)")
        for name, d in dirs.items():
            m = load_model(d)
            seqs = [[int(v) for v in rng.randint(3, m.cfg.vocab, size=n)] for n in (20, 6, 11, 9)]
            bd = batch_consistency(m, seqs)
            good = bd < 1e-12
            ok &= good
            print("  %-22s max|diff| %.2e  %s" % (name, bd, "PASS" if good else "FAIL"))
        print("c. gemma3-mm-tiny == the same text weights loaded as Gemma3ForCausalLM")
        m = load_model(dirs["gemma3-mm-tiny"])
        mt = load_model(_mm_as_text(dirs["gemma3-mm-tiny"], os.path.join(tmp, "gemma3-mm-as-text")))
        ids = [[int(v) for v in rng.randint(3, m.cfg.vocab, size=14)]]
        diff = float((forward(m, ids) - forward(mt, ids)).abs().max())
        good = diff == 0.0 and len(m.ignored) == 5
        ok &= good
        print("  max|diff| %.1e, %d vision/projector tensors ignored  %s"
              % (diff, len(m.ignored), "PASS" if good else "FAIL"))
        print("d. soft-capping (Gemma 3 configs set none; Gemma 2 style caps if given)")
        m = load_model(dirs["gemma3-tiny"])
        base = forward(m, ids)
        m.cfg.final_softcap = 3.0
        capped = forward(m, ids)
        d1 = float((capped - torch.tanh(base / 3.0) * 3.0).abs().max())
        m.cfg.final_softcap = None
        m.cfg.attn_softcap = 1e12
        d2 = float((forward(m, ids) - base).abs().max())
        m.cfg.attn_softcap = 0.5
        d3 = float((forward(m, ids) - base).abs().max())
        m.cfg.attn_softcap = None
        good = d1 < 1e-14 and d2 < 1e-12 and d3 > 1e-3
        ok &= good
        print("  final cap 3: |diff to tanh form| %.1e; attn cap 1e12: %.1e; attn cap 0.5 moves by %.2e  %s"
              % (d1, d2, d3, "PASS" if good else "FAIL"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("self-test-arch %s" % ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


# --------------------------------------------------------------------------- CLI


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="HF model directory")
    ap.add_argument("--ids", action="append", help='comma-separated token ids, e.g. "1,2,3" (repeatable)')
    ap.add_argument("--generate", type=int, default=0, help="also greedy-decode N tokens per sequence")
    ap.add_argument("--self-test", metavar="SHARED_DIR", help="check against stories260K/vectors.json")
    ap.add_argument("--self-test-arch", action="store_true",
                    help="Qwen3 / Gemma3 / sliding-window checks on tiny random models (no files needed)")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    if a.self_test_arch:
        rc = self_test_arch()
        if a.self_test:
            rc |= self_test(a.self_test)
        return rc
    if a.self_test:
        return self_test(a.self_test)
    if not a.model or not a.ids:
        ap.error("--model and --ids are required (or --self-test)")
    m = load_model(a.model)
    seqs = [[int(t) for t in s.replace(" ", "").split(",") if t != ""] for s in a.ids]
    ids, mask = pad_batch(seqs, "right")
    lg = forward(m, ids, mask)
    np.set_printoptions(precision=6, suppress=True, linewidth=160)
    for b, s in enumerate(seqs):
        last = lg[b, len(s) - 1].numpy()
        print("seq %d %s" % (b, s))
        print("  last logits[0:16]: %s" % np.array2string(last[:16], separator=", "))
        print("  greedy next token: %d (logit %.6f)" % (argmax_lowest(last), last.max()))
        if a.generate:
            print("  greedy %d: %s" % (a.generate, greedy(m, s, a.generate)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
