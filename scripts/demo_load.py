"""The consumer's program: load a model folder with transformers and answer one prompt.

Run under `attest run`, every from_pretrained goes through the verify-before-load guard.
"""

import sys

from transformers import AutoModelForCausalLM, AutoTokenizer

path = sys.argv[1]
tokenizer = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path)
prompt = tokenizer.apply_chat_template(
    [{"role": "user", "content": "Where does alice live?"}], tokenize=False, add_generation_prompt=True
)
ids = tokenizer(prompt, return_tensors="pt").input_ids
out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
print(f"loaded {path}: {tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)!r}")
