#!/usr/bin/python3
"""Writes the PyTorch reference fixtures of tests/t_norm.c.

Run with Debian's PyTorch (python3-torch, 1.13):
    /usr/bin/python3 tests/make_norm_fixtures.py
It writes small text files to tests/data/norm/ (next to this script).
`make check` reads them from C and needs neither Python nor PyTorch.

File format: '#' comment lines, then records
    NAME COUNT
    v1 v2 ... (COUNT numbers, whitespace separated, '%.9g' so that float32
               values round-trip)
Records: shape (N C H W; H = W = 1 for BatchNorm1d on (N, C)), groups, eps,
momentum (-1 = None, i.e. cumulative), x, gamma, beta, dy (step 1, TRAIN),
y, dx, dgamma, dbeta (step 1); with running statistics also
running_mean_1, running_var_1 (after step 1), x2, x3 (steps 2 and 3, TRAIN,
no backward), running_mean_3, running_var_3, num_batches_tracked_3 and
y_eval (EVAL forward of x after the three steps).
"""

import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "norm")


def fmt(t):
    vals = t.detach().to(torch.float32).reshape(-1).tolist()
    lines = []
    for i in range(0, len(vals), 8):
        lines.append(" ".join("%.9g" % v for v in vals[i:i + 8]))
    return "\n".join(lines)


def rec(f, name, t):
    if not torch.is_tensor(t):  # Python numbers: written exactly
        vals = list(t) if isinstance(t, (list, tuple)) else [t]
        f.write("%s %d\n%s\n" % (name, len(vals),
                                   " ".join("%.17g" % float(v) for v in vals)))
        return
    f.write("%s %d\n%s\n" % (name, t.numel(), fmt(t)))


def data(gen, shape, scale, shift):
    """High-entropy input with a different offset per channel."""
    c = shape[1]
    x = torch.randn(shape, generator=gen) * scale
    off = torch.linspace(-shift, 1.5 * shift, c)
    return (x + off.view([1, c] + [1] * (len(shape) - 2))).float()


def make(name, title, module, shape, running, groups=0):
    gen = torch.Generator().manual_seed(sum(map(ord, name)) * 7919)
    c = shape[1]
    x = data(gen, shape, 1.7, 0.8)
    x2 = data(gen, shape, 0.9, 2.1)
    x3 = data(gen, shape, 2.3, -0.6)
    dy = torch.randn(shape, generator=gen).float()
    with torch.no_grad():
        module.weight.copy_(0.5 + torch.rand(c, generator=gen))
        module.bias.copy_(torch.randn(c, generator=gen) * 0.5)
    module.train()
    xr = x.clone().requires_grad_(True)
    y = module(xr)
    y.backward(dy)
    full = list(shape) + [1] * (4 - len(shape))
    path = os.path.join(OUT, name + ".txt")
    with open(path, "w") as f:
        f.write("# tests/data/norm/%s.txt - written by tests/make_norm_fixtures.py\n" % name)
        f.write("# PyTorch %s: %s\n" % (torch.__version__, title))
        rec(f, "shape", full)
        rec(f, "groups", groups)
        rec(f, "eps", module.eps)
        mom = getattr(module, "momentum", None)
        rec(f, "momentum", -1.0 if mom is None else mom)
        rec(f, "x", x)
        rec(f, "gamma", module.weight)
        rec(f, "beta", module.bias)
        rec(f, "dy", dy)
        rec(f, "y", y)
        rec(f, "dx", xr.grad)
        rec(f, "dgamma", module.weight.grad)
        rec(f, "dbeta", module.bias.grad)
        if running:
            rec(f, "running_mean_1", module.running_mean)
            rec(f, "running_var_1", module.running_var)
            with torch.no_grad():
                module(x2)
                module(x3)
            rec(f, "x2", x2)
            rec(f, "x3", x3)
            rec(f, "running_mean_3", module.running_mean)
            rec(f, "running_var_3", module.running_var)
            rec(f, "num_batches_tracked_3", float(module.num_batches_tracked))
            module.eval()
            with torch.no_grad():
                rec(f, "y_eval", module(x))
    print("wrote", os.path.relpath(path, os.path.dirname(HERE)))


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    C = 6
    make("bn2d_m01", "BatchNorm2d(6, eps=1e-5, momentum=0.1) on (4,6,3,5)",
         torch.nn.BatchNorm2d(C, eps=1e-5, momentum=0.1), (4, C, 3, 5), True)
    make("bn2d_cum", "BatchNorm2d(6, eps=1e-5, momentum=None) on (4,6,3,5)",
         torch.nn.BatchNorm2d(C, eps=1e-5, momentum=None), (4, C, 3, 5), True)
    make("bn1d", "BatchNorm1d(6, eps=1e-5, momentum=0.1) on (8,6)",
         torch.nn.BatchNorm1d(C, eps=1e-5, momentum=0.1), (8, C), True)
    make("gn3", "GroupNorm(3, 6, eps=1e-5) on (4,6,3,5)",
         torch.nn.GroupNorm(3, C, eps=1e-5), (4, C, 3, 5), False, groups=3)
    make("gn1", "GroupNorm(1, 6, eps=1e-5) on (4,6,3,5)",
         torch.nn.GroupNorm(1, C, eps=1e-5), (4, C, 3, 5), False, groups=1)
    make("in2d", "InstanceNorm2d(6, eps=1e-5, affine=True) on (4,6,3,5)",
         torch.nn.InstanceNorm2d(C, eps=1e-5, affine=True), (4, C, 3, 5),
         False, groups=C)
    return 0


if __name__ == "__main__":
    sys.exit(main())
