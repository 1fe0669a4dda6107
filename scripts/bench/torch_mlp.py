#!/usr/bin/python3
"""The PyTorch reference for the trainer benchmark: the same MLP
(784-128-64-10), batch, SGD with momentum and standardisation, on the same
Fashion-MNIST files, one thread per process.  Run directly for one process,
or with --ddp N for DistributedDataParallel (gloo) over N processes.
Prints one JSON object: samples_per_s, test accuracy, epochs, processes."""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

D = os.environ.get("TY_FASHION_DIR", "/usr/share/datasets/fashion-mnist")


def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xff
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load():
    xtr = idx(f"{D}/train-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255
    ytr = idx(f"{D}/train-labels-idx1-ubyte.gz").astype(np.int64)
    xte = idx(f"{D}/t10k-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255
    yte = idx(f"{D}/t10k-labels-idx1-ubyte.gz").astype(np.int64)
    mean, std = xtr.mean(0), xtr.std(0)
    std[std < 1e-6] = 1
    return ((xtr - mean) / std, ytr, (xte - mean) / std, yte)


def train(rank, world, args, out):
    torch.set_num_threads(1)
    if world > 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = (torch.from_numpy(a) for a in load())
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10))
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    n = xtr.shape[0]
    per = args.batch // world
    g = torch.Generator().manual_seed(args.seed)
    samples, t_train = 0, 0.0
    for epoch in range(args.epochs):
        perm = torch.randperm(n, generator=g)  # same on every rank
        steps = n // args.batch
        t0 = time.perf_counter()
        for s in range(steps):
            idxs = perm[s * args.batch + rank * per: s * args.batch + (rank + 1) * per]
            opt.zero_grad()
            loss = loss_fn(model(xtr[idxs]), ytr[idxs])
            loss.backward()
            opt.step()
        t_train += time.perf_counter() - t0
        samples += steps * args.batch
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    if rank == 0:
        out.put({"samples_per_s": samples / t_train, "accuracy": acc, "epochs": args.epochs,
                 "processes": world})
    if world > 1:
        dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ddp", type=int, default=1)
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    if args.ddp == 1:
        train(0, 1, args, q)
    else:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])
        mp.spawn(train, args=(args.ddp, args, q), nprocs=args.ddp, join=True)
    print(json.dumps(q.get(timeout=60)))


if __name__ == "__main__":
    sys.exit(main())
