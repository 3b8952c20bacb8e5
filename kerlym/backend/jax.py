"""JAX steps: act and update under ``jax.jit`` over Keras's stateless API.

The weights, the optimizer state and the target network's weights live here
as JAX arrays between calls; act and update read and replace them, and the
update donates the old buffers so that XLA updates them in place.
:meth:`JaxSteps.to_keras` writes copies into the Keras variables when
something reads them (a checkpoint, a save, ``get_weights``), and the next
step reads the variables back, so weights set through Keras take effect.
"""

from __future__ import annotations

import operator

import jax
import jax.numpy as jnp
import numpy as np
from keras import ops

from kerlym.backend.common import UNROLL, Steps, float32, loss_row, merge_leading, split_leading, split_loss


def gradient_step(model, optimizer, loss_of_online, carry):
    """One gradient step through Keras's stateless calls, as a ``lax.scan`` body: ``(tv, ntv, ov)`` in and out.

    ``loss_of_online(online)`` is the agent's loss (and its metrics) given ``online(x, training)``, the model
    on the trainable variables being differentiated; a training call's new non-trainable variables
    (batch-norm statistics) are carried on. Returns the new ``(tv, ntv, ov)`` and the step's loss row.
    """
    tv, ntv, ov = carry

    def loss_of(tv, ntv):
        state = {"ntv": ntv}

        def online(x, training=False):
            out, new_ntv = model.stateless_call(tv, state["ntv"], ops.cast(x, "float32"), training=training)
            if training:
                state["ntv"] = new_ntv
            return float32(out)

        loss, metrics = split_loss(loss_of_online(online))
        return loss, (metrics, state["ntv"])

    (loss, (metrics, ntv)), grads = jax.value_and_grad(loss_of, has_aux=True)(tv, ntv)
    tv, ov = optimizer.stateless_apply(ov, grads, tv)
    return (tv, ntv, ov), loss_row(loss, metrics)


def _copy(tree):
    return jax.tree.map(jnp.copy, tree)


