"""Write a tiny llama-architecture GGUF model with random weights, for tests against a real server.

    python tiny_gguf.py OUT.gguf [--seed N]

No weights are downloaded: the file is made here, and the same seed makes the same bytes. The
model is a 2-layer llama (64-wide, 4 heads, 2 KV heads) over a SentencePiece-style ("llama")
vocabulary of 3 control tokens, the 256 byte tokens llama.cpp's SPM tokenizer falls back to
(`<0x00>`..`<0xFF>`: it cannot tokenize text without them), and printable ASCII. Its answers are
gibberish, which is what a test of the transport and of CoRT's bookkeeping needs: the judge's
verdict is unreadable, so the fallback choice is exercised.

The metadata is what llama.cpp's llama loader requires (src/llama-model.cpp `load_hparams`,
src/llama-vocab.cpp `load`): general.architecture, llama.{context_length, embedding_length,
block_count, feed_forward_length, attention.head_count, attention.head_count_kv,
attention.layer_norm_rms_epsilon, rope.dimension_count}, tokenizer.ggml.{model, tokens, scores,
token_type, bos/eos/unk_token_id}; tensors token_embd, output_norm, output and per block
attn_norm, attn_q/k/v/output, ffn_norm, ffn_gate/up/down (numpy shapes are ggml's reversed).
"""

from __future__ import annotations

import argparse

import gguf
import numpy as np

N_EMBD = 64
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 128
N_LAYER = 2
N_CTX = 2048


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [gguf.TokenType.BYTE] * 256
    # SentencePiece writes a space as U+2581; the rest of printable ASCII as itself.
    pieces = ["\u2581" if c == " " else c for c in map(chr, range(32, 127))]
    words = ["\u2581the", "\u2581answer", "\u2581is", "CHOICE", "\u2581current", "\u2581best"]
    tokens += pieces + words
    types += [gguf.TokenType.NORMAL] * (len(pieces) + len(words))
    # SPM merges by score: whole words above single characters, bytes and controls at the bottom.
    scores = [0.0] * 259 + [-1.0] * len(pieces) + [-0.5] * len(words)
    return tokens, scores, [int(t) for t in types]


def write(path: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocabulary()
    n_vocab = len(tokens)
    head_dim = N_EMBD // N_HEAD
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("pyagent-tiny-random")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    def rand(*shape: int, scale: float = 0.5) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w.add_tensor("token_embd.weight", rand(n_vocab, N_EMBD))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    w.add_tensor("output.weight", rand(n_vocab, N_EMBD))
    kv = N_HEAD_KV * head_dim
    for i in range(N_LAYER):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", rand(N_EMBD, N_EMBD))
        w.add_tensor(f"blk.{i}.attn_k.weight", rand(kv, N_EMBD))
        w.add_tensor(f"blk.{i}.attn_v.weight", rand(kv, N_EMBD))
        w.add_tensor(f"blk.{i}.attn_output.weight", rand(N_EMBD, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", rand(N_FF, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_up.weight", rand(N_FF, N_EMBD))
        w.add_tensor(f"blk.{i}.ffn_down.weight", rand(N_EMBD, N_FF))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    write(args.out, args.seed)


if __name__ == "__main__":
    main()
