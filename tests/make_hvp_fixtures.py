#!/usr/bin/python3
"""Writes the PyTorch Hessian-vector-product fixtures of tests/t_hvp.c.

Run with Debian's PyTorch (python3-torch, 1.13):
    /usr/bin/python3 tests/make_hvp_fixtures.py
It writes tests/data/hvp/mlp_bn_eval.txt and cnn_NORM.txt (next to this
script); `make check` reads them from C and needs neither Python nor
PyTorch.

The networks are normbench's mlp (widths 5 4, tanh, batch norm before each
activation, on 6 inputs, 3 classes) and cnn (its fixed layers on 1x4x4
inputs, relu, 3 classes) with each norm type after every conv and the
hidden linear layer, as workloads.md: none (the convs and linear layers
then have biases), batch in evaluation mode (running statistics: bn_eval)
and with the batch's statistics (bn_batch: Sync-free training mode, what
hessian_mode = probe uses), layer (G = 1), group (G = 4 on 16 channels, 8
on 32 and on 128 features) and instance (G = C; the hidden linear layer
then has no norm and a bias); mean softmax cross-entropy.  Parameters, running statistics, inputs and the
direction v are not stored: both sides draw them from the same integer
hash (gen() below; its C twin is in t_hvp.c), rounded to float32, in
normbench's parameter-arena order, which is the order of the blocks listed
here and of PyTorch's parameters:
    weight (conv/linear): (2u - 1) / sqrt(fan_in)     bias: 0.1 (2u - 1)
    gamma: 1 + 0.5 (2u - 1)    beta: 0.3 (2u - 1)
    running_mean: 0.2 (2u - 1)    running_var: 0.5 + u
    x: 2u - 1    labels: k mod classes    v: 2u - 1
with u = gen(seed, k) in [0, 1), k the element's index in its arena
(parameters, state, inputs, direction: seeds 1, 2, 3, 4).  The model runs in
float64 on those float32 values; torch.autograd.functional.hvp gives H v
(double backward, as PyHessian).

File format (as tests/data/norm): '#' comment lines, then records
    NAME COUNT
    v1 v2 ... (COUNT numbers)
Records: shape (N C H W), classes, blocks (the parameter blocks' sizes in
arena order), loss, gv (grad . v), vhv (v^T H v), block_sum and
block_norm (per block: the sum and the l2 norm of H v over it), idx (every
parameter index of the mlp, every 37th of the cnn) and hv_idx (H v there).
"""

import math
import os

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "hvp")
M = 0xFFFFFFFF


def gen(seed, k):
    """u in [0, 1) from (seed, k): a 32-bit hash (lowbias32)."""
    x = (seed * 0x9E3779B9 + k) & M
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M
    x ^= x >> 15
    x = (x * 0x846CA68B) & M
    x ^= x >> 16
    return x / 4294967296.0


def f32(v):
    return float(torch.tensor(v, dtype=torch.float32))


def draw(seed, k0, n, fn):
    return torch.tensor([f32(fn(gen(seed, k0 + i))) for i in range(n)],
                        dtype=torch.float64)


def fmt(vals):
    lines = []
    for i in range(0, len(vals), 6):
        lines.append(" ".join("%.17g" % v for v in vals[i:i + 6]))
    return "\n".join(lines)


def rec(f, name, vals):
    vals = [float(v) for v in vals]
    f.write("%s %d\n%s\n" % (name, len(vals), fmt(vals)))


