"""PEFT methods for the float64 training reference (tools/ref_train.py), written from Hugging Face
PEFT's own source (huggingface/peft commit 5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40, 0.20.1.dev0):
what it computes, initialises, saves and loads.  Plain torch, float64; no peft / transformers.

Methods (class, peft_type):
  PeftLoraAdapter  LORA with use_dora, rank_pattern / alpha_pattern or target_modules "all-linear"
                   (plain LoRA adapters keep ref_train.LoraAdapter, byte-for-byte as before)
  Ia3Adapter       IA3
  LnTuningAdapter  LN_TUNING
  OftAdapter       OFT
  MissAdapter      MISS (init_weights True / "bat" / "mini")

Adapter interface used by ref_train.forward / train:
  params            {saved tensor name: float64 tensor} (the trainable tensors, PEFT's saved names)
  layer_of          {name: layer index or None}; None (e.g. LN-Tuning's model.norm) = always active
  layer_param_names(i)
  full = True       lin_full(i, mod, x, W, b) computes the whole linear output
  norms             True if norm(key, g) replaces RMSNorm weights
  qk(...)           identity (RoAE hook)
  merged_weights(w) {base weight name: merged tensor} (mergeable methods)
  make(mcfg, w, a, rng) (classmethod) -> (config, tensors) for make-adapter
See docs/reference.md ("PEFT methods") for the math of each.
"""

import math
import re

import numpy as np
import torch

DT = torch.float64
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
NORMS = ("input_layernorm", "post_attention_layernorm")
PREFIX = "base_model.model.model.layers.%d."
PEFT_COMMIT = "5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40"
PEFT_VERSION = "0.20.1.dev0"


class RefError(Exception):
    pass


def linear_shapes(c):
    H, K, d, D, I = c.heads, c.kv_heads, c.head_dim, c.hidden, c.inter
    return {"self_attn.q_proj": (H * d, D), "self_attn.k_proj": (K * d, D), "self_attn.v_proj": (K * d, D),
            "self_attn.o_proj": (D, H * d), "mlp.gate_proj": (I, D), "mlp.up_proj": (I, D),
            "mlp.down_proj": (D, I)}


def check_tensors(tensors, expect):
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


# --------------------------------------------------------------------------- module matching


def module_universe(mcfg):
    """The named modules of LlamaForCausalLM a target can hit: (key, kind, layer, mod)."""
    out = [("model.embed_tokens", "embedding", None, None)]
    for i in range(mcfg.layers):
        for mod in LINEARS:
            out.append(("model.layers.%d.%s" % (i, mod), "linear", i, mod))
        for nm in NORMS:
            out.append(("model.layers.%d.%s" % (i, nm), "norm", i, nm))
    out.append(("model.norm", "norm", None, "norm"))
    out.append(("lm_head", "linear", None, "lm_head"))
    return out


def _as_list(v):
    if v is None:
        return None
    if isinstance(v, int):
        return [v]
    return list(v)


def peft_match(cfg, key):
    """peft.tuners.tuners_utils.check_target_module_exists: exclude_modules (str: fullmatch; list: ==
    or endswith "."+e), then target_modules (str: re.fullmatch; list: == , or endswith "."+t and then
    layers_to_transform on the first numbered segment re.match(r".*?\\.[^.]*\\.(\\d+)\\.", key))."""
    ex = cfg.get("exclude_modules")
    if ex:
        if isinstance(ex, str):
            if re.fullmatch(ex, key):
                return False
        elif key in ex or any(key.endswith("." + e) for e in ex):
            return False
    mts = cfg.get("modules_to_save")
    if mts and any(re.match(r"(^|.*\.)%s($|\..*)" % m, key) for m in mts):
        return False
    tm = cfg.get("target_modules")
    if isinstance(tm, str):
        return re.fullmatch(tm, key) is not None
    if key in tm:
        return True
    found = any(key.endswith("." + t) for t in tm)
    lt = cfg.get("layers_to_transform")
    using = lt is not None and (len(lt) != 0 if isinstance(lt, list) else True)
    if using and found:
        lp = cfg.get("layers_pattern")
        if lp:
            lp = [lp] if isinstance(lp, str) else lp
            mm = None
            for pat in lp:
                mm = re.match(r".*?\.%s\.(\d+)\." % pat, key)
                if mm is not None:
                    break
        else:
            mm = re.match(r".*?\.[^.]*\.(\d+)\.", key)
        if mm is None:
            return False
        li = int(mm.group(1))
        found = li == lt if isinstance(lt, int) else li in lt
    return found


def resolve_targets(cfg, mcfg, kinds, default):
    """Matched modules [(key, layer, mod)] of the kinds allowed.  target_modules None -> PEFT's llama
    default; "all-linear" (any case) -> every nn.Linear but the output embedding (lm_head)."""
    cfg = dict(cfg)
    tm = cfg.get("target_modules")
    if tm is None:
        tm = list(default)
    if isinstance(tm, str) and tm.lower() == "all-linear":
        tm = ["model.layers.%d.%s" % (i, mod) for i in range(mcfg.layers) for mod in LINEARS]
    cfg["target_modules"] = tm
    out = []
    for key, kind, i, mod in module_universe(mcfg):
        if not peft_match(cfg, key):
            continue
        if kind not in kinds or mod == "lm_head":
            raise RefError("target module %s (%s) is not supported by the reference for %s"
                           % (key, kind, cfg.get("peft_type")))
        out.append((key, i, mod))
    if not out:
        raise RefError("target_modules %r match no module" % (cfg.get("target_modules"),))
    return out


def get_pattern_key(pattern_keys, key):
    """peft.utils.other.get_pattern_key: the first pattern p with re.match(r"(.*\\.)?(p)$", key)."""
    for p in pattern_keys:
        if re.match(r"(.*\.)?(%s)$" % p, key):
            return p
    return key


def _reject(cfg, checks):
    for key, bad in checks:
        if key in cfg and bad(cfg[key]):
            raise RefError("adapter_config %s=%r is not supported by the reference" % (key, cfg[key]))


def _base_cfg(peft_type, model_dir):
    return {"peft_type": peft_type, "task_type": "CAUSAL_LM", "base_model_name_or_path": model_dir,
            "revision": None, "inference_mode": False, "peft_version": PEFT_VERSION}


def _kaiming_uniform(rng, shape, fan_in):
    b = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-b, b, size=shape)


