#!/usr/bin/python3
"""The PyTorch GPU reference for the trainer's CUDA benchmark: the same MLP
(784-128-64-10), batch 256, SGD (momentum 0.9), standardised Fashion-MNIST
held on the GPU, run eagerly or with the whole training step (forward,
backward, optimizer) captured in one CUDA graph and replayed.  samples/s is
timed over epochs 2..N (the first one warms up: cuBLAS heuristics, capture).
Prints one JSON object.

Usage: torch_mlp_gpu.py --data DIR [--epochs N] [--graph]"""
import argparse
import json
import sys
import time

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import torch_mlp  # noqa: E402  (the IDX reader and standardisation)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=torch_mlp.D)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--graph", action="store_true")
    a = ap.parse_args()
    torch_mlp.D = a.data
    torch.manual_seed(1)
    torch.backends.cuda.matmul.allow_tf32 = False  # FP32, as the trainer
    dev = torch.device("cuda")
    xtr, ytr, xte, yte = (torch.from_numpy(v).to(dev) for v in torch_mlp.load())
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10)).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    b = a.batch
    sx, sy = xtr[:b].clone(), ytr[:b].clone()

    def step():
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(sx), sy)
        loss.backward()
        opt.step()
        return loss

    graph = None
    if a.graph:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
    n = xtr.shape[0]
    steps = n // b
    g = torch.Generator(device=dev).manual_seed(1)
    t_train, samples = 0.0, 0
    for epoch in range(a.epochs):
        perm = torch.randperm(n, device=dev, generator=g)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for st in range(steps):
            idx = perm[st * b:(st + 1) * b]
            torch.index_select(xtr, 0, idx, out=sx)
            torch.index_select(ytr, 0, idx, out=sy)
            if graph is not None:
                graph.replay()
            else:
                step()
        torch.cuda.synchronize()
        if epoch > 0 or a.epochs == 1:
            t_train += time.perf_counter() - t0
            samples += steps * b
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    print(json.dumps({"samples_per_s": samples / t_train, "accuracy": acc, "epochs": a.epochs,
                      "graph": bool(a.graph), "torch": torch.__version__,
                      "gpu": torch.cuda.get_device_name(0)}))


if __name__ == "__main__":
    sys.exit(main())
