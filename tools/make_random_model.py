#!/usr/bin/env python3
"""A model directory with random weights and the exact shapes of a config.json, for memory
and speed measurements of big shapes (docs/memory.md).  Pure Python, streamed: any size.

  tools/make_random_model.py --config bench/configs/x.json --out DIR [--dtype bf16|f16|f32]
      [--tokenizer DIR] [--shards N] [--headers-only]

Values: uniform in +-0.02 (norms 1), one 1 MiB block of them repeated through each tensor:
speed and memory do not depend on the values.  --headers-only writes each file's header and
no tensor data (a truncated checkpoint: `rosa info` reads it, nothing else can).
"""
import argparse, json, os, random, shutil, struct

PROJ = [("self_attn", "q_proj"), ("self_attn", "k_proj"), ("self_attn", "v_proj"), ("self_attn", "o_proj"),
        ("mlp", "gate_proj"), ("mlp", "up_proj"), ("mlp", "down_proj")]


def tensors(c):
    """(name, shape, is_norm) in the order transformers saves them."""
    D, F, V, L = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"]
    H, Hkv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    hd = c.get("head_dim") or D // H
    qkv_bias = c.get("attention_bias", False) or c.get("model_type") == "qwen2"
    out = [("model.embed_tokens.weight", [V, D], False)]
    shapes = {"q_proj": (H * hd, D), "k_proj": (Hkv * hd, D), "v_proj": (Hkv * hd, D), "o_proj": (D, H * hd),
              "gate_proj": (F, D), "up_proj": (F, D), "down_proj": (D, F)}
    for l in range(L):
        p = "model.layers.%d." % l
        for parent, name in PROJ:
            out.append((p + parent + "." + name + ".weight", list(shapes[name]), False))
            if qkv_bias and name in ("q_proj", "k_proj", "v_proj"):
                out.append((p + parent + "." + name + ".bias", [shapes[name][0]], False))
        out.append((p + "input_layernorm.weight", [D], True))
        out.append((p + "post_attention_layernorm.weight", [D], True))
    out.append(("model.norm.weight", [D], True))
    if not c.get("tie_word_embeddings", False):
        out.append(("lm_head.weight", [V, D], False))
    return out


def block(dtype, norm):
    rng = random.Random(0)
    n = (1 << 20) // (4 if dtype == "F32" else 2)
    vals = [1.0] * n if norm else [rng.uniform(-0.02, 0.02) for _ in range(n)]
    f32 = struct.pack("<%df" % n, *vals)
    if dtype == "F32":
        return f32
    if dtype == "BF16":
        return b"".join(f32[i + 2:i + 4] for i in range(0, len(f32), 4))
    return struct.pack("<%de" % n, *vals)


def write_file(path, items, dtype, headers_only, blocks):
    size = {"F32": 4, "F16": 2, "BF16": 2}[dtype]
    header, off = {}, 0
    for name, shape, _ in items:
        n = size
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        if headers_only:
            return off
        for name, shape, norm in items:
            n = header[name]["data_offsets"][1] - header[name]["data_offsets"][0]
            b = blocks[norm]
            while n > 0:
                f.write(b[:n])
                n -= min(n, len(b))
    return off


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f16", "f32"])
    ap.add_argument("--tokenizer", help="a directory whose tokenizer files are copied")
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--headers-only", action="store_true")
    a = ap.parse_args()
    c = json.load(open(a.config))
    dtype = {"bf16": "BF16", "f16": "F16", "f32": "F32"}[a.dtype]
    c["torch_dtype"] = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}[dtype]
    os.makedirs(a.out, exist_ok=True)
    json.dump(c, open(os.path.join(a.out, "config.json"), "w"), indent=2)
    if a.tokenizer:
        for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if os.path.exists(os.path.join(a.tokenizer, f)):
                shutil.copy(os.path.join(a.tokenizer, f), a.out)
    items = tensors(c)
    blocks = {} if a.headers_only else {False: block(dtype, False), True: block(dtype, True)}
    if a.shards <= 1:
        write_file(os.path.join(a.out, "model.safetensors"), items, dtype, a.headers_only, blocks)
        return
    per = -(-len(items) // a.shards)
    weight_map, total = {}, 0
    for s in range(a.shards):
        name = "model-%05d-of-%05d.safetensors" % (s + 1, a.shards)
        part = items[s * per:(s + 1) * per]
        total += write_file(os.path.join(a.out, name), part, dtype, a.headers_only, blocks)
        weight_map.update({t[0]: name for t in part})
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
              open(os.path.join(a.out, "model.safetensors.index.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