class _Base:
    full = True
    norms = False
    mergeable = True

    def layer_param_names(self, i):
        return sorted(n for n, l in self.layer_of.items() if l == i)

    def lin(self, i, mod, x, y):
        return y

    def qk(self, i, which, stage, h, z):
        return z

    def norm(self, key, g):
        return g

    def lin_full(self, i, mod, x, W, b):
        y = x @ W.t()
        return y if b is None else y + b


# --------------------------------------------------------------------------- LoRA / DoRA (PEFT-exact matching)


class PeftLoraAdapter(_Base):
    """LoRA / DoRA.  scaling s = alpha/r (use_rslora: alpha/sqrt(r)), r and alpha per module from
    rank_pattern / alpha_pattern (get_pattern_key).  LoRA: y = xW^T + b + s (x A^T) B^T.
    DoRA: n = ||W + s B A||_2 per output row (detached), g = m / n,
          y = (xW^T + b) + (g - 1) * (xW^T) + g * s * (x A^T) B^T."""

    def __init__(self, cfg, tensors, mcfg):
        self.config = cfg
        if cfg.get("peft_type", "LORA") != "LORA":
            raise RefError("adapter peft_type %r is not LORA" % cfg.get("peft_type"))
        _reject(cfg, (("bias", lambda v: v not in (None, "none")), ("fan_in_fan_out", bool),
                      ("lora_bias", bool), ("modules_to_save", bool), ("use_qalora", bool),
                      ("target_parameters", bool), ("trainable_token_indices", bool),
                      ("alora_invocation_tokens", bool), ("lora_ga_config", bool)))
        v = cfg.get("use_dora", False)
        self.dora = bool(v)
        self.kind = "dora" if self.dora else "lora"
        self.rslora = bool(cfg.get("use_rslora", False))
        r0, a0 = int(cfg["r"]), float(cfg.get("lora_alpha", 8))
        rp, ap = cfg.get("rank_pattern") or {}, cfg.get("alpha_pattern") or {}
        shapes = linear_shapes(mcfg)
        self.mods, expect, self.layer_of = {}, {}, {}
        for key, i, mod in resolve_targets(cfg, mcfg, ("linear",), ("q_proj", "v_proj")):
            r = int(rp.get(get_pattern_key(list(rp), key), r0))
            alpha = float(ap.get(get_pattern_key(list(ap), key), a0))
            s = alpha / math.sqrt(r) if self.rslora else alpha / r
            base = PREFIX % i + mod
            names = (base + ".lora_A.weight", base + ".lora_B.weight", base + ".lora_magnitude_vector")
            o, n = shapes[mod]
            expect[names[0]] = (r, n)
            expect[names[1]] = (o, r)
            if self.dora:
                expect[names[2]] = (o,)
            self.mods[(i, mod)] = (names, s, r)
            for nm in names[:3 if self.dora else 2]:
                self.layer_of[nm] = i
        self.expect = expect
        self.params = None if tensors is None else check_tensors(tensors, expect)

    def lin_full(self, i, mod, x, W, b):
        y = x @ W.t()
        y = y if b is None else y + b
        e = self.mods.get((i, mod))
        if e is None:
            return y
        (an, bn, mn), s, _ = e
        A, B = self.params[an], self.params[bn]
        lora = (x @ A.t()) @ B.t()
        if not self.dora:
            return y + lora * s
        # PEFT: weight norm of W + s*(B A) with the LoRA weight detached, then the norm detached
        if self.dora_norms is not None:        # self-check only: the norms held at given values
            wn = self.dora_norms[(i, mod)]
        else:
            wn = torch.linalg.norm(W + s * (B @ A).detach(), dim=1).detach()
        g = (self.params[mn] / wn).view(1, -1)
        base_result = y - b if b is not None else y
        return y + (g - 1) * base_result + g * lora * s

    dora_norms = None

    def weight_norms(self, w):
        """{(layer, module): ||W + s B A|| per output row} at the current tensors (detached)."""
        out = {}
        for (i, mod), ((an, bn, mn), s, _) in self.mods.items():
            W = w["model.layers.%d.%s.weight" % (i, mod)]
            out[(i, mod)] = torch.linalg.norm(W + s * (self.params[bn] @ self.params[an]), dim=1).detach()
        return out

    def merged_weights(self, w):
        out = {}
        for (i, mod), ((an, bn, mn), s, _) in self.mods.items():
            k = "model.layers.%d.%s.weight" % (i, mod)
            W = w[k]
            delta = s * (self.params[bn] @ self.params[an])
            if self.dora:
                wn = torch.linalg.norm(W + delta, dim=1)
                out[k] = (self.params[mn] / wn).view(-1, 1) * (W + delta)
            else:
                out[k] = W + delta
        return out

    @classmethod
    def make(cls, mcfg, w, a, rng, model_dir=None):
        cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": a.rank, "lora_alpha": a.alpha,
               "lora_dropout": 0.0, "target_modules": _tm_arg(a.target_modules), "use_rslora": bool(a.rslora),
               "layers_to_transform": _layers_arg(a.layers), "layers_pattern": None, "bias": "none",
               "fan_in_fan_out": False, "inference_mode": False, "init_lora_weights": True,
               "modules_to_save": None, "rank_pattern": _pattern_arg(a.rank_pattern, int),
               "alpha_pattern": _pattern_arg(a.alpha_pattern, float), "use_dora": a.method == "dora",
               "base_model_name_or_path": model_dir, "revision": None, "peft_version": PEFT_VERSION}
        t = {}
        shapes = linear_shapes(mcfg)
        rp, ap = cfg["rank_pattern"], cfg["alpha_pattern"]
        for key, i, mod in resolve_targets(cfg, mcfg, ("linear",), ("q_proj", "v_proj")):
            r = int(rp.get(get_pattern_key(list(rp), key), a.rank))
            alpha = float(ap.get(get_pattern_key(list(ap), key), a.alpha))
            s = alpha / math.sqrt(r) if a.rslora else alpha / r
            o, n = shapes[mod]
            base = PREFIX % i + mod
            A = _kaiming_uniform(rng, (r, n), n)
            B = np.zeros((o, r)) if a.peft_init else rng.standard_normal((o, r)) * a.b_std
            A, B = _f32(A), _f32(B)
            t[base + ".lora_A.weight"], t[base + ".lora_B.weight"] = A, B
            if a.method == "dora":
                W = w["model.layers.%d.%s.weight" % (i, mod)].numpy()
                mag = np.linalg.norm(W + s * (B @ A), axis=1)
                if not a.peft_init:
                    mag = mag * (1.0 + _std(a, 0.1) * rng.standard_normal(o))
                t[base + ".lora_magnitude_vector"] = mag
        return cfg, t


