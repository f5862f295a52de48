#!/usr/bin/env python3
"""Chat-template parity fixtures for src/data/chat.rs, from transformers.

Writes tests/fixtures/chat/: three small Hugging Face tokenizer folders, each a
tokenizer.json (a byte-level BPE or a Metaspace BPE trained here on invented
text) and a tokenizer_config.json holding a real chat-template layout:

  gpt2    ChatML with a default system prompt (Qwen2's layout), byte-level BPE
  llama3  Llama 3's header/eot layout with bos_token, byte-level BPE
  llama2  Llama 2's [INST] layout: system folded into the first user turn,
          raise_exception on roles that do not alternate, Metaspace BPE

and expected.json: for each folder and conversation, the text and the ids of
`AutoTokenizer.from_pretrained(folder).apply_chat_template(conversation,
tokenize=True, add_generation_prompt=True)`. Deterministic. Run from the
repository root:

  .venv/bin/python tools/make_chat_fixtures.py      (needs transformers, tokenizers)
"""
import json
import pathlib

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "chat"

CORPUS = [
    "Hello! How can I help you today?",
    "What is the capital of France? The capital of France is Paris.",
    "Please translate 'good morning' into German: Guten Morgen.",
    "You are a helpful assistant. Answer briefly and politely.",
    "Thanks a lot, that was useful. Anything else? No, that is all.",
    "The weather is sunny with a light breeze; 21 degrees at 10:30.",
    "Tell me a joke about cats. Why did the cat sit on the computer?",
    "Zwei Hunde spielen im Schnee. Les enfants jouent à côté de l'école.",
] * 20

CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Germany?"},
    ],
    [
        {"role": "user", "content": "  Tell me a joke about cats.  "},
        {"role": "assistant", "content": "Why did the cat sit on the computer? To keep an eye on the mouse."},
        {"role": "user", "content": "Übersetze: les enfants jouent — 子供たち 🐈\nzwei Zeilen"},
    ],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": ""},
    ],
]


def byte_level(specials):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def metaspace(specials):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(CORPUS + ["[INST] <<SYS>> <</SYS>> [/INST] 子供たち 🐈 — Übersetze"], trainer)
    return tok


FOLDERS = {
    "gpt2": (byte_level(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]), CHATML,
             {"bos_token": "<|endoftext|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    "llama3": (byte_level(["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]),
               LLAMA3, {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    "llama2": (metaspace(["<unk>", "<s>", "</s>"]), LLAMA2,
               {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
}


def main():
    expected = {}
    for name, (tok, template, specials) in FOLDERS.items():
        folder = OUT / name
        folder.mkdir(parents=True, exist_ok=True)
        tok.save(str(folder / "tokenizer.json"))
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "chat_template": template, **specials,
                  "model_max_length": 1024}
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        hf = AutoTokenizer.from_pretrained(str(folder))
        cases = []
        for conv in CONVERSATIONS:
            text = hf.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
            ids = hf.apply_chat_template(conv, tokenize=True, add_generation_prompt=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            cases.append({"messages": conv, "text": text, "ids": list(ids)})
        expected[name] = cases
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
