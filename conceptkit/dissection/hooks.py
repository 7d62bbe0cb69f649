"""Capture the outputs of several layers, named by dotted path, in one forward pass.

``layer4``, ``layer4.1.conv2`` and ``features.18`` all work: the names are those of
``model.named_modules()``, at any depth (NetDissect-Lite could only hook top-level modules),
looked up by :func:`~conceptkit.dissection.models.layers.resolve_layer` (an unknown name is a
UsageError that lists close names). A name that is no module but a node of the model's traced
graph (``layer4.1.add``, :mod:`~conceptkit.dissection.nodes`) is taken from the graph instead;
then every layer comes from the graph, in the same single forward pass.

Each output goes through a reader that makes it ``(B, C, h, w)``: by default the
:class:`~conceptkit.dissection.tokens.LayerReader` chosen from the first output's shape (a
transformer block's ``(B, N, C)`` tokens become the patch grid, channels-last maps are
permuted); ``readers`` can give any callable ``(output, (H, W) of the input) -> (B, C, h, w)``.
TorchScript modules cannot be hooked: that is a one-line ModelLoadError; a forward that fails
on the input (a ViT given another size than its own) is a one-line UsageError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from conceptkit.dissection.models._text import one_line
from conceptkit.dissection.models.layers import resolve_layer
from conceptkit.dissection.nodes import NodeExtractor
from conceptkit.dissection.tokens import layer_reader
from conceptkit.errors import ModelLoadError, UsageError

# what a model's own forward raises for an input it does not take (wrong size, channels)
_FORWARD_ERRORS = (AssertionError, RuntimeError, ValueError, TypeError, IndexError)


class _Stop(Exception):
    """Raised by a hook to end a forward whose wanted layers have all run."""


Reader = Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]
"""``reader(output, (H, W) of the model input) -> (B, C, h, w)``."""


def _first_tensor(output: Any) -> Any:
    if isinstance(output, (tuple, list)):
        return next((o for o in output if isinstance(o, torch.Tensor)), None)
    if isinstance(output, Mapping) and "last_hidden_state" in output:  # a Hugging Face output
        return output["last_hidden_state"]
    return output


class FeatureHooks:
    """Forward hooks that store each named layer's output tensor in :attr:`features`.

    Use as a context manager; the hooks are removed on exit. After :meth:`run`,
    ``features[name]`` is a copy of that layer's output (detached, safe from later in-place
    ops). A module that returns a tuple contributes its first tensor. ``grid`` fixes the token
    grid ``(h, w)`` of every token layer; ``readers`` replaces the default reader per layer.
    """

    def __init__(
        self,
        model: nn.Module,
        names: Sequence[str],
        readers: Mapping[str, Reader] | None = None,
        grid: tuple[int, int] | None = None,
    ) -> None:
        if isinstance(model, torch.jit.ScriptModule):
            raise ModelLoadError(
                "cannot hook the layers of a TorchScript module (scripted code has no forward "
                "hooks); load its state_dict with --arch, or the eager model, instead"
            )
        self.names = list(names)
        self.features: dict[str, torch.Tensor] = {}
        self.readers: dict[str, Reader] = dict(readers or {})
        self.grid = grid
        self._model = model
        self._fired: list[str] = []
        #: the layers in the order the last whole forward reached them
        self.order: list[str] = list(self.names)
        #: whether ``stop_after`` may end a forward early: a whole forward has run and called
        #: each hooked module once (a module called twice keeps its last output)
        self.stoppable = False
        #: when set, each hook records ``clock()`` in :attr:`fired_at` as its layer's output
        #: is stored (the cache plan times the forward up to each layer so)
        self.clock: Callable[[], float] | None = None
        self.fired_at: dict[str, float] = {}
        self._handles: list[Any] = []
        modules = dict(model.named_modules())
        self.extractor: NodeExtractor | None = None
        if any(n not in modules for n in self.names):
            self._node_layers(model, modules)
            return
        for name in self.names:
            module = resolve_layer(model, name)
            self._handles.append(module.register_forward_hook(self._make_hook(name)))

    def _node_layers(self, model: nn.Module, modules: Mapping[str, nn.Module]) -> None:
        """Take every layer from the traced graph; an unknown name lists close module names."""
        try:
            self.extractor = NodeExtractor(model, self.names)
        except UsageError:
            for name in self.names:
                if name not in modules:
                    resolve_layer(model, name)  # raises with close module names
            raise

    def _make_hook(self, name: str) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            out = _first_tensor(output)
            if not isinstance(out, torch.Tensor):
                raise UsageError(
                    f"layer {name!r} gives {type(output).__name__}, expected a (B, C, h, w) "
                    "feature map or (B, N, C) tokens",
                    hint="dissect convolutional layers or transformer blocks",
                )
            # a copy: a later in-place op (ReLU(inplace=True) after a conv) must not change it
            self.features[name] = out.detach().clone()
            self._fired.append(name)
            if self.clock is not None:
                self.fired_at[name] = self.clock()

        return hook

    def read(self, name: str, out: torch.Tensor, input_hw: tuple[int, int]) -> torch.Tensor:
        """Layer ``name``'s captured output ``out`` as ``(B, C, h, w)`` (its reader, picked once)."""
        reader = self.readers.get(name)
        if reader is None:
            reader = layer_reader(self._model, name, tuple(out.shape), self.grid)
            self.readers[name] = reader
        return reader(out, input_hw)

    def run(
        self, model: nn.Module, x: torch.Tensor, stop_after: Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Forward ``x: (B, 3, H, W)`` once; ``{name: (B, C, h, w)}`` for every layer.

        With ``stop_after`` (some of the hooked layers), only those are returned and the
        forward ends as soon as all of them have run: later layers are not computed. Layers
        taken from the traced graph, or a module the forward calls again after all of them
        ran, need the whole forward: then it runs whole.
        """
        input_hw = (int(x.shape[-2]), int(x.shape[-1]))
        self.features = {}
        wanted = list(self.names if stop_after is None else stop_after)
        handles = [] if stop_after is None else self._stoppers(model, wanted)
        self._fired = []
        try:
            if self.extractor is not None:
                self.features = {n: t.detach() for n, t in self.extractor(x).items()}
            else:
                model(x)
        except _Stop:
            pass
        except _FORWARD_ERRORS as e:
            if isinstance(e, torch.OutOfMemoryError):
                raise
            raise UsageError(
                f"the model's forward of a {tuple(x.shape)} batch failed: {type(e).__name__}: "
                f"{one_line(str(e))[:160]}",
                hint="does the model need another --input-size?",
            ) from e
        finally:
            for h in handles:
                h.remove()
        missing = [n for n in wanted if n not in self.features]
        if missing:
            raise UsageError(f"layer(s) {', '.join(missing)} were not called in the forward pass")
        if not handles and self.extractor is None:  # a whole forward: learn from it
            self.order = list(dict.fromkeys(self._fired))
            self.stoppable = sorted(self._fired) == sorted(self.names)
        return {n: self.read(n, self.features[n], input_hw) for n in wanted}

    def _stoppers(self, model: nn.Module, wanted: Sequence[str]) -> list[Any]:
        """Hooks (after the feature hooks) that end the forward once ``wanted`` all ran."""
        if self.extractor is not None or not self.stoppable:
            return []
        fired: set[str] = set()
        goal = set(wanted)

        def stopper(name: str) -> Any:
            def hook(_m: nn.Module, _i: Any, _o: Any) -> None:
                fired.add(name)
                if fired >= goal:
                    raise _Stop

            return hook

        return [resolve_layer(model, n).register_forward_hook(stopper(n)) for n in goal]

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> FeatureHooks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def check_layers(model: nn.Module, names: Sequence[str]) -> None:
    """Raise the one-line error :class:`FeatureHooks` would give for ``names`` (an unknown
    name with close matches, a TorchScript model), before any work starts; hooks nothing."""
    FeatureHooks(model, names).remove()