# --------------------------------------------------------------------------- IA3


class Ia3Adapter(_Base):
    """(IA)^3: non-feedforward target: y = (xW^T + b) * l  (l: [out, 1]);
    feedforward target: y = (x * l) W^T + b  (l: [1, in])."""
    kind = "ia3"
    DEFAULT_TARGETS = ("k_proj", "v_proj", "down_proj")
    DEFAULT_FF = ("down_proj",)

    def __init__(self, cfg, tensors, mcfg):
        self.config = cfg
        if cfg.get("peft_type") != "IA3":
            raise RefError("adapter peft_type %r is not IA3" % cfg.get("peft_type"))
        _reject(cfg, (("fan_in_fan_out", bool), ("modules_to_save", bool)))
        ff = cfg.get("feedforward_modules")
        if ff is None:
            ff = list(self.DEFAULT_FF)
        tm = cfg.get("target_modules")
        if isinstance(ff, list) and isinstance(tm, list) and not set(ff) <= set(tm):
            raise RefError("`feedforward_modules` should be a subset of `target_modules`")
        shapes = linear_shapes(mcfg)
        self.mods, expect, self.layer_of = {}, {}, {}
        for key, i, mod in resolve_targets(cfg, mcfg, ("linear",), self.DEFAULT_TARGETS):
            is_ff = re.fullmatch(ff, key) is not None if isinstance(ff, str) else any(key.endswith(f) for f in ff)
            o, n = shapes[mod]
            name = PREFIX % i + mod + ".ia3_l"
            expect[name] = (1, n) if is_ff else (o, 1)
            self.mods[(i, mod)] = (name, is_ff)
            self.layer_of[name] = i
        self.expect = expect
        self.params = None if tensors is None else check_tensors(tensors, expect)

    def lin_full(self, i, mod, x, W, b):
        e = self.mods.get((i, mod))
        if e is None:
            return _Base.lin_full(self, i, mod, x, W, b)
        l = self.params[e[0]].flatten()
        if e[1]:
            y = (x * l) @ W.t()
            return y if b is None else y + b
        y = x @ W.t()
        y = y if b is None else y + b
        return y * l

    def merged_weights(self, w):
        out = {}
        for (i, mod), (name, is_ff) in self.mods.items():
            k = "model.layers.%d.%s." % (i, mod)
            l = self.params[name]
            out[k + "weight"] = w[k + "weight"] * l
            if not is_ff and (k + "bias") in w:
                out[k + "bias"] = w[k + "bias"] * l.reshape(-1)
        return out

    @classmethod
    def make(cls, mcfg, w, a, rng, model_dir=None):
        cfg = _base_cfg("IA3", model_dir)
        tm = _tm_arg(a.target_modules, cls.DEFAULT_TARGETS)
        ff = _tm_arg(a.feedforward_modules, cls.DEFAULT_FF)
        cfg.update({"target_modules": tm, "feedforward_modules": ff, "exclude_modules": None,
                    "fan_in_fan_out": False, "modules_to_save": None, "init_ia3_weights": True})
        t = {}
        for n, shape in _expect_of(cls, cfg, mcfg).items():
            t[n] = np.ones(shape) if a.peft_init else 1.0 + _std(a, 0.1) * rng.standard_normal(shape)
        return cfg, t


# --------------------------------------------------------------------------- LN-Tuning


class LnTuningAdapter(_Base):
    """LN-Tuning: a trainable copy of each targeted RMSNorm replaces it (weight init = the model's)."""
    kind = "ln_tuning"
    norms = True
    DEFAULT_TARGETS = ("input_layernorm", "post_attention_layernorm", "norm")

    def __init__(self, cfg, tensors, mcfg):
        self.config = cfg
        if cfg.get("peft_type") != "LN_TUNING":
            raise RefError("adapter peft_type %r is not LN_TUNING" % cfg.get("peft_type"))
        _reject(cfg, (("modules_to_save", bool),))
        expect, self.layer_of, self.keys = {}, {}, {}
        for key, i, mod in resolve_targets(cfg, mcfg, ("norm",), self.DEFAULT_TARGETS):
            name = "base_model.model." + key + ".ln_tuning_layers.weight"
            expect[name] = (mcfg.hidden,)
            self.layer_of[name] = i
            self.keys[key] = name
        self.expect = expect
        self.params = None if tensors is None else check_tensors(tensors, expect)

    def norm(self, key, g):
        """key: "model.layers.i.input_layernorm" etc.  Returns the adapter's weight; g's gradient is
        routed through (value exactly the adapter's), so that DLS scores see d loss / d gamma."""
        n = self.keys.get(key)
        if n is None:
            return g
        return self.params[n] + (g - g.detach())

    def merged_weights(self, w):
        return {k + ".weight": self.params[n] for k, n in self.keys.items()}

    @classmethod
    def make(cls, mcfg, w, a, rng, model_dir=None):
        cfg = _base_cfg("LN_TUNING", model_dir)
        cfg.update({"target_modules": _tm_arg(a.target_modules, cls.DEFAULT_TARGETS), "exclude_modules": None,
                    "modules_to_save": None})
        t = {}
        for n in _expect_of(cls, cfg, mcfg):
            g = w[n[len("base_model.model."):-len(".ln_tuning_layers.weight")] + ".weight"].numpy()
            t[n] = g.copy() if a.peft_init else g * (1.0 + _std(a, 0.1) * rng.standard_normal(g.shape))
        return cfg, t


# --------------------------------------------------------------------------- OFT


def oft_adjust(in_features, params):
    """OFTLayer.adjust_oft_parameters: the nearest divisor of in_features (ties to the lower)."""
    if params < in_features:
        higher = params
        while higher <= in_features and in_features % higher != 0:
            higher += 1
    else:
        return in_features
    lower = params
    while lower > 1 and in_features % lower != 0:
        lower -= 1
    return lower if (params - lower) <= (higher - params) else higher


