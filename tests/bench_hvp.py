#!/usr/bin/python3
"""Hessian-vector products: normbench against PyTorch's double backward.

A benchmark, not a test (`make check` never runs it).  Run from the source
tree after building, with Debian's PyTorch (python3-torch):

    /usr/bin/python3 tests/bench_hvp.py [--normbench build/normbench]
        [--norm batch] [--samples 1000] [--windows 3] [--max-iter 10]

Both sides use one thread and the `cnn` of workloads.md in evaluation mode
(batch norm with running statistics, as PyHessian's model.eval()) on
--samples images.  Windows alternate the two sides (A B, then B A), so a
change in the machine's load falls on both; the ratios are per window.

normbench: `normbench run` of a six-step config (batch = --samples) whose
Hessian probe runs at the end with exact products (Pearlmutter's
R-operator), at most --max-iter products for lambda_max and as many for
the trace.  From the run's files: the probe's seconds over its products
(lambda_iters + trace_iters; the seconds also hold one loss pass), and a
training step of the same samples: timing.csv's time from step 2 to step
6 over 4 (setup and the first steps left out; it holds two evaluations
of 10 test images).

PyTorch: as PyHessian (hessian.py, one batch): the gradient with
create_graph=True once, then each product a backward of it with
retain_graph=True; also a product with the graph rebuilt each time
(torch.autograd.functional.hvp's cost) and a training step (forward,
backward, SGD with momentum) of the same samples.

Prints per-window times and the median ratios normbench / PyTorch.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

CONFIG = """[experiment]
name = hvpbench
seeds = 0
[model]
arch = cnn
[norm]
type = {norm}
[train]
batch = {samples}
max_steps = 6
eval_every = 2
eval_every_epoch = false
eval_samples = 10
[probe]
hessian = true
hessian_every = 0
hessian_samples = {samples}
hessian_mode = eval
hessian_hvp = exact
hessian_max_iter = {max_iter}
"""


def cnn(norm):
    """workloads.md's cnn; a conv or linear before a norm has no bias."""

    def nrm(c, conv):
        if norm == "none":
            return nn.Identity()
        if norm == "batch":
            return nn.BatchNorm2d(c) if conv else nn.BatchNorm1d(c)
        if norm == "group":
            return nn.GroupNorm(4 if c == 16 else 8, c)
        if norm == "layer":
            return nn.GroupNorm(1, c)
        raise SystemExit("bench_hvp.py: --norm must be none, batch, group or layer")

    bias = norm == "none"
    layers = []
    for cin, cout, pool in ((1, 16, 0), (16, 16, 1), (16, 32, 0), (32, 32, 1)):
        layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=bias), nrm(cout, True), nn.ReLU()]
        if pool:
            layers.append(nn.MaxPool2d(2))
    layers += [nn.Flatten(), nn.Linear(1568, 128, bias=bias), nrm(128, False), nn.ReLU(),
               nn.Linear(128, 10)]
    return nn.Sequential(*layers)


