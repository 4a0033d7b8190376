#!/usr/bin/env python3
"""tests/fuzz/make_seeds.py [NORMBENCH] - writes the fuzzers' seed corpora into
tests/fuzz/corpus/TARGET/ (the committed files; run from anywhere, with
python3 and its standard library only).  The layouts are the targets'
(see each tests/fuzz/fuzz_TARGET.c).  Files named oom-* or crash-* in
the corpora are not written here: they are inputs the fuzzers found (each
has a regression test in make check) kept as seeds.  With the path of a
built normbench, also writes ini/defaults.ini (`normbench config --help`,
a valid config with every key).  The dictionaries tests/fuzz/*.dict are
edited by hand."""
import glob
import os
import re
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- ini: the shipped configs, and an include through the split line ----
for path in sorted(glob.glob(os.path.join(TOP, "configs", "*.ini"))):
    with open(path, "rb") as f:
        put("ini", os.path.basename(path), f.read())
put("ini", "include.ini",
    "; main.ini includes sub.ini (the text after the #-- line)\n"
    "include = sub.ini\n[train]\nbatch = 8, 16\n#--\n"
    "[experiment]\nname = inc\nseeds = 0..2\nzip = lr, batch\n"
    "exclude = norm.type=group & batch=8\n"
    "[optim]\nlr = log(0.01, 0.1, 2)\n[norm]\ntype = batch, group\n"
    "[data]\nsource = blobs\n")
put("ini", "syntax.ini",
    "\ufeff# BOM, CRLF, continuation, inline comments\r\n[model]\r\n"
    "widths = 8 ; inline\r\n  8\r\n[norm]\ntype = lp\n[optim]\n"
    "lr = lin(0.1, 0.3, 3)\n")
if len(sys.argv) > 1:
    put("ini", "defaults.ini", subprocess.run(
        [sys.argv[1], "config", "--help"], check=True,
        stdout=subprocess.PIPE).stdout)
put("ini", "cycle.ini", "include = sub.ini\n#--\ninclude = main.ini\n")

# ---- idx: small valid pairs, plain and gzip, classes given or inferred --
def idx_images(n, h, w, seed):
    px = bytes((seed * 37 + i * 11) & 255 for i in range(n * h * w))
    return struct.pack(">IIII", 0x803, n, h, w) + px


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def idx_input(flags, classes, cut, labels, images):
    return bytes([flags, classes, cut]) + struct.pack("<H", len(labels)) + \
        labels + images


lab = idx_labels([0, 1, 2])
img = idx_images(3, 2, 2, 1)
put("idx", "plain", idx_input(0, 0, 0, lab, img))
put("idx", "plain-classes10", idx_input(0, 10, 0, lab, img))
put("idx", "gz-both", idx_input(3, 0, 0, lab, img))
put("idx", "gz-images-cut", idx_input(1, 3, 4, lab, img))
put("idx", "mnist-like", idx_input(2, 10, 0, idx_labels([7, 2, 1, 0, 4]),
                                   idx_images(5, 7, 5, 3)))

# ---- cifar: one record per file (a label and 3072 pixel bytes) ---------
def record(label):
    return bytes([label]) + bytes((label * 13 + i) & 255 if i % 97 == 0 else 0
                                  for i in range(3072))


def cifar_input(flags, cut, files):
    head = bytes([flags, cut]) + b"".join(struct.pack("<H", len(f))
                                          for f in files[:5])
    return head + b"".join(files)


six = [record(i) for i in range(6)]
put("cifar", "flat", cifar_input(0, 0, six))
put("cifar", "nested-gz", cifar_input(64 | 0x21, 0, six))
put("cifar", "two-records", cifar_input(0, 0, [record(1) + record(9)] +
                                        six[1:]))
put("cifar", "no-test", cifar_input(128, 0, six[:5]))

# ---- check: the experiments' statements, and the t_check forms ---------
n = 0
for path in sorted(glob.glob(os.path.join(TOP, "experiments", "*.ini"))):
    with open(path) as f:
        text = f.read()
    for m in re.finditer(r"^expect = (.*(?:\n[ \t].*)*)", text, re.M):
        stmt = " ".join(s.strip() for s in m.group(1).split("\n"))
        n += 1
        put("check", "exp%02d" % n, stmt)
for i, stmt in enumerate([
        "count(final_test_error, norm.type=none) == 2",
        "2 * count(final_test_error, norm.type=none) - 1 == 0",
        "abs(1 - count(final_test_error)) > 0",
        "at(final_test_error, norm.type=none, bs=8) > 0",
        "median(final_test_error, batch=32) > 0",
        "range(final_test_error, norm.type=none|group) > 0",
        "std(final_test_error, norm.type=none) >= 0",
        "count(final_test_error, bs!=2..16) > 0",
        "count(final_test_error, bs>=8, lr=0.1) > 0",
        "count(test_acc, norm.type=none, bs=32, epoch<=1) > 0",
        "rankcorr(test_error, step, norm.type=none, bs=8) < 0",
        "mean(landscape.loss_range, norm.type=batch) / "
        "mean(landscape.loss_range, norm.type=none) < 1",
        "!at(final_test_error, norm.type=batch, bs=8) - "
        "at(final_test_error, norm.type=none, bs=8) >= 1",
        "norm.type=batch, bs=32, epoch<=1"]):
    put("check", "form%02d" % i, stmt)
