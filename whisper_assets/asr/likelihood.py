"""How plausible a transcript is for its audio, by the model's own judgement: the log-probabilities of the
transcript's tokens, teacher-forced (one forward pass, no decoding)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import WhisperProcessor

from whisper_assets.asr.audio import SAMPLE_RATE
from whisper_assets.asr.model import is_multilingual, unwrap, window_seconds


@torch.inference_mode()
def transcript_logprobs(
    model, processor: WhisperProcessor, items: Sequence[dict], batch_size: int = 16
) -> list[tuple[float, float] | None]:
    """(mean, lowest) log-probability of the tokens (end of text included) of each item's `transcript` given
    its `samples` and `language`; None for audio longer than the model's window, or an empty transcript. The
    lowest finds one wrong word in a long sentence, which the mean dilutes."""
    whisper = unwrap(model)
    device, dtype = next(whisper.parameters()).device, next(whisper.parameters()).dtype
    multilingual, limit = is_multilingual(whisper), window_seconds(whisper)
    tokenizer = processor.tokenizer
    scores: list[tuple[float, float] | None] = [None] * len(items)
    usable = [
        i
        for i, item in enumerate(items)
        if item["transcript"].strip() and len(item["samples"]) <= limit * SAMPLE_RATE
    ]
    for start in range(0, len(usable), batch_size):
        chunk = usable[start : start + batch_size]
        labels, prefixes = [], []
        for i in chunk:
            tokenizer.set_prefix_tokens(
                language=items[i]["language"] if multilingual else None,
                task="transcribe" if multilingual else None,
                predict_timestamps=False,
            )
            labels.append(tokenizer(" " + items[i]["transcript"].strip()).input_ids)
            prefixes.append(len(tokenizer.prefix_tokens))
        width = max(map(len, labels))
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id or 0, dtype=torch.long)
        for row, tokens in enumerate(labels):
            ids[row, : len(tokens)] = torch.tensor(tokens)
        features = processor.feature_extractor(
            [items[i]["samples"] for i in chunk], sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features
        logits = whisper(
            input_features=features.to(device, dtype), decoder_input_ids=ids[:, :-1].to(device)
        ).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
        targets = ids[:, 1:]
        picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        for row, (i, tokens, prefix) in enumerate(zip(chunk, labels, prefixes, strict=True)):
            own = picked[row, prefix - 1 : len(tokens) - 1]
            scores[i] = (round(float(own.mean()), 4), round(float(own.min()), 4))
    return scores
