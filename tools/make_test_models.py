#!/usr/bin/python3
"""Creates tiny random HF-format Llama-family models plus float64 reference logits.

    make_test_models.py --out DIR [--case NAME ...]

For every case DIR/<case>/ gets config.json, generation_config.json, model.safetensors
(or two shards + model.safetensors.index.json), ref.json and logits_<batch>.f32.
Reference logits come from tools/ref_llama.py, which reads the files written here back
from disk (so F16/BF16 cases use the rounded values).  Everything is seeded and
deterministic.

ref.json:
  {"case": str, "vocab_size": V,
   "batches": [{"name": str, "B": B, "T": T, "ids": [[T ints] x B], "mask": [[0/1 x T] x B],
                "logits": "logits_<name>.f32"}, ...]}
logits_<name>.f32: little-endian float32 [B][T][V]; pad positions are 0.
Real tokens are in [3, V); padding id is 0.
"""

import argparse
import json
import os
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_llama  # noqa: E402

TF_VERSION = "4.45.2"

# --------------------------------------------------------------------------- safetensors writer

_ST = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2)}


def _to_bf16_bits(a):
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even (no NaNs here)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return r.astype(np.uint16)


def encode_tensor(a, dtype):
    if dtype == "F32":
        return np.ascontiguousarray(a, dtype="<f4").tobytes()
    if dtype == "F16":
        return np.ascontiguousarray(a.astype(np.float16), dtype="<f2").tobytes()
    if dtype == "BF16":
        return _to_bf16_bits(a).astype("<u2").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype):
    """tensors: dict name -> float32 numpy array.  Sorted names, metadata {"format":"pt"},
    header padded with spaces to a multiple of 8, data in header order."""
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for name in sorted(tensors):
        b = encode_tensor(tensors[name], dtype)
        header[name] = {"dtype": dtype, "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return off


# --------------------------------------------------------------------------- cases

BASE = dict(vocab=256, hidden=64, inter=72, layers=2, heads=4, kv=2, head_dim=16, eps=1e-5,
            theta=10000.0, rope_scaling=None, tie=False, dtype="F32", arch="llama",
            attention_bias=False, mlp_bias=False, shards=1, extra_batches=(), window=64,
            # Qwen3 / Gemma3 (issue 14)
            use_sliding_window=False, max_window_layers=None, layer_types=None, pattern=None,
            qpas=None, local_theta=None, omit=())

CASES = {
    "llama_gqa": dict(layers=3),
    "llama_mha_tied": dict(kv=4, tie=True),
    "qwen2_bias": dict(arch="qwen2", tie=True, eps=1e-6, theta=1000000.0, vocab=250),
    "llama3_rope": dict(theta=500000.0,
                        # original_max_position_embeddings 64 (not 16): with head_dim 16 the
                        # shortest wavelength is 2*pi, so the high-frequency band
                        # (wavelen < orig/high_freq_factor) needs orig > 8*pi.  With 64 the
                        # bands are 1 high / 1 medium / 6 low (asserted below).
                        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                        extra_batches=(("long", 80),)),
    "head_dim_32": dict(head_dim=32),
    "llama_bias": dict(attention_bias=True, mlp_bias=True),
    "f16": dict(dtype="F16"),
    "bf16": dict(dtype="BF16"),
    "sharded": dict(shards=2),
    "mistral": dict(arch="mistral"),
    "linear_rope": dict(rope_scaling={"type": "linear", "factor": 2.0}),
    # ---- issue 14: Qwen3, Gemma3, sliding windows (appended: the seeds of the cases above,
    # 1000 + index, stay the same).  Sequences are 6..12 tokens, windows 4.
    # Qwen3, GQA 4/2, head_dim 16 != hidden/heads = 12, untied, no biases, q/k norms.
    "qwen3-tiny": dict(arch="qwen3", vocab=128, hidden=48, inter=64, layers=3, heads=4, kv=2, head_dim=16,
                       eps=1e-6, theta=1000000.0),
    # Qwen3, tied embeddings, attention_bias true (q/k/v/o biases).
    "qwen3-tiny-tied-bias": dict(arch="qwen3", vocab=128, hidden=32, inter=48, layers=2, heads=4, kv=2,
                                 head_dim=8, eps=1e-6, theta=1000000.0, tie=True, attention_bias=True),
    # Qwen3 with use_sliding_window: layers >= max_window_layers (1, 2) slide with window 4.
    "qwen3-window-tiny": dict(arch="qwen3", vocab=128, hidden=32, inter=48, layers=3, heads=4, kv=1,
                              head_dim=8, eps=1e-6, theta=1000000.0, use_sliding_window=True, window=4,
                              max_window_layers=1),
    # Gemma3ForCausalLM: 5 layers sliding,sliding,full,sliding,sliding (layer_types and
    # sliding_window_pattern 3), window 4, head_dim 24 != hidden/heads, query_pre_attn_scalar 32,
    # local base 10000 vs rope_theta 1e6 with linear scaling 8 on the full layer, tied.
    "gemma3-tiny": dict(arch="gemma3", vocab=128, hidden=64, inter=96, layers=5, heads=4, kv=2, head_dim=24,
                        eps=1e-6, theta=1000000.0, tie=True, window=4, pattern=3, qpas=32,
                        local_theta=10000.0, rope_scaling={"rope_type": "linear", "factor": 8.0},
                        layer_types=["sliding_attention", "sliding_attention", "full_attention",
                                     "sliding_attention", "sliding_attention"],
                        extra_batches=(("long", 24),)),
    # Gemma3ForConditionalGeneration layout: text_config (sparse: query_pre_attn_scalar,
    # sliding_window_pattern, rope_theta, rope_local_base_freq, rms_norm_eps, activation, tying
    # take Gemma3TextConfig's defaults: 256, 6, 1e6, 1e4, 1e-6, gelu_pytorch_tanh, true),
    # weights under language_model.model., plus a dummy vision_tower / multi_modal_projector.
    # 6 layers: 0-4 sliding (window 4), 5 full with linear rope scaling 8 (as gemma-3-4b).
    "gemma3-mm-tiny": dict(arch="gemma3_mm", vocab=128, hidden=32, inter=48, layers=6, heads=2, kv=1,
                           head_dim=16, eps=1e-6, theta=1000000.0, tie=True, window=4,
                           rope_scaling={"rope_type": "linear", "factor": 8.0}),
    # Mistral with a 4-token window (every layer slides).
    "mistral-window-tiny": dict(arch="mistral", vocab=128, hidden=32, inter=48, layers=3, heads=4, kv=2,
                                head_dim=8, window=4),
}

TORCH_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def make_config(p):
    common = {
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": p["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": p["inter"],
        "max_position_embeddings": 512,
        "num_attention_heads": p["heads"],
        "num_hidden_layers": p["layers"],
        "num_key_value_heads": p["kv"],
        "rms_norm_eps": p["eps"],
        "rope_scaling": p["rope_scaling"],
        "rope_theta": p["theta"],
        "tie_word_embeddings": p["tie"],
        "torch_dtype": TORCH_DTYPE[p["dtype"]],
        "transformers_version": TF_VERSION,
        "use_cache": True,
        "vocab_size": p["vocab"],
    }
    if p["arch"] == "llama":
        common.update({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                       "attention_bias": p["attention_bias"], "mlp_bias": p["mlp_bias"],
                       "head_dim": p["head_dim"], "pretraining_tp": 1})
    elif p["arch"] == "qwen2":
        assert p["head_dim"] == p["hidden"] // p["heads"]  # Qwen2 4.4x has no head_dim key
        common.update({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                       "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": p["layers"]})
    elif p["arch"] == "mistral":
        common.update({"architectures": ["MistralForCausalLM"], "model_type": "mistral",
                       "sliding_window": p["window"], "head_dim": p["head_dim"]})
    elif p["arch"] == "qwen3":
        common.update({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "head_dim": p["head_dim"],
                       "attention_bias": p["attention_bias"], "use_sliding_window": p["use_sliding_window"],
                       "sliding_window": p["window"] if p["use_sliding_window"] else None,
                       "max_window_layers": p["max_window_layers"] if p["max_window_layers"] is not None
                       else p["layers"], "transformers_version": "4.51.0"})
    elif p["arch"] in ("gemma3", "gemma3_mm"):
        return make_gemma3_config(p, common)
    return common


def make_gemma3_config(p, common):
    t = dict(common)
    del t["hidden_act"]
    t.update({"model_type": "gemma3_text", "hidden_activation": "gelu_pytorch_tanh", "head_dim": p["head_dim"],
              "attention_bias": p["attention_bias"], "sliding_window": p["window"],
              "attn_logit_softcapping": None, "final_logit_softcapping": None, "pad_token_id": 0,
              "cache_implementation": "hybrid", "transformers_version": "4.53.0"})
    if p["qpas"] is not None:
        t["query_pre_attn_scalar"] = p["qpas"]
    if p["local_theta"] is not None:
        t["rope_local_base_freq"] = p["local_theta"]
    if p["pattern"] is not None:
        t["sliding_window_pattern"] = p["pattern"]
    if p["layer_types"] is not None:
        t["layer_types"] = list(p["layer_types"])
    if p["arch"] == "gemma3":
        t["architectures"] = ["Gemma3ForCausalLM"]
        return t
    # Gemma3ForConditionalGeneration: a sparse text_config as on the Hub (gemma-3-4b-it lists
    # only what differs from Gemma3TextConfig's defaults).
    for k in ("architectures", "torch_dtype", "transformers_version", "bos_token_id", "eos_token_id",
              "rms_norm_eps", "rope_theta", "hidden_activation", "tie_word_embeddings",
              "attn_logit_softcapping", "final_logit_softcapping", "cache_implementation", "use_cache",
              "initializer_range", "attention_dropout", "pad_token_id", "attention_bias"):
        t.pop(k, None)
    return {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
            "boi_token_index": 125, "eoi_token_index": 126, "image_token_index": 127,
            "mm_tokens_per_image": 4, "initializer_range": 0.02, "bos_token_id": common["bos_token_id"],
            "eos_token_id": common["eos_token_id"], "text_config": t,
            "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 16, "intermediate_size": 32,
                              "num_hidden_layers": 1, "num_attention_heads": 2, "num_channels": 3,
                              "image_size": 8, "patch_size": 4, "layer_norm_eps": 1e-6,
                              "vision_use_head": False},
            "torch_dtype": common["torch_dtype"], "transformers_version": "4.50.0"}


