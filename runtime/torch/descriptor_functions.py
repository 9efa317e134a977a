"""Descriptors as torch autograd functions: native values and products (runtime/torch/descriptors.py).

Inside the VJPs of `mtdsl::evaluate` (runtime/torch/module.py), the descriptors
of a model (its tensors that are functions of the systems alone) enter the torch
evaluation of the rest of the program as the outputs of `DescriptorValues`,
whose backward is `DescriptorVJP` (the gradient blocks contracted with the
cotangents), whose backward is their contraction with the tangents (JVP) for the
cotangents and, when the positions or cells need second derivatives, the exact
Hessian-vector product by torch autograd through the descriptors' IR. So forces
(order 1) and a force loss backpropagated to the parameters (order 2) run the
descriptors natively; only a second derivative with respect to positions or
cells runs them in torch.
"""

from __future__ import annotations

import dataclasses

import torch

from ..evaluate import torch_values


@dataclasses.dataclass(frozen=True)
class DescriptorUse:
    """How an evaluation uses the descriptors: the gradients its first order asks for
    ("positions", "cell"), and whether second derivatives w.r.t. them will be taken."""

    wrt: tuple
    second_derivatives: bool


class DescriptorState:
    """What the functions of one evaluation share: the descriptors' run on the batch, how to
    evaluate them with torch (second derivatives), and whether those are wanted."""

    def __init__(self, descriptors, run, batch, pairs: dict, second_derivatives: bool):
        self.descriptors = descriptors
        self.run = run
        self.batch = batch
        self.pairs = pairs
        self.second_derivatives = second_derivatives

    def hessian_products(self, positions, cell, cotangents, positions_dot, cell_dot):
        """d/d(positions, cell) of <cotangents, J(positions, cell) (positions_dot, cell_dot)>:
        torch autograd twice through the descriptors' IR."""
        with torch.enable_grad():
            p = positions.detach().requires_grad_(True)
            c = cell.detach().requires_grad_(True)
            module = self.descriptors.module
            tensors = torch_values.evaluate(module, self.batch, self.pairs, p, c, {}, {})
            values = [tensors[name].block(index).values for name, index in self.run.blocks]
            pairs = [(v, w.detach()) for v, w in zip(values, cotangents) if v.requires_grad]
            if not pairs:
                return torch.zeros_like(positions), torch.zeros_like(cell)
            first = torch.autograd.grad([v for v, _ in pairs], [p, c], [w for _, w in pairs],
                                        create_graph=True, allow_unused=True)
            first = [(g, t) for g, t in zip(first, (positions_dot, cell_dot)) if g is not None and g.requires_grad]
            if not first:
                return torch.zeros_like(positions), torch.zeros_like(cell)
            second = torch.autograd.grad([g for g, _ in first], [p, c], [t for _, t in first], allow_unused=True)
        return tuple(s if s is not None else torch.zeros_like(x) for s, x in zip(second, (positions, cell)))


def _zeros_for(grads, likes):
    return [g if g is not None else torch.zeros_like(x) for g, x in zip(grads, likes)]


def _zeros_of(grads, shapes, like):
    return [g if g is not None else like.new_zeros(shape) for g, shape in zip(grads, shapes)]


class DescriptorValues(torch.autograd.Function):
    """(positions, cell) -> the values of every descriptor block (from the run)."""

    @staticmethod
    def forward(ctx, state: DescriptorState, positions, cell):
        ctx.state = state
        ctx.save_for_backward(positions, cell)
        return tuple(state.run.values(positions.dtype))

    @staticmethod
    def backward(ctx, *cotangents):
        positions, cell = ctx.saved_tensors
        cotangents = _zeros_of(cotangents, ctx.state.run.shapes, positions)
        positions_bar, cell_bar = DescriptorVJP.apply(ctx.state, positions, cell, *cotangents)
        return None, positions_bar, cell_bar


class DescriptorVJP(torch.autograd.Function):
    """(positions, cell, cotangents...) -> (positions_bar, cell_bar)."""

    @staticmethod
    def forward(ctx, state: DescriptorState, positions, cell, *cotangents):
        ctx.state = state
        ctx.save_for_backward(positions, cell, *cotangents)
        return state.run.vjp(list(cotangents), positions, cell)

    @staticmethod
    def backward(ctx, positions_bar_bar, cell_bar_bar):
        positions, cell, *cotangents = ctx.saved_tensors
        state = ctx.state
        positions_dot, cell_dot = _zeros_for((positions_bar_bar, cell_bar_bar), (positions, cell))
        tangents = DescriptorJVP.apply(state, positions_dot, cell_dot) if any(ctx.needs_input_grad[3:]) \
            else [None] * len(cotangents)
        hessian = (None, None)
        if state.second_derivatives and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            hessian = state.hessian_products(positions, cell, cotangents, positions_dot, cell_dot)
        return (None, *hessian, *tangents)


class DescriptorJVP(torch.autograd.Function):
    """(positions_dot, cell_dot) -> the tangent of every descriptor block (linear: its backward is the VJP)."""

    @staticmethod
    def forward(ctx, state: DescriptorState, positions_dot, cell_dot):
        ctx.state = state
        ctx.save_for_backward(positions_dot, cell_dot)
        return tuple(state.run.jvp(positions_dot, cell_dot))

    @staticmethod
    def backward(ctx, *cotangents):
        positions_dot, cell_dot = ctx.saved_tensors
        cotangents = _zeros_of(cotangents, ctx.state.run.shapes, positions_dot)
        return (None, *ctx.state.run.vjp(cotangents, positions_dot, cell_dot))
