"""Writes a tiny llama-architecture GGUF with random weights, for the LLM tests.

Nothing is downloaded: the weights are drawn from a seeded generator and written with the
`gguf` package's writer. The vocabulary is SentencePiece-style: printable ASCII characters and
the word boundary as tokens, plus the 256 byte tokens that any other text falls back to. The
output layer gives the byte tokens a zero row and the character tokens rows of unit scale, so
greedy decoding (temperature 0) writes printable characters mostly, in strings that end after
a few words: the text is nonsense, but
under a JSON-schema grammar it is schema-valid JSON that strata's checks can accept.

Usage: python tiny_model.py OUT.gguf
"""

import sys

import gguf
import numpy as np

N_EMBD, N_HEAD, N_FF, N_LAYER, N_CTX = 64, 4, 128, 2, 32768
QUOTE_SCALE = 1.6


def main(path):
    rng = np.random.default_rng(0)
    chars = ["\u2581"] + [chr(c) for c in range(0x21, 0x7F)]
    tokens = ["<unk>", "<s>", "</s>"] + chars + [f"<0x{b:02X}>" for b in range(256)]
    types = (
        [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
        + [gguf.TokenType.NORMAL] * len(chars)
        + [gguf.TokenType.BYTE] * 256
    )
    n_vocab = len(tokens)

    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    def random(*shape, scale=0.02):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    output = random(n_vocab, N_EMBD, scale=1.0)
    output[:3] = 0.0
    output[3 + len(chars):] = 0.0
    # A larger row for the quote ends strings sooner (a few words, not the schema's maximum).
    output[tokens.index('"')] *= QUOTE_SCALE
    w.add_tensor("token_embd.weight", random(n_vocab, N_EMBD, scale=1.0))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    w.add_tensor("output.weight", output)
    for i in range(N_LAYER):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{name}.weight", random(N_EMBD, N_EMBD, scale=0.3))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", random(N_FF, N_EMBD, scale=0.3))
        w.add_tensor(f"blk.{i}.ffn_up.weight", random(N_FF, N_EMBD, scale=0.3))
        w.add_tensor(f"blk.{i}.ffn_down.weight", random(N_EMBD, N_FF, scale=0.3))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(sys.argv[1])
