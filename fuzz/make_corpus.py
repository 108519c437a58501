#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets: fuzz/corpus/<target>/.

    fuzz/make_corpus.py            (rewrites every seed; deterministic)

Every seed is small and made here from the formats' documentation, not copied
from model repositories.  Targets that read several files take them separated
by FUZZ_SEP (fuzz/fuzz_common.h).
"""

import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SEP = b"\n#-#-#\n"


def out(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def js(obj, indent=None):
    return json.dumps(obj, indent=indent, ensure_ascii=False)


# ----------------------------------------------------------------- safetensors

SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def safetensors(tensors, metadata=None, pad=True):
    """tensors: [(name, dtype, shape, bytes or None)] -> file bytes."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        n = SIZES[dtype]
        for s in shape:
            n *= s
        if data is None:
            data = bytes((i * 7 + 3) & 0x3F for i in range(n))  # small finite values in any float dtype
        assert len(data) == n
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        blobs.append(data)
        off += n
    h = js(header).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def safetensors_seeds():
    t = "safetensors"
    out(t, "two_f32", safetensors([("a.weight", "F32", [2, 3], f32([1, 2, 3, 4, 5, 6])),
                                   ("b", "F32", [2], f32([0.5, -0.5]))], {"format": "pt"}))
    out(t, "every_dtype", safetensors([(d.lower(), d, [2, 2], None) for d in SIZES]))
    out(t, "scalar_and_empty", safetensors([("scalar", "F32", [], f32([3.0])), ("empty", "BF16", [0, 4], b""),
                                            ("vec", "I64", [3], struct.pack("<3q", 1, 2, 3))]))
    out(t, "empty_header", safetensors([], pad=False))
    out(t, "metadata_only", safetensors([], {"format": "pt", "note": "x"}))
    out(t, "gap_between", b"".join([struct.pack("<Q", 128),
                                    js({"x": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]},
                                        "y": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}})
                                    .encode().ljust(128), b"abcdefgh"]))
    out(t, "eight_dims", safetensors([("nd", "I8", [1, 2, 1, 2, 1, 2, 1, 2], None)]))
    out(t, "adapter_names", safetensors([
        ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "F32", [2, 8], None),
        ("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", "F32", [8, 2], None)]))


# ---------------------------------------------------------------------- config

LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 512, "hidden_size": 64,
         "intermediate_size": 172, "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4,
         "head_dim": 8, "hidden_act": "silu", "max_position_embeddings": 512, "rms_norm_eps": 1e-05,
         "rope_theta": 10000.0, "rope_scaling": None, "tie_word_embeddings": True, "attention_bias": False,
         "mlp_bias": False, "bos_token_id": 1, "eos_token_id": 2, "pretraining_tp": 1, "torch_dtype": "float32"}