def make_weights(p, rng):
    V, D, I, L, H, K, d = p["vocab"], p["hidden"], p["inter"], p["layers"], p["heads"], p["kv"], p["head_dim"]

    # Init: embeddings N(0,1); norms 1 + 0.1 N; biases 0.1 N; matrices N(0, 1/sqrt(fan_in))
    # (q/k 1.5x that) so attention is peaked and every block changes the logits by O(1).
    def mat(o, i, gain=1.0):
        return (rng.standard_normal((o, i)) * (gain / np.sqrt(i))).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    def bias(n):
        return (0.1 * rng.standard_normal(n)).astype(np.float32)

    w = {"model.embed_tokens.weight": rng.standard_normal((V, D)).astype(np.float32)}
    qkv_bias = p["arch"] == "qwen2" or (p["arch"] == "llama" and p["attention_bias"])
    o_bias = p["arch"] == "llama" and p["attention_bias"]
    mlp_bias = p["arch"] == "llama" and p["mlp_bias"]
    for l in range(L):
        pre = "model.layers.%d." % l
        w[pre + "input_layernorm.weight"] = norm(D)
        w[pre + "self_attn.q_proj.weight"] = mat(H * d, D, 1.5)
        w[pre + "self_attn.k_proj.weight"] = mat(K * d, D, 1.5)
        w[pre + "self_attn.v_proj.weight"] = mat(K * d, D)
        w[pre + "self_attn.o_proj.weight"] = mat(D, H * d)
        if qkv_bias:
            w[pre + "self_attn.q_proj.bias"] = bias(H * d)
            w[pre + "self_attn.k_proj.bias"] = bias(K * d)
            w[pre + "self_attn.v_proj.bias"] = bias(K * d)
        if o_bias:
            w[pre + "self_attn.o_proj.bias"] = bias(D)
        w[pre + "post_attention_layernorm.weight"] = norm(D)
        w[pre + "mlp.gate_proj.weight"] = mat(I, D)
        w[pre + "mlp.up_proj.weight"] = mat(I, D)
        w[pre + "mlp.down_proj.weight"] = mat(D, I)
        if mlp_bias:
            w[pre + "mlp.gate_proj.bias"] = bias(I)
            w[pre + "mlp.up_proj.bias"] = bias(I)
            w[pre + "mlp.down_proj.bias"] = bias(D)
    w["model.norm.weight"] = norm(D)
    if not p["tie"]:
        w["lm_head.weight"] = mat(V, D)
    return w


