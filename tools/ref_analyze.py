#!/usr/bin/python3
"""Independent float64 reference for `rosa analyze` (the RoPE frequency analysis).

Runs each record alone (positions 0..T-1) through tools/ref_llama.py's model in float64, with an
adapter applied through tools/ref_train.py's hooks (LoRA on the linears, RoAE on Q/K before or
after RoPE), and measures the query and key states attention uses: after RoPE and after any RoAE
modulation, K before grouped-query repetition.  Definitions (docs/report.md), over all tokens t of
all records and the heads h of a layer:

    norm[j]  = mean_h sqrt(mean_t Z[t,h,j]^2)
    band[i]  = mean_h sqrt(mean_t (Z[t,h,i]^2 + Z[t,h,i+d/2]^2))          i < d/2
    share    = sum_{h, j in D} sum_t Z^2 / sum_{h, j} sum_t Z^2
    D        = last m dims of each half, m = max(1, floor(d * r_low / 2 + 0.5))

Usage:
    rosa tokenize --model DIR --data FILE --template train --json > DUMP.json
    ref_analyze.py --model DIR --tokens DUMP.json [--adapter ADIR|none] [--limit N] [--cutoff-len N]
                   [--r-low F] --output OUT.json
    (--adapter A --output OA --adapter B --output OB ...: several cases in one run)

OUT.json has the fields of `rosa analyze --output X.json` that the comparison needs:
records, tokens, selected_dims, layers[l].{q_norm, k_norm, q_band, k_band, q_selected_share,
k_selected_share}.
"""

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_llama  # noqa: E402
import ref_train  # noqa: E402
from ref_llama import _lin, _rms, _rotate_half  # noqa: E402

DT = torch.float64


def qk_states(m, ids, adapter=None):
    """Q [H, T, d] and K [Hkv, T, d] of every layer for one record (batch of 1, no padding)."""
    c, w = m.cfg, m.w
    ids = torch.as_tensor([ids], dtype=torch.long)
    B, T = ids.shape
    H, K, d = c.heads, c.kv_heads, c.head_dim
    rep = H // K
    pos = torch.arange(T, dtype=DT)[None]
    freqs = pos[..., None] * m.inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]
    qi = torch.arange(T)[:, None]
    ki = torch.arange(T)[None, :]
    allowed = (ki <= qi)[None, None]
    ad = adapter

    def lin(i, mod, x, bias_on):
        p = "model.layers.%d.%s." % (i, mod)
        y = _lin(x, w[p + "weight"], w.get(p + "bias") if bias_on else None)
        return y if ad is None else ad.lin(i, mod, x, y)

    def qk(i, which, stage, h, z):
        return z if ad is None else ad.qk(i, which, stage, h, z)

    out = []
    x = w["model.embed_tokens.weight"][ids]
    for i in range(c.layers):
        p = "model.layers.%d." % i
        h = _rms(x, w[p + "input_layernorm.weight"], c.eps)
        q = lin(i, "self_attn.q_proj", h, c.qkv_bias).view(B, T, H, d).transpose(1, 2)
        k = lin(i, "self_attn.k_proj", h, c.qkv_bias).view(B, T, K, d).transpose(1, 2)
        v = lin(i, "self_attn.v_proj", h, c.qkv_bias).view(B, T, K, d).transpose(1, 2)
        q = qk(i, "q", "pre", h, q)
        k = qk(i, "k", "pre", h, k)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        q = qk(i, "q", "post", h, q)
        k = qk(i, "k", "post", h, k)
        out.append((q[0], k[0]))
        kr = k[:, :, None].expand(B, K, rep, T, d).reshape(B, H, T, d)
        vr = v[:, :, None].expand(B, K, rep, T, d).reshape(B, H, T, d)
        s = (q @ kr.transpose(2, 3)) * (d ** -0.5)
        s = s.masked_fill(~allowed, float("-inf"))
        a = (torch.softmax(s, dim=-1) @ vr).transpose(1, 2).reshape(B, T, H * d)
        x = x + lin(i, "self_attn.o_proj", a, c.o_bias)
        h = _rms(x, w[p + "post_attention_layernorm.weight"], c.eps)
        gt = lin(i, "mlp.gate_proj", h, c.mlp_bias)
        up = lin(i, "mlp.up_proj", h, c.mlp_bias)
        x = x + lin(i, "mlp.down_proj", torch.nn.functional.silu(gt) * up, c.mlp_bias)
    return out


def roae_dims(d, r_low):
    mm = max(1, int(math.floor(d * r_low / 2.0 + 0.5)))
    if mm > d // 2:
        raise ValueError("r_low %g selects more than half of a head" % r_low)
    return mm, list(range(d // 2 - mm, d // 2)) + list(range(d - mm, d))


def analyze(m, records, adapter=None, r_low=0.25):
    c = m.cfg
    d, L = c.head_dim, c.layers
    sq = [[torch.zeros(c.heads, d, dtype=DT), torch.zeros(c.kv_heads, d, dtype=DT)] for _ in range(L)]
    n_tok = 0
    n_rec = 0
    for ids in records:
        if not ids:
            continue
        for l, (q, k) in enumerate(qk_states(m, ids, adapter)):
            sq[l][0] += (q * q).sum(1)
            sq[l][1] += (k * k).sum(1)
        n_tok += len(ids)
        n_rec += 1
    mm, dims = roae_dims(d, r_low)
    half = d // 2
    layers = []
    for l in range(L):
        e = {"layer": l}
        for name, s in (("q", sq[l][0]), ("k", sq[l][1])):
            e[name + "_norm"] = (s / n_tok).sqrt().mean(0).tolist()
            e[name + "_band"] = ((s[:, :half] + s[:, half:]) / n_tok).sqrt().mean(0).tolist()
            e[name + "_selected_share"] = float(s[:, dims].sum() / s.sum())
        layers.append(e)
    return {"format": "rosa-analyze/1", "records": n_rec, "tokens": n_tok, "head_dim": d, "r_low": r_low,
            "m": mm, "selected_dims": dims, "inv_freq": m.inv_freq.tolist(), "layers": layers}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True, help="rosa tokenize --data ... --json output")
    ap.add_argument("--adapter", action="append", default=[],
                    help="adapter directory, or 'none'; repeat with --output for several cases in one run")
    ap.add_argument("--limit", type=int, default=64, help="first N records (0 = all)")
    ap.add_argument("--cutoff-len", type=int, default=256, help="truncate each record to N ids")
    ap.add_argument("--r-low", type=float, default=None, help="default: the RoAE adapter's, else 0.25")
    ap.add_argument("--output", action="append", required=True, help="one per --adapter (or one without)")
    a = ap.parse_args(argv)
    adapters = a.adapter or ["none"]
    if len(adapters) != len(a.output):
        ap.error("give one --output per --adapter")
    m = ref_llama.load_model(a.model)
    with open(a.tokens) as f:
        dump = json.load(f)
    recs = [r["ids"][:a.cutoff_len] for r in dump["records"]]
    if a.limit > 0:
        recs = recs[:a.limit]
    for adir, out_path in zip(adapters, a.output):
        adapter = ref_train.load_adapter(adir, m.cfg) if adir != "none" else None
        r_low = a.r_low
        if r_low is None:
            r_low = adapter.r_low if adapter is not None and adapter.kind == "roae" else 0.25
        out = analyze(m, recs, adapter, r_low)
        with open(out_path, "w") as f:
            json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