def oft_geometry(in_features, r, bs):
    if r == 0 and bs != 0:
        if in_features % bs != 0 or bs > in_features:
            bs = oft_adjust(in_features, bs)
        r = in_features // bs
    elif r != 0 and bs == 0:
        if in_features % r != 0 or r > in_features:
            r = oft_adjust(in_features, r)
        bs = in_features // r
    else:
        raise RefError("OFT: exactly one of r and oft_block_size must be non-zero")
    return r, bs


def oft_skew(vec, bs):
    rows, cols = torch.triu_indices(bs, bs, 1)
    S = torch.zeros(vec.shape[0], bs, bs, dtype=vec.dtype)
    S = _put(S, rows, cols, vec)
    return S - S.transpose(-2, -1)


def _put(S, rows, cols, vec):
    S = S.clone()
    S[:, rows, cols] = vec
    return S


def oft_rotation(vec, bs, neumann=True, terms=5):
    """OFTRotationModule._cayley_batch.  S = skew(vec).  Neumann (PEFT's exact series):
    R = I + 2S + 2S^2 + ... + 2S^(terms-2) + S^(terms-1) (terms > 2; terms 2: I + 2S; 1: I);
    exact: R = (I - S)(I + S)^-1 (torch.linalg.solve(I + S, I - S, left=False))."""
    b = vec.shape[0]
    S = oft_skew(vec, bs)
    eye = torch.eye(bs, dtype=vec.dtype).repeat(b, 1, 1)
    if neumann:
        R = eye
        if terms > 1:
            R = R + 2.0 * S
            if terms > 2:
                P = S @ S
                R = R + 2.0 * P
                for _ in range(3, terms - 1):
                    P = P @ S
                    R = R + 2.0 * P
                P = P @ S
                R = R + P
        return R
    return torch.linalg.solve(eye + S, eye - S, left=False)


def oft_project(vec, bs, eps):
    """OFTRotationModule._project_batch (COFT): clip each block's skew matrix to Frobenius norm
    eps' = eps / sqrt(number of blocks) (eps' rounded through torch's float32 sqrt of an int tensor)."""
    S = oft_skew(vec, bs)
    e = eps * 1 / torch.sqrt(torch.tensor(S.shape[0]))
    nd = torch.norm(S, dim=(1, 2), keepdim=True)
    out = torch.where((nd <= e).bool(), S, 0.0 + e * (S / nd))
    rows, cols = torch.triu_indices(bs, bs, 1)
    return out[:, rows, cols]