def config_seeds():
    t = "config"
    out(t, "llama", js(LLAMA, 2))
    out(t, "qwen2", js({"architectures": ["Qwen2ForCausalLM"], "vocab_size": 1000, "hidden_size": 32,
                        "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                        "num_key_value_heads": 2, "rope_theta": 1000000.0, "rms_norm_eps": 1e-06,
                        "sliding_window": 4096, "use_sliding_window": False, "tie_word_embeddings": False,
                        "eos_token_id": 151643, "bos_token_id": None}))
    out(t, "llama3_rope", js(dict(LLAMA, rope_theta=500000.0, eos_token_id=[128001, 128008, 128009],
                                  rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                                "original_max_position_embeddings": 8192, "rope_type": "llama3"})))
    out(t, "linear_rope_biases", js(dict(LLAMA, attention_bias=True, mlp_bias=True,
                                         rope_scaling={"type": "linear", "factor": 2.0})))
    out(t, "mistral", js({"architectures": ["MistralForCausalLM"], "vocab_size": 32000, "hidden_size": 128,
                          "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 8,
                          "num_key_value_heads": 2, "sliding_window": 4096, "max_position_embeddings": 32768}))
    out(t, "model_type_only", js({"model_type": "qwen2", "vocab_size": 16, "hidden_size": 8,
                                  "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2}))
    out(t, "default_rope", js(dict(LLAMA, rope_scaling={"rope_type": "default"}, partial_rotary_factor=1.0)))


# ------------------------------------------------------------------ tokenizers

def bytes_to_unicode():
    """GPT-2's byte-to-unicode alphabet."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def added(i, content, special=True):
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": special}


def byte_level_tokenizer(**edits):
    alpha = bytes_to_unicode()
    vocab = {alpha[b]: b for b in range(256)}
    merges = []
    for a, b in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"),
                 ("Ġ", "w"), ("o", "r"), ("Ġw", "or"), ("l", "d"), ("Ġwor", "ld"), ("1", "2")]:
        merges.append(a + " " + b)
        vocab.setdefault(a + b, len(vocab))
    n = len(vocab)
    tok = {"version": "1.0", "truncation": None, "padding": None,
           "added_tokens": [added(n, "<|endoftext|>"), added(n + 1, "<|im_start|>"), added(n + 2, "<|im_end|>")],
           "normalizer": {"type": "NFC"},
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
                                                      "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
                "behavior": "Isolated", "invert": False},
               {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
           "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                              "use_regex": False},
           "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                     "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": vocab, "merges": merges}}
    tok.update(edits)
    return tok


def sentencepiece_tokenizer(**edits):
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for ch in "▁abcdehilnorstuw":
        vocab[ch] = len(vocab)
    merges = []
    for a, b in [("▁", "t"), ("h", "e"), ("▁t", "he"), ("i", "n"), ("e", "r"), ("▁", "w"), ("o", "r"),
                 ("▁w", "or"), ("l", "d"), ("▁wor", "ld"), ("▁", "a"), ("▁a", "n")]:
        merges.append(a + " " + b)
        vocab.setdefault(a + b, len(vocab))
    tok = {"version": "1.0", "truncation": None, "padding": None,
           "added_tokens": [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")],
           "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                               {"type": "Replace", "pattern": {"String": " "},
                                                                "content": "▁"}]},
           "pre_tokenizer": None,
           "post_processor": {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                         {"Sequence": {"id": "A", "type_id": 0}}],
                              "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                       {"Sequence": {"id": "A", "type_id": 0}},
                                       {"SpecialToken": {"id": "<s>", "type_id": 1}},
                                       {"Sequence": {"id": "B", "type_id": 1}}],
                              "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
           "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"},
                                                         "content": " "},
                                                        {"type": "ByteFallback"}, {"type": "Fuse"},
                                                        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
           "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                     "vocab": vocab, "merges": merges}}
    tok.update(edits)
    return tok


LLAMA_TOK_CONFIG = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
                    "unk_token": "<unk>", "pad_token": None, "clean_up_tokenization_spaces": False,
                    "legacy": True, "tokenizer_class": "LlamaTokenizerFast",
                    "added_tokens_decoder": {"1": {"content": "<s>", "special": True},
                                             "2": {"content": "</s>", "special": True}}}
QWEN_TOK_CONFIG = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
                   "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
                   "clean_up_tokenization_spaces": False, "tokenizer_class": "Qwen2Tokenizer"}


def tokenizer_seeds():
    t = "tokenizer_load"
    out(t, "byte_level", js(byte_level_tokenizer()))
    out(t, "byte_level_with_config", js(byte_level_tokenizer()).encode() + SEP + js(QWEN_TOK_CONFIG).encode())
    out(t, "sentencepiece", js(sentencepiece_tokenizer()))
    out(t, "sentencepiece_with_config",
        js(sentencepiece_tokenizer()).encode() + SEP + js(LLAMA_TOK_CONFIG).encode())
    meta = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    out(t, "metaspace", js(sentencepiece_tokenizer(normalizer=None, pre_tokenizer=meta, decoder=meta)))
    gpt2 = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    out(t, "gpt2_regex", js(byte_level_tokenizer(normalizer=None, pre_tokenizer=gpt2, decoder=gpt2,
                                                 post_processor=None)))
    splits = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False},
        {"type": "Split", "pattern": {"Regex": "[,.]"}, "behavior": "Removed", "invert": False},
        {"type": "Split", "pattern": {"Regex": "o+"}, "behavior": "Contiguous", "invert": True},
        {"type": "Split", "pattern": {"String": "-"}, "behavior": "MergedWithNext", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    norms = {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "NFD"}, {"type": "NFKD"},
                                                 {"type": "Strip", "strip_left": True, "strip_right": False},
                                                 {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}]}
    out(t, "splits_and_normalizers", js(byte_level_tokenizer(normalizer=norms, pre_tokenizer=splits)))
    m = sentencepiece_tokenizer()
    m["model"]["merges"] = [x.split(" ") for x in m["model"]["merges"]]
    m["model"]["ignore_merges"] = True
    out(t, "merges_as_arrays", js(m))
    bert = byte_level_tokenizer(post_processor={"type": "BertProcessing", "sep": ["<|im_end|>", 258],
                                                "cls": ["<|im_start|>", 257]})
    out(t, "bert_processing", js(bert))
    rob = byte_level_tokenizer(post_processor={"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}},
                                                   {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
         "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [269], "tokens": ["<|endoftext|>"]}}}]})
    out(t, "sequence_post_processor", js(rob))
    dec = sentencepiece_tokenizer(decoder=None)
    dec["added_tokens"].append({"id": 300, "content": "<extra>", "single_word": True, "lstrip": True,
                                "rstrip": True, "normalized": True, "special": False})
    out(t, "added_and_no_decoder", js(dec).encode() + SEP +
        js(dict(LLAMA_TOK_CONFIG, add_eos_token=True, clean_up_tokenization_spaces=True,
                additional_special_tokens=["<extra>"])).encode())

    # encode/decode of arbitrary bytes with the real tokenizers: byte 0 is the mode
    c = "tokenizer_codec"
    texts = ["Hello world", " leading and  double  spaces ", "tabs\tand\nnew\r\nlines\n\n",
             "It's 2024! Numbers 1234567 and 3.14159", "caf\u00e9 na\u00efve \u00e9\u0301 \ufb01",
             "\u4e2d\u6587\u6d4b\u8bd5 \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4", "emoji \U0001F600\U0001F44D\U0001F3FD",
             "<s>special</s> <|im_start|>user<|im_end|><|endoftext|>", "\u0000\u0001\u001f\u007f",
             "   ", "", "a" * 300, "Below is an instruction that describes a task.\n\n### Response:\n"]
    for i, s in enumerate(texts):
        for mode in (0, 1, 3, 6):
            out(c, "text_%02d_%d" % (i, mode), bytes([mode]) + s.encode("utf-8"))
    out(c, "invalid_utf8", b"\x00abc\xff\xfe def \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80")
    out(c, "truncated_utf8", b"\x01\xe4\xb8")
    for mode in (8, 9, 12, 13):
        ids = [0, 1, 2, 3, 100, 255, 256, 1000, 30000, 0xF000, 0xF001, 0xFFFF, 12, 13]
        out(c, "ids_%d" % mode, bytes([mode]) + b"".join(struct.pack("<H", x) for x in ids))
    # llama2 byte-fallback ids of a 4-byte character, one at a time, and a cut one
    out(c, "ids_bytes_9", bytes([9]) + b"".join(struct.pack("<H", x) for x in [243, 162, 169, 156, 3431]))
    out(c, "ids_cut_9", bytes([9]) + b"".join(struct.pack("<H", x) for x in [243, 162, 3431]))


# ------------------------------------------------------------------------ data

REC = {"instruction": "Is the sky blue?", "input": "", "output": "the correct answer is true", "answer": "true"}


def data_seeds():
    t = "data"
    out(t, "array", js([REC, dict(REC, input="context here", answer=None),
                        {"instruction": "Compute 2+2", "output": "4", "answer": 4}], 2))
    out(t, "jsonl", "\n".join(js(dict(REC, instruction="q%d" % i)) for i in range(4)) + "\n")
    out(t, "jsonl_crlf_bom", ("\ufeff" + "\r\n".join(js(REC) for _ in range(2)) + "\r\n"))
    out(t, "bad_records", "\n".join([js(REC), js({"instruction": 5, "output": "x"}), js(["not", "an", "object"]),
                                      js({"output": "no instruction"}), js(dict(REC, answer=1.5))]) + "\n")
    out(t, "unicode", js([dict(REC, instruction="\u4e2d\u6587? caf\u00e9 \U0001F600", output="\u00e9" * 40)]))
    out(t, "long_output", js([dict(REC, output="word " * 200)]))
    out(t, "one_object", js({"instruction": "only one", "output": "x"}))
    out(t, "not_records", js({"data": [REC]}))
    out(t, "nested_values", js([dict(REC, extra={"a": [1, {"b": None}]}, answer=-3e20)]))


# --------------------------------------------------------------------- adapter

# The fuzz target's model: 2 layers, hidden 8, 2 query heads and 1 KV head of 4, MLP 12.
D, Q, K, F, L = 8, 8, 4, 12, 2
SHAPES = {"q_proj": (D, Q), "k_proj": (D, K), "v_proj": (D, K), "o_proj": (Q, D),
          "gate_proj": (D, F), "up_proj": (D, F), "down_proj": (F, D)}


def lora_adapter(r=2, modules=("q_proj", "v_proj"), layers=range(L), dtype="F32", **cfg):
    tensors = []
    for layer in layers:
        for mod in modules:
            parent = "self_attn" if mod in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            fin, fout = SHAPES[mod]
            base = "base_model.model.model.layers.%d.%s.%s" % (layer, parent, mod)
            tensors.append((base + ".lora_A.weight", dtype, [r, fin], None))
            tensors.append((base + ".lora_B.weight", dtype, [fout, r], None))
    c = {"base_model_name_or_path": "fuzz", "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
         "init_lora_weights": True, "layers_to_transform": None, "lora_alpha": 16, "lora_dropout": 0.05,
         "modules_to_save": None, "peft_type": "LORA", "r": r, "target_modules": list(modules),
         "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": False, "rank_pattern": {}, "alpha_pattern": {}}
    c.update(cfg)
    return js(c, 2).encode() + SEP + safetensors(tensors, {"format": "pt"})


def rosa_adapter(r=2, targets=("q", "k"), train_norms=False, r_low=0.5):
    m = max(1, int(4 * r_low / 2 + 0.5))
    tensors = []
    for layer in range(L):
        for w in targets:
            heads = 2 if w == "q" else 1
            base = "base_model.model.model.layers.%d.self_attn.roae_%s" % (layer, w)
            tensors.append((base + ".lora_A.weight", "F32", [r, D], None))
            tensors.append((base + ".lora_B.weight", "F32", [heads * 2 * m, r], None))
        if train_norms:
            for n in ("input_layernorm", "post_attention_layernorm"):
                tensors.append(("base_model.model.model.layers.%d.%s.weight" % (layer, n), "F32", [D], None))
    c = {"base_model_name_or_path": "fuzz", "peft_type": "ROSA", "task_type": "CAUSAL_LM", "r": r, "alpha": 1.0,
         "r_low": r_low, "targets": list(targets), "placement": "post-rope", "form": "gate", "dropout": 0.0,
         "train_norms": train_norms,
         "dls": {"enabled": True, "interval": 50, "warmup": 50, "k_ratio": 0.5, "p_exploit": 0.8,
                 "score_ema": 0.0, "inactive": "skip", "seed": 42}}
    return js(c, 2).encode() + SEP + safetensors(tensors, {"format": "pt"})


def dora_adapter():
    """LoRA with use_dora: a magnitude vector per module (PEFT's saved name, no .weight)."""
    tensors = []
    for layer in range(L):
        for mod in ("q_proj", "v_proj"):
            fin, fout = SHAPES[mod]
            base = "base_model.model.model.layers.%d.self_attn.%s" % (layer, mod)
            tensors += [(base + ".lora_A.weight", "F32", [2, fin], None), (base + ".lora_B.weight", "F32", [fout, 2], None),
                        (base + ".lora_magnitude_vector", "F32", [fout], None)]
    c = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj", "v_proj"],
         "use_dora": True, "rank_pattern": {"v_proj": 2}, "alpha_pattern": {"layers\\.1\\..*": 8}}
    return js(c, 2).encode() + SEP + safetensors(tensors, {"format": "pt"})


def shira_adapter(indices=True, dtype="I32"):
    """SHiRA r 1 on q_proj: r (in + out) values, and PEFT's indices (rows then columns)."""
    fin, fout = SHAPES["q_proj"]
    k = fin + fout
    tensors = []
    for layer in range(L):
        base = "base_model.model.model.layers.%d.self_attn.q_proj" % layer
        tensors.append((base + ".shira_weight", "F32", [k], None))
        if indices:
            pos = [i % fout for i in range(k)] + [(3 * i) % fin for i in range(k)]
            data = struct.pack("<%d%s" % (2 * k, {"I32": "i", "I64": "q", "F32": "f"}[dtype]), *pos)
            tensors.append((base + ".shira_indices", dtype, [2, k], data))
    c = {"peft_type": "SHIRA", "task_type": "CAUSAL_LM", "r": 1, "mask_type": "random", "random_seed": 3,
         "target_modules": ["q_proj"], "fan_in_fan_out": False, "init_weights": True, "modules_to_save": None}
    return js(c, 2).encode() + SEP + safetensors(tensors, {"format": "pt"})


def fourierft_adapter():
    tensors = [("base_model.model.model.layers.%d.mlp.down_proj.fourierft_spectrum" % layer, "F32", [5], None)
               for layer in range(L)]
    c = {"peft_type": "FOURIERFT", "task_type": "CAUSAL_LM", "n_frequency": 5, "scaling": 150.0,
         "random_loc_seed": 777, "target_modules": ["down_proj"], "init_weights": False, "n_frequency_pattern": {}}
    return js(c, 2).encode() + SEP + safetensors(tensors, {"format": "pt"})


def adapter_seeds():
    t = "adapter"
    out(t, "dora_patterns", dora_adapter())
    out(t, "shira_i32", shira_adapter())
    out(t, "shira_f32_indices", shira_adapter(dtype="F32"))
    out(t, "shira_no_indices", shira_adapter(indices=False))
    out(t, "fourierft_down", fourierft_adapter())
    out(t, "lora_qv", lora_adapter())
    out(t, "lora_all_bf16", lora_adapter(r=1, modules=tuple(SHAPES), dtype="BF16", use_rslora=True))
    out(t, "lora_f16_layer1", lora_adapter(modules=("k_proj", "down_proj"), layers=[1], dtype="F16",
                                           layers_to_transform=[1]))
    out(t, "lora_regex", lora_adapter(modules=("q_proj", "o_proj"), layers=[0],
                                      target_modules="model\\.layers\\.0\\.self_attn\\.(q|o)_proj"))
    out(t, "lora_int_layer", lora_adapter(layers=[0], layers_to_transform=0))
    out(t, "rosa_qk", rosa_adapter())
    out(t, "rosa_k_norms", rosa_adapter(r=1, targets=("k",), train_norms=True, r_low=1.0))


# ----------------------------------------------------------------- evaluation

def predictions_seeds():
    t = "predictions"
    lines = [
        {"task": "boolq", "index": 0, "instruction": "Is it?\n\nAnswer format: true/false",
         "response": "the correct answer is true", "prediction": "true", "label": "true", "correct": True,
         "extracted": True, "mode": "generate", "num_beams": 4, "beam_rule": "llm-adapters",
         "max_new_tokens": 32, "new_tokens": 7, "score": -0.06},
        {"task": "piqa", "index": 1, "response": "solution2 is right", "label": "solution1"},
        {"task": "ARC-Easy", "index": 2, "response": "answer3", "answer": "answer3"},
        {"task": "AQuA", "index": 0, "response": "The answer is (B).", "label": "B"},
        {"task": "gsm8k", "index": 1, "response": "so 1,234.5 apples", "label": "1234.5"},
        {"task": "SVAMP", "index": 2, "response": "no number here", "answer": 7},
        {"task": "mytask", "instruction": "Pick one. Answer format: red/green/blue", "response": "green!",
         "label": "green"},
        {"task": "mymath", "response": "\u0661\u0662 (Arabic-Indic digits)", "label": "12"},
        {"task": "hellaswag", "index": 1, "response": "ending4"},
    ]
    out(t, "jsonl", "\n".join(js(x) for x in lines) + "\n")
    arr = js([{"instruction": "Q? Answer format: true/false", "input": "", "output": "true",
               "answer": "true", "output_pred": "the correct answer is false"},
              {"instruction": "Q2", "output": "x", "answer": "false", "output_pred": "true false"}], 2)
    out(t, "llm_adapters_array", arr if len(arr.encode()) % 2 else arr + " ")  # odd size: default task boolq
    out(t, "unknown_task", js({"task": "<x-fuzz>", "response": "x", "label": "y"}))
    out(t, "index_only", "\n".join(js({"task": "MultiArith", "index": i, "response": "%d" % i}) for i in range(3)))
    out(t, "no_task_odd", js({"response": "true", "label": "true"}) + "\n ")
    out(t, "cut_last_line", js(lines[0]) + "\n" + js(lines[1])[:30])
    out(t, "index_past_end", js({"task": "boolq", "index": 3, "response": "true"}))
    header = {"format": "rosa-predictions/1", "model": "<x-fuzz>", "model_digest": "0123456789abcdef",
              "adapter": None, "adapter_digest": None,
              "options": {"mode": "generate", "num_beams": 4, "beam_rule": "llm-adapters",
                          "max_new_tokens": "per task", "dtype": "fp32"},
              "options_digest": "fedcba9876543210"}
    out(t, "with_header", "\n".join(js(x) for x in [header] + lines[:2]) + "\n")


# ----------------------------------------------------------------- checkpoints

def checkpoint(state, moments=None, steps=(2, 2), extra=()):
    """rosa_state.json + optimizer.safetensors of fuzz_checkpoint's adapter (LoRA r 1 on q_proj, 2 layers,
    hidden 8): moments maps a tensor name to its values (default small ones)."""
    tensors = []
    for layer in range(2):
        for part, shape in (("lora_A", [1, 8]), ("lora_B", [8, 1])):
            name = "base_model.model.model.layers.%d.self_attn.q_proj.%s.weight" % (layer, part)
            for k in ("exp_avg", "exp_avg_sq"):
                n = "%s.%s" % (name, k)
                tensors.append((n, "F32", shape, f32((moments or {}).get(n, [0.25 * (i % 3) for i in range(8)]))))
    tensors.append(("step", "I64", [4], struct.pack("<4q", *(list(steps) * 2))))
    tensors.extend(extra)
    return js(state, 2).encode() + SEP + safetensors(tensors)


def checkpoint_seeds():
    t = "checkpoint"
    base = {"format": "rosa-checkpoint/1", "step": 2, "total_steps": 4, "seed": "42"}
    dls = {"rng": ["1", "2", "3", "18446744073709551615"], "have_scores": True, "scores": [0.5, 0.25],
           "active": [1, 0], "counts": [1, 0]}
    out(t, "plain", checkpoint(base))
    out(t, "dls", checkpoint(dict(base, dls=dls)))
    out(t, "dls_warmup", checkpoint(dict(base, dls=dict(dls, have_scores=False, active=[1, 1], counts=[0, 0]))))
    # what the checks refuse, each at its limit
    out(t, "regress-step-beyond-run", checkpoint(dict(base, step=99, total_steps=99)))
    out(t, "regress-step-count-int64-max", checkpoint(base, steps=(2, 2 ** 63 - 1)))
    out(t, "regress-dls-count-1e300", checkpoint(dict(base, dls=dict(dls, counts=[1e300, 0]))))
    out(t, "negative_second_moment", checkpoint(base, moments={
        "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight.exp_avg_sq": [0, 0, 0, -1, 0, 0, 0, 0]}))
    out(t, "extra_tensor", checkpoint(base, extra=[("unknown.exp_avg", "F32", [1], f32([0]))]))
    out(t, "no_optimizer", js(base).encode())


def metrics_seeds():
    t = "metrics"
    steps = [{"step": i, "loss": 3.0 / i, "lr": 1e-3 * min(1, i / 2), "grad_norm": 1.0 / i, "tokens": 512,
              "tokens_per_second": 5000.0 + i, "seconds": 0.1} for i in range(1, 7)]
    extra = [{"step": 0, "plan": {"memory_bytes": 5500000, "records": 24, "<x-fuzz>": "<x-fuzz a=1>"}},
             {"step": 3, "val_loss": 1.5}, {"step": 4, "skipped": True},
             {"step": 2, "dls_scores": [0.5, 0.25, 1e-9, 3.0]},
             {"step": 2, "dls_selection": {"mode": "exploit", "layers": [0, 3]}},
             {"step": 4, "dls_selection": {"mode": "explore", "layers": [1, 2]}},
             {"step": 6, "dls_counts": [3, 1, 1, 3]}, {"step": 6, "peak_rss_bytes": 123456789},
             {"step": 5, "val_loss": 1.2}]
    metrics = "\n".join(js(x) for x in steps + extra) + "\n"
    rosa = {"base_model_name_or_path": "<x-fuzz>/../model", "peft_type": "ROSA", "task_type": "CAUSAL_LM", "r": 32,
            "alpha": 1.0, "r_low": 0.25, "targets": ["q", "k"], "placement": "post-rope", "form": "gate",
            "dropout": 0.0, "train_norms": False,
            "dls": {"enabled": True, "interval": 2, "warmup": 2, "k_ratio": 0.5, "p_exploit": 0.8,
                    "score_ema": 0.0, "inactive": "skip", "seed": 42}}
    lora = {"base_model_name_or_path": "", "peft_type": "LORA", "r": 8, "lora_alpha": 16,
            "target_modules": ["q_proj", "<x-fuzz>"], "layers_to_transform": None}
    # the shape of rosa eval --output (src/eval/eval_report.h), hostile strings where it has strings
    ev = {"rosa_version": "0.1.0", "model": "<x-fuzz>", "adapter": None, "mode": "generate",
          "decoding": {"strategy": "beam_search", "num_beams": 4, "beam_rule": "<x-fuzz>", "length_penalty": 1,
                       "early_stopping": False, "max_new_tokens": {"commonsense": 32, "math": 256},
                       "batch_size": 1},
          "limit": 2, "seed": 42, "predictions": "<x-fuzz>.jsonl",
          "tasks": {"boolq": {"group": "commonsense", "accuracy": 0.5, "correct": 1, "n": 2, "no_answer": 0,
                              "resumed": 0, "file": "<x-fuzz>/boolq/test.json"},
                    "<x-fuzz>": {"group": "math", "accuracy": None, "correct": 0, "n": 0, "no_answer": 0,
                                 "resumed": 0}},
          "groups": {"commonsense": {"tasks": ["boolq"], "macro_accuracy": 0.5, "micro_accuracy": 0.5,
                                     "correct": 1, "n": 2, "no_answer": 0},
                     "math": {"tasks": ["<x-fuzz>"], "macro_accuracy": None, "micro_accuracy": None,
                              "correct": 0, "n": 0, "no_answer": 0},
                     "all": {"tasks": ["boolq", "<x-fuzz>"], "macro_accuracy": 0.5, "micro_accuracy": 0.5,
                             "correct": 1, "n": 2, "no_answer": 0}},
          "seconds": 1.5, "new_examples": 2, "examples_per_second": 1.3333333333333333}
    scored = {"rosa_version": "0.1.0", "scored_predictions": "<x-fuzz>",
              "tasks": {"<script>": {"group": "commonsense", "accuracy": 1, "correct": 1, "n": 1, "no_answer": 0}},
              "groups": {"commonsense": {"tasks": ["<script>"], "macro_accuracy": 1, "micro_accuracy": 1,
                                         "correct": 1, "n": 1, "no_answer": 0}},
              "seconds": 0.01}
    out(t, "metrics_only", metrics)
    out(t, "rosa_with_eval", metrics.encode() + SEP + js(rosa, 2).encode() + SEP + js(ev, 2).encode())
    out(t, "lora_adapter_only", b"" + SEP + js(lora).encode())
    out(t, "rescored_eval", js(steps[0]).encode() + SEP + js(lora).encode() + SEP + js(scored, 2).encode())
    out(t, "eval_list", js(steps[0]).encode() + SEP + b"{}" + SEP +
        js([{"name": "a<script>", "acc": 51.5}, {"task": "b", "accuracy": 0.9, "n": 10}]).encode())
    out(t, "bad_lines", "not json\n{\"step\": \"x\"}\n[1]\n{\"step\": 1e308, \"loss\": -1e308}\n"
                       "{\"step\": -1, \"loss\": 1}\n{\"step\": 2, \"dls_scores\": [\"a\", null, 1e400]}\n")


def main():
    safetensors_seeds()
    config_seeds()
    tokenizer_seeds()
    data_seeds()
    adapter_seeds()
    predictions_seeds()
    metrics_seeds()
    checkpoint_seeds()


if __name__ == "__main__":
    main()
