"""Numpy-only pieces shared by build.py, reference.py and bench.py.

- read_safetensors: the weights, without torch or the safetensors package.
- WordPiece: the BERT uncased tokenizer described by tokenizer.json (normaliser,
  pre-tokeniser, WordPiece model, [CLS]/[SEP] template). Written out here so the
  venv needs no `tokenizers` wheel (which drags in huggingface_hub and friends).
- forward / embed: a float64 reference BERT forward pass, independent of the ONNX
  graph, used to check the graph and to write the Rust test fixture.
"""
import json
import math
import struct
import unicodedata

import numpy as np


def read_safetensors(path):
    """safetensors = u64 LE header length, JSON header, then raw LE tensor bytes."""
    dtypes = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dtypes[meta["dtype"]]).reshape(meta["shape"])
    return out


class WordPiece:
    """BertNormalizer + BertPreTokenizer + WordPiece + TemplateProcessing, as in
    tokenizer.json (lowercase, strip accents, CJK split, clean text)."""

    def __init__(self, tokenizer_json):
        with open(tokenizer_json, encoding="utf-8") as f:
            t = json.load(f)
        m = t["model"]
        assert m["type"] == "WordPiece" and t["normalizer"]["type"] == "BertNormalizer"
        self.vocab = m["vocab"]
        self.unk = self.vocab[m["unk_token"]]
        self.prefix = m["continuing_subword_prefix"]
        self.max_chars = m["max_input_chars_per_word"]
        self.cls, self.sep = self.vocab["[CLS]"], self.vocab["[SEP]"]

    @staticmethod
    def _normalize(text):
        # Same steps and order as the Rust BertNormalizer: drop control chars, map
        # whitespace to " ", pad CJK ideographs, strip accents, lowercase per char.
        out = []
        for ch in text:
            if ch not in "\t\n\r" and (ch in "\0\ufffd" or unicodedata.category(ch) in ("Cc", "Cf", "Co")):
                continue
            if ch in _WHITESPACE:
                out.append(" ")
            elif _is_cjk(ord(ch)):
                out.append(f" {ch} ")
            else:
                out.append(ch)
        # strip_accents is null in tokenizer.json, which means "follow lowercase" (true)
        text = unicodedata.normalize("NFD", "".join(out))
        # per-char lower(): Rust's char::to_lowercase has no final-sigma rule
        return "".join(c.lower() for c in text if unicodedata.category(c) != "Mn")

    @staticmethod
    def _pre_tokenize(text):
        """Split on whitespace, and isolate every punctuation character."""
        words = []
        for chunk in filter(None, text.split(" ")):
            cur = ""
            for ch in chunk:
                if _is_punct(ch):
                    if cur:
                        words.append(cur)
                    words.append(ch)
                    cur = ""
                else:
                    cur += ch
            if cur:
                words.append(cur)
        return words

    def _wordpiece(self, word):
        if len(word) > self.max_chars:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):  # greedy longest match first
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    break
                end -= 1
            else:
                return [self.unk]  # one unmatched piece makes the whole word [UNK]
            start = end
        return ids

    def encode(self, text):
        ids = [self.cls]
        for w in self._pre_tokenize(self._normalize(text)):
            ids += self._wordpiece(w)
        return ids + [self.sep]


# Unicode White_Space (Rust's char::is_whitespace); differs from Python's isspace().
_WHITESPACE = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}


def _is_cjk(cp):  # ranges copied from the Rust tokenizers crate (0x2B920 included)
    return any(a <= cp <= b for a, b in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


def _is_punct(ch):
    # ASCII symbols such as $ + < = > ^ ` | ~ count as punctuation for BERT too.
    return (ch.isascii() and not ch.isalnum() and ch.isprintable() and ch != " ") \
        or unicodedata.category(ch).startswith("P")


def _layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


_erf = np.vectorize(math.erf)


def forward(w, cfg, ids, token_type_ids=None):
    """last_hidden_state [seq, hidden] of one unpadded sequence, in float64.

    One sequence at a time with no padding, so no attention mask is needed: the
    ONNX graph's masking is checked by feeding it a padded batch instead."""
    w = {k: v.astype(np.float64) for k, v in w.items() if v.dtype != np.int64}
    eps, heads = cfg["layer_norm_eps"], cfg["num_attention_heads"]
    ids = np.asarray(ids)
    tt = np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids)
    e = "embeddings."
    x = (w[e + "word_embeddings.weight"][ids] + w[e + "position_embeddings.weight"][: len(ids)]
         + w[e + "token_type_embeddings.weight"][tt])
    x = _layer_norm(x, w[e + "LayerNorm.weight"], w[e + "LayerNorm.bias"], eps)
    seq, hidden = x.shape
    dh = hidden // heads
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        lin = lambda t, name: t @ w[p + name + ".weight"].T + w[p + name + ".bias"]  # noqa: E731
        split = lambda t: t.reshape(seq, heads, dh).transpose(1, 0, 2)  # noqa: E731
        q, k, v = (split(lin(x, "attention.self." + n)) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(dh)
        s = np.exp(s - s.max(-1, keepdims=True))
        ctx = (s / s.sum(-1, keepdims=True)) @ v
        ctx = ctx.transpose(1, 0, 2).reshape(seq, hidden)
        x = _layer_norm(x + lin(ctx, "attention.output.dense"),
                        w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
        h = lin(x, "intermediate.dense")
        h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))  # exact (erf) GELU, as hidden_act="gelu"
        x = _layer_norm(x + lin(h, "output.dense"),
                        w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    return x


def pool(hidden, mask):
    """sentence-transformers' Pooling(mean) + Normalize, for a [batch, seq, dim] array."""
    mask = np.asarray(mask, dtype=hidden.dtype)[..., None]
    mean = (hidden * mask).sum(-2) / np.maximum(mask.sum(-2), 1e-9)
    return mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)


def embed(w, cfg, ids):
    """Reference sentence embedding (float64) of one tokenized sentence."""
    return pool(forward(w, cfg, ids)[None], np.ones((1, len(ids))))[0]


def load_config(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)
