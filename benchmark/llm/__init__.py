"""The LLM toolkit the LLM-based models share (LLM4Rec, GenRec, P5): backbone loading with
LoRA (``backbone``), decoding constrained to the catalogue (``decoding``) and checkpoints that
hold the trained weights only (``checkpoints``)."""
