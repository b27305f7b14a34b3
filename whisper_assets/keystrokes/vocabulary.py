"""The keystroke vocabulary: `<pad> <s> </s> <unk>`, then each observed code as `<code>_DOWN` and `<code>_UP`.

It is saved as a fast tokenizer (tokenizer.json, loadable by `PreTrainedTokenizerFast.from_pretrained`) plus a
plain vocab.json under `tokenizer/`, and training, evaluation and decode-keys all load it from there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from whisper_assets.files import write_json_atomic
from whisper_assets.keystrokes.events import DOWN, UP

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
VOCAB_FILE = "vocab.json"


def vocabulary(codes: Iterable[str]) -> dict[str, int]:
    """Token ids: the specials first, then the codes sorted, DOWN before UP (stable for the same codes)."""
    tokens = [*SPECIALS, *(f"{code}_{d}" for code in sorted(set(codes)) for d in (DOWN, UP))]
    return {token: i for i, token in enumerate(tokens)}


def build_tokenizer(vocab: dict[str, int]) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK
    )


def save_tokenizer(rows: Iterable[dict], folder: Path) -> tuple[PreTrainedTokenizerFast, str]:
    """Build the vocabulary from every manifest row's events and save it; return it and its digest."""
    vocab = vocabulary(code for row in rows for _, code, _ in row["events"])
    tokenizer = build_tokenizer(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    write_json_atomic(folder / VOCAB_FILE, vocab, indent=1)
    return tokenizer, vocab_digest(vocab)


def load_tokenizer(folder: Path) -> PreTrainedTokenizerFast:
    if not (folder / "tokenizer.json").exists():
        raise FileNotFoundError(f"no keystroke tokenizer in {folder}: materialize keystroke_vocabulary first")
    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def vocab_digest(vocab: dict[str, int]) -> str:
    return hashlib.sha256(json.dumps(vocab, sort_keys=True).encode()).hexdigest()


def encode(tokenizer: PreTrainedTokenizerFast, tokens: list[str]) -> list[int]:
    """Label ids for a token sequence: the tokens then `</s>` (the decoder starts from `<s>`)."""
    return [*tokenizer.convert_tokens_to_ids(tokens), tokenizer.eos_token_id]


def decode(tokenizer: PreTrainedTokenizerFast, ids: Iterable[int]) -> list[str]:
    """Tokens of generated ids, up to `</s>`, without specials."""
    out = []
    for token in tokenizer.convert_ids_to_tokens([int(i) for i in ids]):
        if token == EOS:
            break
        if token not in SPECIALS:
            out.append(token)
    return out