def make_weights_v2(p, rng):
    """Qwen3 / Gemma3 weights (issue 14).  Same scheme as make_weights; Gemma norm weights are
    stored as w with scale (1 + w), w = 0.1 N; Qwen3 q/k norms 1 + 0.1 N.  Gemma embeddings are
    N(0, 0.3) (they are multiplied by sqrt(hidden))."""
    V, D, I, L, H, K, d = p["vocab"], p["hidden"], p["inter"], p["layers"], p["heads"], p["kv"], p["head_dim"]
    gemma = p["arch"] in ("gemma3", "gemma3_mm")

    def mat(o, i, gain=1.0):
        return (rng.standard_normal((o, i)) * (gain / np.sqrt(i))).astype(np.float32)

    def norm(n):
        return ((0.0 if gemma else 1.0) + 0.1 * rng.standard_normal(n)).astype(np.float32)

    def bias(n):
        return (0.1 * rng.standard_normal(n)).astype(np.float32)

    w = {"model.embed_tokens.weight": (rng.standard_normal((V, D)) * (0.3 if gemma else 1.0)).astype(np.float32)}
    for l in range(L):
        pre = "model.layers.%d." % l
        w[pre + "input_layernorm.weight"] = norm(D)
        w[pre + "self_attn.q_proj.weight"] = mat(H * d, D, 1.5)
        w[pre + "self_attn.k_proj.weight"] = mat(K * d, D, 1.5)
        w[pre + "self_attn.v_proj.weight"] = mat(K * d, D)
        w[pre + "self_attn.o_proj.weight"] = mat(D, H * d)
        w[pre + "self_attn.q_norm.weight"] = norm(d)
        w[pre + "self_attn.k_norm.weight"] = norm(d)
        if p["attention_bias"]:
            w[pre + "self_attn.q_proj.bias"] = bias(H * d)
            w[pre + "self_attn.k_proj.bias"] = bias(K * d)
            w[pre + "self_attn.v_proj.bias"] = bias(K * d)
            w[pre + "self_attn.o_proj.bias"] = bias(D)
        w[pre + "post_attention_layernorm.weight"] = norm(D)
        if gemma:
            w[pre + "pre_feedforward_layernorm.weight"] = norm(D)
            w[pre + "post_feedforward_layernorm.weight"] = norm(D)
        w[pre + "mlp.gate_proj.weight"] = mat(I, D)
        w[pre + "mlp.up_proj.weight"] = mat(I, D)
        w[pre + "mlp.down_proj.weight"] = mat(D, I)
    w["model.norm.weight"] = norm(D)
    if not p["tie"]:
        w["lm_head.weight"] = mat(V, D)
    if p["arch"] == "gemma3_mm":
        # checkpoint layout of transformers < 4.52 (as google/gemma-3-4b-it on the Hub), and a
        # dummy vision tower / projector that a text-only loader must skip
        w = {"language_model." + k: v for k, v in w.items()}
        w["vision_tower.vision_model.embeddings.patch_embedding.weight"] = \
            (0.1 * rng.standard_normal((16, 3, 4, 4))).astype(np.float32)
        w["vision_tower.vision_model.embeddings.patch_embedding.bias"] = bias(16)
        w["vision_tower.vision_model.post_layernorm.weight"] = norm(16)
        w["multi_modal_projector.mm_input_projection_weight"] = mat(16, D)
        w["multi_modal_projector.mm_soft_emb_norm.weight"] = norm(16)
    return w


