"""Checkpoints of models on a frozen LLM hold the trained weights only.

A frozen backbone is reloaded from its source at construction (the offline package, a hub
name or a folder), so storing its ~100M parameters in every checkpoint would only cost disk
and time. ``TrainedWeightsOnly`` drops every parameter that does not require a gradient from
``state_dict`` and accepts their absence in ``load_state_dict`` (any other missing or
unexpected key is still an error).
"""

from __future__ import annotations

from typing import Any


class TrainedWeightsOnly:
    """Mixin for a ``torch.nn.Module`` (put it before the module class in the bases)."""

    def _frozen_keys(self, prefix: str = "") -> set[str]:
        return {prefix + name for name, p in self.named_parameters(remove_duplicate=False) if not p.requires_grad}  # type: ignore[attr-defined]

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        state = super().state_dict(*args, **kwargs)  # type: ignore[misc]
        prefix = kwargs.get("prefix", args[1] if len(args) > 1 else "")
        for key in self._frozen_keys(prefix):
            state.pop(key, None)
        return state

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        result = super().load_state_dict(state_dict, strict=False, assign=assign)  # type: ignore[misc]
        if strict:
            frozen = self._frozen_keys()
            missing = [k for k in result.missing_keys if k not in frozen]
            if missing or result.unexpected_keys:
                raise RuntimeError(
                    f"{type(self).__name__}.load_state_dict: missing keys {missing[:5]}, unexpected keys {result.unexpected_keys[:5]} "
                    "(a checkpoint of another backbone or configuration?)"
                )
        return result
