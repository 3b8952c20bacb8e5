"""torch steps: eager calls of the Keras model, one optimizer step per minibatch."""

from __future__ import annotations

import numpy as np
import torch
from keras import ops

from kerlym.backend.common import Steps, float32, loss_row, merge_leading, slice_prepared, split_leading, split_loss


class TorchSteps(Steps):
    """:class:`~kerlym.backend.common.Steps` run eagerly on torch tensors."""

    def online(self, x, training=False):
        return float32(self.model(ops.cast(x, "float32"), training=training))

    def run_target(self, x):
        """The target network on stacked minibatches ``[steps, B, ...]``."""
        out = self.target(ops.cast(merge_leading(x), "float32"), training=False)
        return split_leading(float32(out), x.shape[0])

    def act(self, x, *extra):
        with torch.no_grad():
            out = self.act_fn(self.online(ops.convert_to_tensor(x)), *(ops.convert_to_tensor(e) for e in extra))
        return tuple(ops.convert_to_numpy(o) for o in out)

    def _outputs(self, x):
        with torch.no_grad():
            return ops.convert_to_numpy(self.online(ops.convert_to_tensor(x)))

    def update(self, batches):
        batches = tuple(ops.convert_to_tensor(b) for b in batches)
        prepared = None
        if self.prepare is not None:
            with torch.no_grad():
                prepared = self.prepare(self.run_target, batches)
        tvars, optimizer = self.trainable, self.model.optimizer
        rows = []
        for k in range(len(batches[0])):
            batch = tuple(b[k] for b in batches)
            self.model.zero_grad()
            loss, metrics = split_loss(self.loss_fn(self.online, batch, slice_prepared(prepared, k)))
            loss.backward()
            with torch.no_grad():
                optimizer.apply([v.value.grad for v in tvars], tvars)
            rows.append(ops.convert_to_numpy(loss_row(loss.detach(), [m.detach() for m in metrics])))
        return np.asarray(rows, dtype=np.float32)