class Net:
    """Blocks (name, shape, kind, fan_in) in arena order, and a forward."""

    def __init__(self, arch, n, c, h, w, classes, norm="batch", batch_stats=False):
        self.arch, self.shape, self.classes = arch, (n, c, h, w), classes
        self.norm_type, self.batch_stats = norm, batch_stats
        self.blocks = []   # (kind, shape, fan_in)
        self.state = []    # (kind, count) per norm: running mean, var
        self.layers = []   # ops in order, each referring to block indices
        if arch == "mlp":
            d = c * h * w
            for width in (5, 4):
                self.linear(d, width, bias=False)
                self.norm(width)
                self.layers.append(("tanh",))
                d = width
            self.linear(d, classes, bias=True)
        else:
            ch, hh = c, h
            for out in (16, 16, "pool", 32, 32, "pool"):
                if out == "pool":
                    self.layers.append(("pool",))
                    hh //= 2
                    continue
                self.conv(ch, out, bias=norm == "none")
                if norm != "none":
                    self.norm(out)
                self.layers.append(("relu",))
                ch = out
            self.layers.append(("flatten",))
            lnorm = norm not in ("none", "instance")
            self.linear(ch * hh * hh, 128, bias=not lnorm)
            if lnorm:
                self.norm(128)
            self.layers.append(("relu",))
            self.linear(128, classes, bias=True)

    def add(self, kind, shape, fan_in=0):
        self.blocks.append((kind, shape, fan_in))
        return len(self.blocks) - 1

    def linear(self, i, o, bias):
        w = self.add("weight", (o, i), i)
        b = self.add("bias", (o,)) if bias else None
        self.layers.append(("linear", w, b))

    def conv(self, i, o, bias=False):
        w = self.add("weight", (o, i, 3, 3), i * 9)
        b = self.add("bias", (o,)) if bias else None
        self.layers.append(("conv", w, b))

    def norm(self, ch):
        g = self.add("gamma", (ch,))
        b = self.add("beta", (ch,))
        if self.norm_type == "batch":
            self.state.append(ch)
            self.layers.append(("bn", g, b, len(self.state) - 1))
            return
        # normbench's nb_norm_default_groups: min(C / 4, 8), down to a divisor
        groups = {"layer": 1, "instance": ch}.get(self.norm_type)
        if groups is None:
            groups = max(1, min(ch // 4, 8))
            while ch % groups:
                groups -= 1
        self.layers.append(("gn", g, b, groups))

    def params(self):
        out, k = [], 0
        scale = {
            "weight": lambda u, fi: (2 * u - 1) / math.sqrt(fi),
            "bias": lambda u, fi: 0.1 * (2 * u - 1),
            "gamma": lambda u, fi: 1 + 0.5 * (2 * u - 1),
            "beta": lambda u, fi: 0.3 * (2 * u - 1),
        }
        for kind, shape, fi in self.blocks:
            n = math.prod(shape)
            out.append(draw(1, k, n, lambda u: scale[kind](u, fi)))
            k += n
        return out

    def running(self):
        out, k = [], 0
        for ch in self.state:
            # the state arena: running_mean, running_var, num_batches_tracked
            rm = draw(2, k, ch, lambda u: 0.2 * (2 * u - 1))
            rv = draw(2, k + ch, ch, lambda u: 0.5 + u)
            out.append((rm, rv))
            k += 2 * ch + 1
        return out

    def loss(self, flat, x, y, run):
        ps, k = [], 0
        for kind, shape, fi in self.blocks:
            n = math.prod(shape)
            ps.append(flat[k:k + n].reshape(shape))
            k += n
        a = x
        for op in self.layers:
            if op[0] == "linear":
                a = F.linear(a.reshape(a.shape[0], -1), ps[op[1]],
                             ps[op[2]] if op[2] is not None else None)
            elif op[0] == "conv":
                a = F.conv2d(a, ps[op[1]], ps[op[2]] if op[2] is not None else None, 1, 1)
            elif op[0] == "bn":
                if self.batch_stats:
                    a = F.batch_norm(a, None, None, ps[op[1]], ps[op[2]], True, 0.1, 1e-5)
                else:
                    rm, rv = run[op[3]]
                    a = F.batch_norm(a, rm, rv, ps[op[1]], ps[op[2]], False, 0.1, 1e-5)
            elif op[0] == "gn":
                a = F.group_norm(a, op[3], ps[op[1]], ps[op[2]], 1e-5)
            elif op[0] == "tanh":
                a = torch.tanh(a)
            elif op[0] == "relu":
                a = torch.relu(a)
            elif op[0] == "pool":
                a = F.max_pool2d(a, 2, 2)
            elif op[0] == "flatten":
                a = a.reshape(a.shape[0], -1)
        return F.cross_entropy(a, y)


def write(name, arch, n, c, h, w, classes, note, norm="batch", batch_stats=False):
    net = Net(arch, n, c, h, w, classes, norm, batch_stats)
    theta = torch.cat([p.reshape(-1) for p in net.params()])
    run = net.running()
    x = draw(3, 0, n * c * h * w, lambda u: 2 * u - 1).reshape(n, c, h, w)
    if arch == "mlp":
        x = x.reshape(n, c * h * w)
    y = torch.tensor([k % classes for k in range(n)])
    v = draw(4, 0, theta.numel(), lambda u: 2 * u - 1)

    def f(t):
        return net.loss(t, x, y, run)

    loss = f(theta)
    t = theta.clone().requires_grad_(True)
    g = torch.autograd.grad(f(t), t)[0]
    _, hv = torch.autograd.functional.hvp(f, theta, v)
    sizes = [math.prod(s) for _, s, _ in net.blocks]
    bsum, bnorm, k = [], [], 0
    for s in sizes:
        bsum.append(float(hv[k:k + s].sum()))
        bnorm.append(float(hv[k:k + s].norm()))
        k += s
    idx = list(range(0, theta.numel(), 1 if theta.numel() <= 200 else 37))
    path = os.path.join(OUT, name)
    with open(path, "w") as fp:
        fp.write("# tests/data/hvp/%s - written by tests/make_hvp_fixtures.py\n" % name)
        fp.write("# PyTorch %s: %s, float64, torch.autograd.functional.hvp\n"
                 % (torch.__version__, note))
        rec(fp, "shape", [n, c, h, w])
        rec(fp, "classes", [classes])
        rec(fp, "blocks", sizes)
        rec(fp, "loss", [float(loss)])
        rec(fp, "gv", [float(g @ v)])
        rec(fp, "vhv", [float(v @ hv)])
        rec(fp, "block_sum", bsum)
        rec(fp, "block_norm", bnorm)
        rec(fp, "idx", idx)
        rec(fp, "hv_idx", [float(hv[i]) for i in idx])
    print("wrote %s (%d parameters)" % (path, theta.numel()))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_default_dtype(torch.float64)
    write("mlp_bn_eval.txt", "mlp", 5, 6, 1, 1, 3,
          "mlp 6-5-4-3, tanh, BatchNorm1d before each tanh, eval")
    write("cnn_bn_eval.txt", "cnn", 2, 1, 4, 4, 3,
          "normbench's cnn on 1x4x4, relu, BatchNorm2d/1d after each conv and "
          "the hidden linear, eval")
    write("cnn_bn_batch.txt", "cnn", 4, 1, 4, 4, 3,
          "normbench's cnn on 1x4x4, relu, BatchNorm2d/1d after each conv and "
          "the hidden linear, with the batch's statistics", "batch", True)
    write("cnn_none.txt", "cnn", 2, 1, 4, 4, 3,
          "normbench's cnn on 1x4x4, relu, no norm (conv and linear biases)", "none")
    for norm, what in (("layer", "GroupNorm(1, C)"), ("group", "GroupNorm(G, C), G = 4, 8, 8"),
                       ("instance", "GroupNorm(C, C) after each conv, none on the linear")):
        write("cnn_%s.txt" % norm, "cnn", 2, 1, 4, 4, 3,
              "normbench's cnn on 1x4x4, relu, %s norm: %s" % (norm, what), norm)


if __name__ == "__main__":
    main()