class JaxSteps(Steps):
    """:class:`~kerlym.backend.common.Steps` as ``jax.jit`` functions of arrays held between calls."""

    def __init__(self, model, loss_fn=None, target=None, prepare=None, act_fn=None):
        super().__init__(model, loss_fn, target, prepare, act_fn)
        self.target_groups = (
            (list(target.trainable_variables), list(target.non_trainable_variables)) if target is not None else ([], [])
        )
        # Where each of model.weights sits: (0, i) in the trainable arrays, (1, i) in the non-trainable.
        where = {id(v): (0, i) for i, v in enumerate(self.trainable)}
        where.update({id(v): (1, i) for i, v in enumerate(self.non_trainable)})
        self._weight_index = [where[id(v)] for v in model.weights]
        self._act = jax.jit(self._forward)
        self._raw = jax.jit(self._network)
        # Donating the weights and optimizer state lets XLA update them in place rather than
        # allocate fresh buffers each call.
        self._update = jax.jit(self._update_arrays, donate_argnums=(0, 1, 2))
        self._copy = jax.jit(_copy)  # one call copies every array (a jitted output never aliases an input)
        self.from_keras()

    # -- the compiled functions -------------------------------------------
    def _forward(self, tv, ntv, x, *extra):
        out, _ = self.model.stateless_call(tv, ntv, ops.cast(x, "float32"), training=False)
        return tuple(self.act_fn(float32(out), *extra))

    def _network(self, tv, ntv, x):
        return float32(self.model.stateless_call(tv, ntv, ops.cast(x, "float32"), training=False)[0])

    def _update_arrays(self, tv, ntv, ov, target_tv, target_ntv, batches):
        model, optimizer = self.model, self.model.optimizer

        def run_target(x):  # the target network on stacked minibatches [steps, B, ...]
            out, _ = model.stateless_call(target_tv, target_ntv, ops.cast(merge_leading(x), "float32"), training=False)
            return split_leading(float32(out), x.shape[0])

        def step(carry, minibatch):
            batch, prepared = minibatch
            return gradient_step(model, optimizer, lambda online: self.loss_fn(online, batch, prepared), carry)

        n = batches[0].shape[0]
        prepared = self.prepare(run_target, batches) if self.prepare is not None else None
        carry, minibatches = (tv, ntv, ov), (batches, prepared)
        if n <= UNROLL:
            rows = []
            for k in range(n):
                carry, row = step(carry, jax.tree.map(operator.itemgetter(k), minibatches))
                rows.append(row)
            rows = jnp.stack(rows)
        else:
            carry, rows = jax.lax.scan(step, carry, minibatches)
        return (*carry, rows)

    # -- the public steps ---------------------------------------------------
    def act(self, x, *extra):
        if self._lent:
            self.from_keras()
        out = self._act(self.tv, self.ntv, x, *extra)
        return tuple([np.asarray(o) for o in out])  # keras's convert_to_numpy costs more than the call

    def _outputs(self, x):
        if self._lent:
            self.from_keras()
        return np.asarray(self._raw(self.tv, self.ntv, x))

    def update(self, batches):
        if self._lent:
            self.from_keras()
        self.tv, self.ntv, self.ov, rows = self._update(
            self.tv, self.ntv, self.ov, self.target_tv, self.target_ntv, tuple(batches)
        )
        self._keras_stale = True
        return np.asarray(rows)

    def arrays(self):
        """The weights and optimizer state the steps work on, ``(trainable, non_trainable, optimizer)`` arrays.

        For a compiled loop of the caller's own (:mod:`kerlym.agents.fused`), which gives its results back
        with :meth:`set_arrays`.
        """
        if self._lent:
            self.from_keras()
        return self.tv, self.ntv, self.ov

    def update_arrays(self, tv, ntv, ov, target_tv, target_ntv, batches):
        """The update as a pure function of arrays, ``(tv, ntv, ov, loss rows)`` out: what :meth:`update` compiles.

        For a compiled loop of the caller's own (:mod:`kerlym.agents.fused_dqn`), which traces it inside its own.
        """
        return self._update_arrays(tv, ntv, ov, target_tv, target_ntv, batches)

    def set_target_arrays(self, target_tv, target_ntv):
        """Take the target network's arrays from a compiled loop of the caller's own; Keras's copy is written later."""
        self.target_tv, self.target_ntv = list(target_tv), list(target_ntv)
        self._keras_stale = True

    def set_arrays(self, tv, ntv, ov):
        """Take new weights and optimizer state, as :meth:`arrays` gave them; Keras's copy is written when read."""
        self.tv, self.ntv, self.ov = list(tv), list(ntv), list(ov)
        self._keras_stale = True

    def sync_target(self):
        if self._lent:
            self.from_keras()
        self.target_tv, self.target_ntv = self._copy((self.tv, self.ntv))  # own buffers: updates donate tv
        self._keras_stale = True

    def get_weights(self):
        if self._lent:
            self.from_keras()
        groups = (self.tv, self.ntv)
        return [np.array(groups[g][i]) for g, i in self._weight_index]

    def set_weights(self, weights):
        if self._lent:
            self.from_keras()
        weights = list(weights)
        if len(weights) != len(self._weight_index):
            raise ValueError(f"expected {len(self._weight_index)} weight arrays, got {len(weights)}")
        groups = [list(self.tv), list(self.ntv)]
        for (g, i), w in zip(self._weight_index, weights):
            old = groups[g][i]
            if tuple(np.shape(w)) != old.shape:
                raise ValueError(f"weight of shape {np.shape(w)} does not fit a variable of shape {old.shape}")
            groups[g][i] = jnp.array(w, dtype=old.dtype, copy=True)  # never a view of the caller's array
        self.tv, self.ntv = groups
        self._keras_stale = True

    # -- Keras's copy of the weights ---------------------------------------
    def _groups(self):
        """Every group of Keras variables, in the order of :meth:`_arrays`."""
        return (self.trainable, self.non_trainable, self.optimizer_vars, *self.target_groups)

    def _arrays(self):
        return (self.tv, self.ntv, self.ov, self.target_tv, self.target_ntv)

    def to_keras(self):
        """Write the arrays into the Keras variables (copies: the next update donates the arrays).

        Whatever reads or sets the variables next may do so until the next
        step, which reads them back first.
        """
        if self._keras_stale:
            for variables, values in zip(self._groups(), self._copy(self._arrays())):
                for v, value in zip(variables, values):
                    v.assign(value)
            self._keras_stale = False
            self._written = [v.value for group in self._groups() for v in group]
        self._lent = True

    def from_keras(self):
        """Take the Keras variables' values (copies) as the arrays the steps work on.

        Where every variable still holds what :meth:`to_keras` wrote, or what the arrays were last copied
        from (a save or an evaluation only read them), the arrays stay as they are, the same objects: a
        fused chunk computed ahead from them (:class:`kerlym.agents.fused.FusedGroup`) is still the one to
        take.
        """
        values = tuple([v.value for v in group] for group in self._groups())
        flat = [x for group in values for x in group]
        written = getattr(self, "_written", None)
        if written is None or len(written) != len(flat) or any(a is not b for a, b in zip(written, flat)):
            self.tv, self.ntv, self.ov, self.target_tv, self.target_ntv = self._copy(values)
            self._written, self._keras_stale = flat, False  # Keras holds what the arrays were copied from
        self._lent = False