V2_ARCHS = ("qwen3", "gemma3", "gemma3_mm")


def write_model(d, p, w):
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(make_config(p), f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump({"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2,
                   "transformers_version": TF_VERSION}, f, indent=2)
        f.write("\n")
    if p["shards"] == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), w, p["dtype"])
        return
    # two shards: embeddings + layer 0 in the first, the rest in the second
    n = p["shards"]
    assert n == 2
    names = sorted(w)
    first = [k for k in names if k.startswith("model.embed_tokens.") or k.startswith("model.layers.0.")]
    parts = [first, [k for k in names if k not in first]]
    wmap, total = {}, 0
    for i, part in enumerate(parts):
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, n)
        total += write_safetensors(os.path.join(d, fn), {k: w[k] for k in part}, p["dtype"])
        for k in part:
            wmap[k] = fn
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wmap.items()))}, f, indent=2)
        f.write("\n")


def make_batches(p, rng):
    V = p["vocab"]

    def seq(n):
        return [int(t) for t in rng.randint(3, V, size=n)]

    out = [("single", [seq(12)], "none")]
    three = [seq(11), seq(6), seq(9)]
    out.append(("right_pad", three, "right"))
    out.append(("left_pad", three, "left"))
    for name, n in p["extra_batches"]:
        out.append((name, [seq(n)], "none"))
    return out


