"""An unchanged PyTorch DDP script: torch.distributed with init_method
env:// (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE from the environment,
as torchrun would set them; a Trainyard `kind: mpi` step sets them for
every rank).  It fits a small classifier on synthetic data, each rank on
its own shard, and rank 0 saves the model.  gloo on CPUs, nccl on GPUs."""
import argparse
import hashlib
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--out", default="model.pt")
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo", init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local}" if cuda else "cpu")
    print(f"rank {rank} of {world} (local {local} of {os.environ.get('LOCAL_WORLD_SIZE')}) "
          f"on {dev}, rendezvous {os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}, "
          f"sockets on {os.environ.get('GLOO_SOCKET_IFNAME', 'the host name')}", flush=True)

    torch.manual_seed(0)  # the same data everywhere; each rank takes its shard
    x = torch.randn(4096, 16)
    y = (x[:, :4].sum(dim=1) > 0).long()
    xs, ys = x[rank::world].to(dev), y[rank::world].to(dev)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    ddp = DistributedDataParallel(model.to(dev), device_ids=[local] if cuda else None)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    report = os.environ.get("TRAINYARD_REPORT")
    for epoch in range(1, args.epochs + 1):
        for i in range(0, len(xs), 64):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(ddp(xs[i:i + 64]), ys[i:i + 64])
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = (ddp(xs).argmax(dim=1) == ys).float().mean()
        dist.all_reduce(acc)
        acc = acc.item() / world
        if rank == 0 and report:
            with open(report, "a") as f:
                f.write(f"metric accuracy {acc:.4f} {epoch}\n")
                f.write(f"progress {epoch / args.epochs:.3f} epoch {epoch}/{args.epochs}\n")
    # DDP keeps the replicas equal: every rank prints the same digest
    digest = hashlib.sha256(b"".join(p.detach().cpu().numpy().tobytes()
                                     for p in model.parameters())).hexdigest()[:16]
    print(f"rank {rank} parameters {digest} accuracy {acc:.4f}", flush=True)
    if rank == 0:
        torch.save(model.state_dict(), args.out)
    dist.barrier()  # no rank leaves while another still talks to it
    dist.destroy_process_group()
    # torch 1.13 (Debian's) can deadlock at exit: the DDP reducer's
    # destructor joins a gloo thread that waits for the GIL the destructor
    # holds (seen one run in five across two workers).  Nothing is left to
    # do: leave without running the destructors.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