class OftAdapter(_Base):
    """OFT (PEFT >= 0.14 layout): the input is rotated block-wise, y = (x M) W^T + b, M = blockdiag(R_j),
    R_j from oft_R[j] (or oft_R[0] for every block with block_share).  Merge: W' = W M^T."""
    kind = "oft"

    def __init__(self, cfg, tensors, mcfg):
        self.config = cfg
        if cfg.get("peft_type") != "OFT":
            raise RefError("adapter peft_type %r is not OFT" % cfg.get("peft_type"))
        if "oft_block_size" not in cfg:
            raise RefError("OFT config without oft_block_size (PEFT < 0.14 layout) is not supported")
        _reject(cfg, (("bias", lambda v: v not in (None, "none")), ("fan_in_fan_out", bool),
                      ("modules_to_save", bool)))
        r0, bs0 = int(cfg.get("r", 0)), int(cfg.get("oft_block_size", 32))
        if (r0 != 0) == (bs0 != 0):
            raise RefError("OFT: exactly one of r and oft_block_size must be non-zero")
        self.coft = bool(cfg.get("coft", False))
        self.eps = float(cfg.get("eps", 6e-5))
        self.share = bool(cfg.get("block_share", False))
        self.neumann = bool(cfg.get("use_cayley_neumann", True))
        self.terms = int(cfg.get("num_cayley_neumann_terms", 5))
        # module_dropout: PEFT's oft.Linear.forward never applies oft_dropout, so it has no effect here
        shapes = linear_shapes(mcfg)
        self.mods, expect, self.layer_of = {}, {}, {}
        for key, i, mod in resolve_targets(cfg, mcfg, ("linear",), ("q_proj", "v_proj")):
            n = shapes[mod][1]
            r, bs = oft_geometry(n, r0, bs0)
            name = PREFIX % i + mod + ".oft_R.weight"
            expect[name] = (1 if self.share else r, bs * (bs - 1) // 2)
            self.mods[(i, mod)] = (name, r, bs)
            self.layer_of[name] = i
        self.expect = expect
        self.params = None if tensors is None else check_tensors(tensors, expect)

    def _blocks(self, name, bs):
        P = self.params[name]
        if self.coft:
            with torch.no_grad():
                P.copy_(oft_project(P, bs, self.eps))
        return oft_rotation(P, bs, self.neumann, self.terms)

    def lin_full(self, i, mod, x, W, b):
        e = self.mods.get((i, mod))
        if e is not None:
            name, r, bs = e
            R = self._blocks(name, bs)
            rank = x.shape[-1] // bs if self.share else r
            if self.share:
                R = R.repeat(rank, 1, 1)
            xr = x.reshape(*x.shape[:-1], rank, bs)
            x = torch.einsum("...rk,rkc->...rc", xr, R).reshape(x.shape)
        return _Base.lin_full(self, i, mod, x, W, b)

    def rotation_matrix(self, i, mod):
        name, r, bs = self.mods[(i, mod)]
        R = self._blocks(name, bs)
        # OFTRotationModule._block_diagonal; r = in_features // block_size in both cases
        blocks = [R[0]] * r if R.shape[0] == 1 else [R[j] for j in range(r)]
        return torch.block_diag(*blocks)

    def merged_weights(self, w):
        out = {}
        for (i, mod) in self.mods:
            k = "model.layers.%d.%s.weight" % (i, mod)
            M = self.rotation_matrix(i, mod)
            out[k] = (M @ w[k].t()).t()
        return out

    @classmethod
    def make(cls, mcfg, w, a, rng, model_dir=None):
        cfg = _base_cfg("OFT", model_dir)
        r, bs = (a.oft_r, a.oft_block_size)
        cfg.update({"r": r, "oft_block_size": bs, "module_dropout": 0.0,
                    "target_modules": _tm_arg(a.target_modules, ("q_proj", "v_proj")), "fan_in_fan_out": False,
                    "bias": "none", "exclude_modules": None, "init_weights": True,
                    "layers_to_transform": _layers_arg(a.layers), "layers_pattern": None, "modules_to_save": None,
                    "coft": bool(a.coft), "eps": a.oft_eps, "block_share": bool(a.block_share),
                    "use_cayley_neumann": not a.no_cayley_neumann,
                    "num_cayley_neumann_terms": a.num_cayley_neumann_terms})
        t = {}
        for n, shape in _expect_of(cls, cfg, mcfg).items():
            # PEFT init_weights=True: zeros (R = I); init_weights=False: N(0, 0.1)
            t[n] = np.zeros(shape) if a.peft_init else _std(a, 0.1) * rng.standard_normal(shape)
        return cfg, t


# --------------------------------------------------------------------------- MiSS


class MissAdapter(_Base):
    """MiSS.  init_weights True/False ("miss"): miss_block D [r, out];
    y = xW^T + b + (sum_j x_pad[..., j*r:(j+1)*r]) D   (x zero-padded to a multiple of r);
    "mini": D [r, mini_r] repeated out/mini_r times along out;
    "bat": D [out/r, r, r]; W' = W + Delta, Delta block (i, j) = W_ij D_i + D_i; y = x W'^T + b."""
    kind = "miss"

    def __init__(self, cfg, tensors, mcfg):
        self.config = cfg
        if cfg.get("peft_type") != "MISS":
            raise RefError("adapter peft_type %r is not MISS" % cfg.get("peft_type"))
        _reject(cfg, (("bias", lambda v: v not in (None, "none")), ("modules_to_save", bool)))
        r = int(cfg.get("r", 64))
        if r <= 0:
            raise RefError("`r` should be a positive integer value")
        self.fn = cfg.get("init_weights", True)
        if self.fn not in (True, False, "bat", "mini"):
            raise RefError("MiSS init_weights %r: must be true, false, \"bat\" or \"mini\"" % (self.fn,))
        self.mini_r = int(cfg.get("mini_r", 1))
        shapes = linear_shapes(mcfg)
        self.mods, expect, self.layer_of = {}, {}, {}
        for key, i, mod in resolve_targets(cfg, mcfg, ("linear",), ("q_proj", "v_proj")):
            o, n = shapes[mod]
            name = PREFIX % i + mod + ".miss_block"
            if self.fn == "bat":
                if n % r or o % r:
                    raise RefError("The weight matrix must be fully divisible into [r, r] blocks (%s)" % key)
                expect[name] = (o // r, r, r)
            elif self.fn == "mini":
                if o % self.mini_r:
                    raise RefError("MiSS mini: out_features %d of %s not divisible by mini_r" % (o, key))
                expect[name] = (r, self.mini_r)
            else:
                expect[name] = (r, o)
            self.mods[(i, mod)] = (name, r)
            self.layer_of[name] = i
        self.expect = expect
        self.params = None if tensors is None else check_tensors(tensors, expect)

    def _bat_weight(self, D, W):
        r = D.size(-1)
        o, n = W.shape
        Wb = W.reshape(o // r, r, n // r, r).permute(2, 0, 1, 3)
        res = Wb @ D + D
        return W + res.permute(1, 2, 0, 3).reshape(o, n)

    def _block(self, name, o):
        D = self.params[name]
        if self.fn == "mini":
            D = D.repeat(1, o // self.mini_r)
        return D

    def lin_full(self, i, mod, x, W, b):
        e = self.mods.get((i, mod))
        if e is None:
            return _Base.lin_full(self, i, mod, x, W, b)
        name, r = e
        if self.fn == "bat":
            return _Base.lin_full(self, i, mod, x, self._bat_weight(self.params[name], W), b)
        y = _Base.lin_full(self, i, mod, x, W, b)
        D = self._block(name, W.shape[0])
        if x.size(-1) % r != 0:
            x = torch.nn.functional.pad(x, (0, (r - x.size(-1) % r) % r))
        return y + torch.sum(x.reshape(*x.shape[:-1], x.size(-1) // r, r), dim=-2) @ D

    def merged_weights(self, w):
        out = {}
        for (i, mod), (name, r) in self.mods.items():
            k = "model.layers.%d.%s.weight" % (i, mod)
            W = w[k].clone()
            if self.fn == "bat":
                out[k] = self._bat_weight(self.params[name], W)
                continue
            o, n = W.shape
            D = self._block(name, o)
            nb = n // r
            W[:, :nb * r] = (W[:, :nb * r].reshape(o, nb, r) + D.t()[:, None, :]).reshape(o, nb * r)
            if n % r:
                W[:, nb * r:] = W[:, nb * r:] + D.t()[:, :n % r]
            out[k] = W
        return out

    @classmethod
    def make(cls, mcfg, w, a, rng, model_dir=None):
        cfg = _base_cfg("MISS", model_dir)
        iw = {"miss": True, "bat": "bat", "mini": "mini"}[a.miss_init]
        cfg.update({"r": a.rank, "miss_dropout": 0.0, "mini_r": a.mini_r,
                    "target_modules": _tm_arg(a.target_modules, ("q_proj", "v_proj")), "exclude_modules": None,
                    "init_weights": iw, "layers_to_transform": _layers_arg(a.layers), "layers_pattern": None,
                    "bias": "none", "modules_to_save": None})
        t = {}
        for n, shape in _expect_of(cls, cfg, mcfg).items():
            t[n] = np.zeros(shape) if a.peft_init else _std(a, 0.02) * rng.standard_normal(shape)
        return cfg, t


# --------------------------------------------------------------------------- FourierFT


def fourierft_indices(out_f, in_f, n, seed):
    """FourierFTLayer.update_layer: torch.randperm(out*in, generator=torch.Generator().manual_seed(seed))[:n],
    rows = idx // in, cols = idx % in (the same positions for every module of the same shape)."""
    idx = torch.randperm(out_f * in_f, generator=torch.Generator().manual_seed(seed))[:n]
    return torch.stack([idx // in_f, idx % in_f], dim=0)


class FourierFTAdapter(_Base):
    """FourierFT: Delta W = Re(ifft2(F)) * scaling, F [out, in] zero but F[rows_k, cols_k] = c_k (the spectrum);
    y = xW^T + b + x Delta W^T.  PEFT builds F and the ifft2 in float32 (spectrum.float()); here float64."""
    kind = "fourierft"

    def __init__(self, cfg, tensors, mcfg):
        self.config = cfg
        if cfg.get("peft_type") != "FOURIERFT":
            raise RefError("adapter peft_type %r is not FOURIERFT" % cfg.get("peft_type"))
        _reject(cfg, (("bias", lambda v: v not in (None, "none")), ("fan_in_fan_out", bool),
                      ("modules_to_save", bool)))
        n0 = int(cfg.get("n_frequency", 1000))
        self.scaling = float(cfg.get("scaling", 150.0))
        seed = cfg.get("random_loc_seed", 777)
        if seed is None:
            raise RefError("FourierFT random_loc_seed null is not supported by the reference")
        pat = cfg.get("n_frequency_pattern") or {}
        shapes = linear_shapes(mcfg)
        self.mods, expect, self.layer_of = {}, {}, {}
        for key, i, mod in resolve_targets(cfg, mcfg, ("linear",), ("q_proj", "v_proj")):
            # FourierFTModel._create_and_replace: the first pattern key with re.match(rf".*\.{key}$", current_key)
            pk = next((k for k in pat if re.match(r".*\.%s$" % k, key)), key)
            n = int(pat.get(pk, n0))
            o, nin = shapes[mod]
            if n <= 0 or n > o * nin:
                raise RefError("FourierFT n_frequency %d out of range for %s (%dx%d)" % (n, key, o, nin))
            name = PREFIX % i + mod + ".fourierft_spectrum"
            expect[name] = (n,)
            self.mods[(i, mod)] = (name, fourierft_indices(o, nin, n, int(seed)))
            self.layer_of[name] = i
        self.expect = expect
        self.params = None if tensors is None else check_tensors(tensors, expect)

    def delta(self, i, mod, W):
        name, ix = self.mods[(i, mod)]
        dense = torch.zeros(W.shape, dtype=DT).index_put((ix[0], ix[1]), self.params[name])
        return torch.fft.ifft2(dense).real * self.scaling

    def lin_full(self, i, mod, x, W, b):
        y = _Base.lin_full(self, i, mod, x, W, b)
        if (i, mod) not in self.mods:
            return y
        return y + x @ self.delta(i, mod, W).t()

    def merged_weights(self, w):
        out = {}
        for (i, mod) in self.mods:
            k = "model.layers.%d.%s.weight" % (i, mod)
            out[k] = w[k] + self.delta(i, mod, w[k])
        return out

    @classmethod
    def make(cls, mcfg, w, a, rng, model_dir=None):
        cfg = _base_cfg("FOURIERFT", model_dir)
        cfg.update({"n_frequency": a.n_frequency, "scaling": a.fourier_scaling, "random_loc_seed": a.random_loc_seed,
                    "fan_in_fan_out": False, "target_modules": _tm_arg(a.target_modules, ("q_proj", "v_proj")),
                    "exclude_modules": None, "bias": "none", "modules_to_save": None,
                    "layers_to_transform": _layers_arg(a.layers), "layers_pattern": None,
                    "n_frequency_pattern": _pattern_arg(a.n_frequency_pattern, int), "init_weights": False})
        t = {}
        for n, shape in _expect_of(cls, cfg, mcfg).items():
            # PEFT's default (init_weights=False) is torch.randn (std 1); --init-std (default 0.02) keeps tiny
            # test models stable; --peft-init gives std 1
            t[n] = rng.standard_normal(shape) * (1.0 if a.peft_init else _std(a, 0.02))
        return cfg, t


# --------------------------------------------------------------------------- SHiRA


def shira_random_mask_indices(out_f, in_f, r, seed):
    """mask_functions.random_mask: g = torch.Generator() (seeded with random_seed if not None, else torch's
    default generator seed), idx = torch.randperm(out*in, generator=g)[:r*(in+out)], mask.flat[idx] = 1;
    indices = torch.where(mask == 1) (row-major order, not randperm order)."""
    g = torch.Generator()
    if seed is not None:
        g.manual_seed(seed)
    k = r * (in_f + out_f)
    idx = torch.randperm(out_f * in_f, generator=g)[:k]
    mask = torch.zeros(out_f * in_f, dtype=torch.bool)
    mask[idx] = True
    rows, cols = torch.where(mask.view(out_f, in_f))
    return torch.stack([rows, cols], dim=0)


class ShiraAdapter(_Base):
    """SHiRA (mask_type random): W' = W + scaling * S, S sparse with S[rows_k, cols_k] = shira_weight[k]
    (scaling 1.0 in training); y = x W'^T + b.  The mask is not saved: it is rebuilt from random_seed."""
    kind = "shira"

    def __init__(self, cfg, tensors, mcfg):
        self.config = cfg
        if cfg.get("peft_type") != "SHIRA":
            raise RefError("adapter peft_type %r is not SHIRA" % cfg.get("peft_type"))
        _reject(cfg, (("fan_in_fan_out", bool), ("modules_to_save", bool),
                      ("mask_type", lambda v: v != "random")))
        r = int(cfg.get("r", 32))
        seed = cfg.get("random_seed")
        shapes = linear_shapes(mcfg)
        self.mods, expect, self.layer_of = {}, {}, {}
        for key, i, mod in resolve_targets(cfg, mcfg, ("linear",), ("q_proj", "v_proj")):
            o, n = shapes[mod]
            if r <= 0 or r * (n + o) > n * o:
                raise RefError("SHiRA r=%d gives more parameters than %s has (%dx%d)" % (r, key, o, n))
            name = PREFIX % i + mod + ".shira_weight"
            expect[name] = (r * (n + o),)
            self.mods[(i, mod)] = (name, shira_random_mask_indices(o, n, r, seed))
            self.layer_of[name] = i
        self.expect = expect
        self.params = None if tensors is None else check_tensors(tensors, expect)

    def weight(self, i, mod, W):
        name, ix = self.mods[(i, mod)]
        return W.index_put((ix[0], ix[1]), self.params[name] * 1.0, accumulate=True)

    def lin_full(self, i, mod, x, W, b):
        if (i, mod) in self.mods:
            W = self.weight(i, mod, W)
        return _Base.lin_full(self, i, mod, x, W, b)

    def merged_weights(self, w):
        out = {}
        for (i, mod) in self.mods:
            k = "model.layers.%d.%s.weight" % (i, mod)
            out[k] = self.weight(i, mod, w[k])
        return out

    @classmethod
    def make(cls, mcfg, w, a, rng, model_dir=None):
        cfg = _base_cfg("SHIRA", model_dir)
        cfg.update({"r": a.rank, "mask_type": "random", "random_seed": a.shira_seed,
                    "target_modules": _tm_arg(a.target_modules, ("q_proj", "v_proj")), "fan_in_fan_out": False,
                    "init_weights": True, "modules_to_save": None})
        t = {}
        for n, shape in _expect_of(cls, cfg, mcfg).items():
            t[n] = np.zeros(shape) if a.peft_init else _std(a, 0.02) * rng.standard_normal(shape)
        return cfg, t


# --------------------------------------------------------------------------- AdaLoRA


class AdaLoraAdapter(_Base):
    """AdaLoRA (SVD form): y = xW^T + b + (x (A*E)^T B^T) * scaling / (ranknum + 1e-5), scaling = lora_alpha
    (r if lora_alpha <= 0), ranknum = init_r (not saved).  The training loss gets
    orth_reg_weight * mean over A and B tensors of ||A A^T - I||_F / ||B^T B - I||_F (extra_loss).
    No rank allocation: update_and_allocate is a user call HF Trainer never makes."""
    kind = "adalora"

    def __init__(self, cfg, tensors, mcfg):
        self.config = cfg
        if cfg.get("peft_type") != "ADALORA":
            raise RefError("adapter peft_type %r is not ADALORA" % cfg.get("peft_type"))
        _reject(cfg, (("bias", lambda v: v not in (None, "none")), ("fan_in_fan_out", bool),
                      ("modules_to_save", bool), ("use_dora", bool)))
        self.init_r = int(cfg.get("init_r", 12))
        alpha = float(cfg.get("lora_alpha", 8))
        self.scaling = alpha if alpha > 0 else float(self.init_r)
        self.ranknum = float(self.init_r)
        self.orth = float(cfg.get("orth_reg_weight", 0.5))
        if self.orth < 0:
            raise RefError("orth_reg_weight should be greater than or equal to 0")
        ts = cfg.get("total_step")
        if ts is None or int(ts) <= 0:
            raise RefError("AdaLoRA does not work when `total_step` is None, supply a value > 0.")
        rp = cfg.get("rank_pattern") or {}
        shapes = linear_shapes(mcfg)
        self.mods, expect, self.layer_of = {}, {}, {}
        for key, i, mod in resolve_targets(cfg, mcfg, ("linear",), ("q_proj", "v_proj")):
            o, n = shapes[mod]
            mask = rp.get(key + ".lora_E")
            r = self.init_r if mask is None else int(sum(bool(v) for v in mask))
            base = PREFIX % i + mod
            names = (base + ".lora_A", base + ".lora_B", base + ".lora_E")
            expect[names[0]], expect[names[1]], expect[names[2]] = (r, n), (o, r), (r, 1)
            self.mods[(i, mod)] = names
            for nm in names:
                self.layer_of[nm] = i
        self.expect = expect
        self.params = None if tensors is None else check_tensors(tensors, expect)

    def lin_full(self, i, mod, x, W, b):
        y = _Base.lin_full(self, i, mod, x, W, b)
        e = self.mods.get((i, mod))
        if e is None:
            return y
        A, B, E = (self.params[n] for n in e)
        return y + (x @ (A * E).t() @ B.t()) * self.scaling / (self.ranknum + 1e-5)

    def extra_loss(self):
        """AdaLoraModel.forward: orth_reg_weight * regu_loss (0 when orth_reg_weight is 0)."""
        if self.orth == 0:
            return None
        reg, k = 0.0, 0
        for key in self.mods:           # named_parameters order: layer by layer, q,k,v,o,gate,up,down; A then B
            an, bn, _ = self.mods[key]
            for n, cov in ((an, self.params[an] @ self.params[an].t()), (bn, self.params[bn].t() @ self.params[bn])):
                reg = reg + torch.norm(cov - torch.eye(cov.shape[0], dtype=DT), p="fro")
                k += 1
        return self.orth * (reg / k)

    rank_pattern = None         # set by the allocator

    # ---- RankAllocator (opt-in: train --adalora-allocate calls it after every optimizer step)

    def allocator_init(self):
        c = self.config
        self.beta1, self.beta2 = float(c.get("beta1", 0.85)), float(c.get("beta2", 0.85))
        if not (0 < self.beta1 < 1 and 0 < self.beta2 < 1):
            raise RefError("AdaLoRA beta1 and beta2 must be in (0, 1)")
        self.tinit, self.tfinal = int(c.get("tinit", 0)), int(c.get("tfinal", 0))
        self.deltaT, self.total_step = int(c.get("deltaT", 1)), int(c["total_step"])
        if self.tinit >= self.total_step - self.tfinal:
            raise RefError("The supplied schedule values don't allow for a budgeting phase")
        self.init_bgt = sum(int(self.params[e[0]].shape[0]) for e in self.mods.values())
        self.target_bgt = int(c.get("target_r", 8)) * len(self.mods)
        self.exp_ipt, self.exp_unc = {}, {}
        self.rank_pattern = None

    def budget_schedule(self, step):
        if step <= self.tinit:
            return self.init_bgt, False
        if step > self.total_step - self.tfinal:
            return self.target_bgt, True
        mul = 1 - (step - self.tinit) / (self.total_step - self.tfinal - self.tinit)
        return int((self.init_bgt - self.target_bgt) * (mul ** 3) + self.target_bgt), step % self.deltaT == 0

    def _update_ipt(self, grads):
        for n, p in self.params.items():
            g = grads.get(n)
            ipt = (p * (g if g is not None else torch.zeros_like(p))).abs().detach()
            if n not in self.exp_ipt:
                self.exp_ipt[n] = torch.zeros_like(p)
                self.exp_unc[n] = torch.zeros_like(p)
            self.exp_ipt[n] = self.beta1 * self.exp_ipt[n] + (1 - self.beta1) * ipt
            self.exp_unc[n] = self.beta2 * self.exp_unc[n] + (1 - self.beta2) * (ipt - self.exp_ipt[n]).abs()

    def _mask_to_budget(self, budget):
        trip, scores = {}, []
        for key in self.mods:          # model (named_parameters) order: layers, then q,k,v,o,gate,up,down
            an, bn, en = self.mods[key]
            sa = torch.mean(self.exp_ipt[an] * self.exp_unc[an], dim=1, keepdim=True)
            sb = torch.mean(self.exp_ipt[bn] * self.exp_unc[bn], dim=0).view(-1, 1)
            se = self.exp_ipt[en] * self.exp_unc[en]
            tot = se.view(-1) + torch.cat([sa, sb], dim=1).sum(dim=1).view(-1)
            trip[en] = tot.view(-1, 1)
            scores.append(tot.view(-1))
        k = self.init_bgt - budget
        if k < 1:
            raise RefError("AdaLoRA: torch.kthvalue with k=%d fails in PEFT (budget %d = initial)" % (k, budget))
        thr = torch.kthvalue(torch.cat(scores), k=k)[0].item()
        pattern = {}
        with torch.no_grad():
            for key in self.mods:
                en = self.mods[key][2]
                self.params[en].masked_fill_(trip[en] <= thr, 0.0)
                pattern["model.layers.%d.%s.lora_E" % key] = (~(trip[en] <= thr)).view(-1).tolist()
        return pattern

    def update_and_allocate(self, step, grads):
        """AdaLoraModel.update_and_allocate(global_step = step) with RankAllocator.  grads: {name: grad
        after clipping, or None}.  Returns (budget, masked?)."""
        edge = self.total_step - self.tfinal
        if step < edge:
            self._update_ipt(grads)
            budget, mask_ind = self.budget_schedule(step)
            if mask_ind:
                self.rank_pattern = self._mask_to_budget(budget)
            return budget, mask_ind
        if step == edge:
            budget, _ = self.budget_schedule(step)
            self.rank_pattern = self._mask_to_budget(budget)
            self.exp_ipt, self.exp_unc = {}, {}
            return budget, True
        with torch.no_grad():
            for key in self.mods:
                en = self.mods[key][2]
                mask = torch.tensor(self.rank_pattern["model.layers.%d.%s.lora_E" % key]).unsqueeze(-1)
                self.params[en].masked_fill_(~mask.bool(), 0.0)
        return self.target_bgt, True

    def saved(self):
        """(config, tensors) as PEFT saves them: with a rank_pattern, the rows/columns of the kept ranks."""
        cfg = dict(self.config)
        t = dict(self.params)
        if self.rank_pattern is not None:
            cfg["rank_pattern"] = self.rank_pattern
            for key, (an, bn, en) in self.mods.items():
                keep = torch.tensor(self.rank_pattern["model.layers.%d.%s.lora_E" % key], dtype=torch.bool)
                if int(keep.sum()) != t[en].shape[0]:
                    t[an], t[en], t[bn] = t[an][keep], t[en][keep], t[bn][:, keep]
        return cfg, t

    def merged_weights(self, w):
        out = {}
        for (i, mod), (an, bn, en) in self.mods.items():
            k = "model.layers.%d.%s.weight" % (i, mod)
            A, B, E = self.params[an], self.params[bn], self.params[en]
            out[k] = w[k] + B @ (A * E) * self.scaling / (self.ranknum + 1e-5)
        return out

    @classmethod
    def make(cls, mcfg, w, a, rng, model_dir=None):
        cfg = _base_cfg("ADALORA", model_dir)
        cfg.update({"r": 8, "lora_alpha": a.alpha, "lora_dropout": 0.0,
                    "target_modules": _tm_arg(a.target_modules, ("q_proj", "v_proj")), "exclude_modules": None,
                    "layers_to_transform": _layers_arg(a.layers), "layers_pattern": None, "bias": "none",
                    "fan_in_fan_out": False, "init_lora_weights": True, "modules_to_save": None, "use_dora": False,
                    "use_rslora": False, "target_r": a.target_r, "init_r": a.rank, "tinit": 0, "tfinal": 0,
                    "deltaT": 1, "beta1": 0.85, "beta2": 0.85, "orth_reg_weight": a.orth_reg_weight,
                    "total_step": a.total_step, "rank_pattern": None})
        t = {}
        for n, shape in _expect_of(cls, cfg, mcfg).items():
            if n.endswith(".lora_E"):
                t[n] = np.zeros(shape) if a.peft_init else _std(a, 1.0) * rng.standard_normal(shape)
            else:
                t[n] = 0.02 * rng.standard_normal(shape)
        return cfg, t


# --------------------------------------------------------------------------- helpers for make-adapter


def _expect_of(cls, cfg, mcfg):
    return dict(sorted(cls(cfg, None, mcfg).expect.items()))


def _f32(a):
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def _std(a, default):
    return default if getattr(a, "init_std", None) is None else a.init_std


def _tm_arg(s, default=None):
    """--target-modules: "a,b" -> list; "all-linear" -> the string; "re:PATTERN" -> a regex string;
    "default" / None -> the given default list (None: key absent = PEFT's mapping)."""
    if s is None or s == "default":
        return None if default is None else list(default)
    if s.lower() == "all-linear":
        return "all-linear"
    if s.startswith("re:"):
        return s[3:]
    return [x for x in s.split(",") if x]


def _layers_arg(s):
    return None if s is None else [int(x) for x in s.split(",") if x != ""]


def _pattern_arg(s, conv):
    """"key=val,key2=val2" -> {key: val}."""
    out = {}
    for item in (s or "").split(","):
        if item:
            k, v = item.split("=", 1)
            out[k] = conv(v)
    return out


ADAPTERS = {"IA3": Ia3Adapter, "LN_TUNING": LnTuningAdapter, "OFT": OftAdapter, "MISS": MissAdapter,
            "FOURIERFT": FourierFTAdapter, "SHIRA": ShiraAdapter, "ADALORA": AdaLoraAdapter}
MAKERS = {"dora": PeftLoraAdapter, "ia3": Ia3Adapter, "ln_tuning": LnTuningAdapter, "oft": OftAdapter,
          "miss": MissAdapter, "fourierft": FourierFTAdapter, "shira": ShiraAdapter, "adalora": AdaLoraAdapter}


def lora_needs_peft_path(cfg):
    """LoRA configs the legacy ref_train.LoraAdapter does not handle."""
    tm = cfg.get("target_modules")
    return bool(cfg.get("use_dora")) or bool(cfg.get("rank_pattern")) or bool(cfg.get("alpha_pattern")) \
        or isinstance(tm, str) and tm.lower() == "all-linear" or tm is None or bool(cfg.get("exclude_modules"))