def timed(fn, reps):
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def torch_side(norm, samples, products):
    torch.manual_seed(0)
    model = cnn(norm)
    x = torch.randn(samples, 1, 28, 28)
    y = torch.randint(0, 10, (samples,))
    params = [p for p in model.parameters() if p.requires_grad]
    vs = [torch.randn_like(p) for p in params]

    # a training step of the same samples
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    step()
    t_step = timed(step, 2)

    model.eval()

    # PyHessian: the gradient graph once, each product a backward of it
    t0 = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    t_graph = time.perf_counter() - t0

    def product():
        torch.autograd.grad(grads, params, grad_outputs=vs, retain_graph=True)

    t_hvp = timed(product, products)

    # the graph rebuilt for every product
    def product_fresh():
        loss = F.cross_entropy(model(x), y)
        g = torch.autograd.grad(loss, params, create_graph=True)
        torch.autograd.grad(g, params, grad_outputs=vs)

    t_fresh = timed(product_fresh, max(1, products // 4))
    return {"step": t_step, "graph": t_graph, "hvp": t_hvp, "hvp_fresh": t_fresh}


def normbench_side(nb, norm, samples, max_iter, tmp):
    w = tempfile.mkdtemp(dir=tmp)
    cfg = os.path.join(w, "hvp.ini")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(norm=norm, samples=samples, max_iter=max_iter))
    subprocess.run([nb, "run", cfg, "--results-dir", w, "-q", "--progress", "none"],
                   check=True, stdout=subprocess.DEVNULL)
    run = next(os.path.join(w, "hvpbench", d) for d in os.listdir(os.path.join(w, "hvpbench"))
               if re.fullmatch(r"[0-9a-f]{16}", d))
    stats = {}
    with open(os.path.join(run, "probes.csv")) as f:
        next(f)
        for line in f:
            cells = line.rstrip("\n").split(",")
            if cells[1] == "hessian":
                stats[cells[6]] = float(cells[7])
    with open(os.path.join(run, "timing.csv")) as f:
        rows = [r.split(",") for r in f.read().split()[1:]]
    steps = int(rows[-1][0]) - int(rows[0][0])
    secs = float(rows[-1][1]) - float(rows[0][1])
    n = int(stats["lambda_iters"] + stats["trace_iters"])
    return {"step": secs / steps, "hvp": stats["seconds"] / n, "products": n,
            "exact": stats["hvp_exact"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--normbench", default="build/normbench")
    ap.add_argument("--norm", default="batch")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--max-iter", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(1)
    env = os.environ.get("OPENBLAS_CORETYPE", "unset")
    print(f"# bench_hvp: cnn, norm {a.norm}, {a.samples} samples, eval mode, 1 thread; "
          f"PyTorch {torch.__version__}; OPENBLAS_CORETYPE {env}")
    print("# seconds per product (normbench: exact R-op; PyTorch: PyHessian's retained-graph "
          "double backward, and rebuilt each time) and per training step of the same samples")
    print(f"{'window':>6} {'nb hvp':>8} {'nb step':>8} {'pt hvp':>8} {'pt fresh':>8} "
          f"{'pt graph':>8} {'pt step':>8} {'hvp ratio':>9} {'hvp/step nb':>11} "
          f"{'hvp/step pt':>11}")
    ratios, fresh, nbrel, ptrel = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for w in range(a.windows):
            order = (0, 1) if w % 2 == 0 else (1, 0)
            for side in order:
                if side == 0:
                    nb = normbench_side(a.normbench, a.norm, a.samples, a.max_iter, tmp)
                    if nb["exact"] != 1:
                        sys.exit("bench_hvp.py: normbench did not use exact products")
                else:
                    pt = torch_side(a.norm, a.samples, 2 * a.max_iter)
            ratios.append(nb["hvp"] / pt["hvp"])
            fresh.append(nb["hvp"] / pt["hvp_fresh"])
            nbrel.append(nb["hvp"] / nb["step"])
            ptrel.append(pt["hvp"] / pt["step"])
            print(f"{w:>6} {nb['hvp']:8.3f} {nb['step']:8.3f} {pt['hvp']:8.3f} "
                  f"{pt['hvp_fresh']:8.3f} {pt['graph']:8.3f} {pt['step']:8.3f} "
                  f"{ratios[-1]:9.2f} {nbrel[-1]:11.2f} {ptrel[-1]:11.2f}", flush=True)
    med = statistics.median
    print(f"median over {a.windows} windows: normbench / PyTorch per product "
          f"{med(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f}); against a product "
          f"with the graph rebuilt {med(fresh):.2f}; a product costs {med(nbrel):.2f} training "
          f"steps in normbench, {med(ptrel):.2f} in PyTorch")


if __name__ == "__main__":
    main()