def build_case(root, name, seed):
    p = dict(BASE)
    p.update(CASES[name])
    rng = np.random.RandomState(seed)
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    for fn in os.listdir(d):  # stale files from an earlier run
        if fn.endswith((".safetensors", ".f32", ".json")):
            os.remove(os.path.join(d, fn))
    w = make_weights_v2(p, rng) if p["arch"] in V2_ARCHS else make_weights(p, rng)
    write_model(d, p, w)

    m = ref_llama.load_model(d)  # reads back what was just written
    if name == "llama3_rope":
        bands = ref_llama.llama3_bands(m.cfg)
        assert all(b > 0 for b in bands), "llama3 bands (high, medium, low) = %s" % (bands,)
    V = p["vocab"]
    ref = {"case": name, "vocab_size": V, "batches": []}
    singles = {}
    for bname, seqs, side in make_batches(p, rng):
        if side == "none":
            ids, mask = seqs, [[1] * len(s) for s in seqs]
        else:
            ids, mask = ref_llama.pad_batch(seqs, side)
        lg = ref_llama.forward(m, ids, mask)
        assert torch.isfinite(lg).all()
        mk = torch.as_tensor(mask, dtype=torch.float64)[..., None]
        lg = lg * mk  # pad positions -> 0
        B, T = len(ids), len(ids[0])
        # padded rows must equal the sequence run alone
        for b, s in enumerate(seqs):
            key = tuple(s)
            if key not in singles:
                singles[key] = ref_llama.forward(m, [s])[0]
            off = T - len(s) if side == "left" else 0
            diff = float((lg[b, off:off + len(s)] - singles[key]).abs().max())
            assert diff < 1e-10, "%s/%s row %d differs from single run by %g" % (name, bname, b, diff)
        fn = "logits_%s.f32" % bname
        lg.numpy().astype("<f4").tofile(os.path.join(d, fn))
        ref["batches"].append({"name": bname, "B": B, "T": T, "ids": ids, "mask": mask, "logits": fn})
    with open(os.path.join(d, "ref.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    return d


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="only these cases")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    names = list(CASES)
    for i, name in enumerate(names):
        if a.case and name not in a.case:
            continue
        d = build_case(a.out, name, 1000 + i)
        if not a.quiet:
            size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
            print("%-16s %8d bytes  %.2fs" % (name, size, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
