"""Benchmark: one training step of the sequence model fine-tuned end to end (`rosa.finetune.SeqToCells`) at the published
Enformer's size: dim 1,536, 11 transformer layers, 196,608-bp windows (random weights: the shapes, FLOPs and memory are
the published model's), a head of `--types` cell types on the TSS bin.

Each way is timed side by side in one run: LoRA adapters of rank `--rank` on the attention (peft, the trunk frozen)
against every weight trained; both with gradient checkpointing of the trunk, AdamW, `--batch` windows a step (half of
them read reverse-complemented, as in training). On CUDA under bf16 autocast with peak GPU memory; on the CPU in
float32 with the process's peak resident memory after each way (it only grows: the first way's figure is its own).
On CUDA the first step of each way is a warm-up and is not timed (on the CPU every step is timed: one step takes minutes).

Run: python benchmarks/finetune_throughput.py [--device cpu|cuda] [--dim 1536] [--steps N] [--batch N] [--ways lora full]
GPU: python benchmarks/finetune_throughput.py --device cuda --batch 4 --steps 10
"""
import argparse, contextlib, json, platform, resource, statistics, time
import torch
from enformer_pytorch import Enformer
from rosa.enformer import PUBLISHED_SHAPE, fast_pools, _tf_gamma
from rosa.finetune import SeqToCells, add_lora

def network(way, dim, rank, types, window, device, seed=0):
    torch.manual_seed(seed)
    shape = dict(PUBLISHED_SHAPE, dim=dim)
    trunk = fast_pools(Enformer.from_hparams(**shape))
    if window == 196_608: _tf_gamma(trunk)   # the published positional basis is defined for 1,536 tokens only
    if way == 'lora': add_lora(trunk, rank)
    return SeqToCells(trunk, types, window, checkpointing=True).to(device).train()

def peak(device):
    if device == 'cuda': return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # KiB on Linux

def sync(device):
    if device == 'cuda': torch.cuda.synchronize()

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--dim', type=int, default=1536, help='trunk width (published: 1536)')
    p.add_argument('--window', type=int, default=196_608)
    p.add_argument('--rank', type=int, default=8)
    p.add_argument('--types', type=int, default=64, help='cell types (outputs of the head)')
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--steps', type=int, help='timed steps per way (default 1 on cpu, 10 on cuda)')
    p.add_argument('--ways', nargs='+', default=['lora', 'full'], choices=('lora', 'full'))
    p.add_argument('--out', help='write the rows as JSON here')
    a = p.parse_args()
    steps = a.steps or (1 if a.device == 'cpu' else 10)
    amp = torch.autocast('cuda', dtype=torch.bfloat16) if a.device == 'cuda' else contextlib.nullcontext()
    rows = []
    for way in a.ways:
        if a.device == 'cuda': torch.cuda.reset_peak_memory_stats()
        net = network(way, a.dim, a.rank, a.types, a.window, a.device)
        train = [q for q in net.parameters() if q.requires_grad]
        opt = torch.optim.AdamW(train, 1e-4)
        g = torch.Generator().manual_seed(0)
        x = torch.nn.functional.one_hot(torch.randint(0, 4, (a.batch, a.window), generator=g), 4).float().to(a.device)
        rc = (torch.arange(a.batch) % 2 == 1).to(a.device); y = torch.randn(a.batch, a.types, generator=g).to(a.device)
        def step():
            with amp: loss = ((net(x, rc).float() - y) ** 2).mean()
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        times = []
        warm = int(a.device == 'cuda')
        for i in range(steps + warm):
            sync(a.device); t = time.perf_counter(); step(); sync(a.device)
            if i >= warm: times.append(time.perf_counter() - t)
        s = statistics.median(times)
        rows.append(dict(way=way, trained=sum(q.numel() for q in train), weights=sum(q.numel() for q in net.parameters()),
                         seconds_per_step=round(s, 2), windows_per_s=round(a.batch / s, 3), peak_gib=round(peak(a.device), 2)))
        print(rows[-1], flush=True)
        del net, opt, train
    where = (f'{torch.cuda.get_device_name()}, bf16 autocast' if a.device == 'cuda'
             else f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, float32')
    print(f'\n{where}; dim {a.dim}, {a.window:,}-bp windows, batch {a.batch}, {a.types} cell types, gradient checkpointing, '
          f'median of {steps} step(s)' + (' after a warm-up' if a.device == 'cuda' else '') + '\n')
    print('| way | trained weights | all weights | s/step | windows/s | peak memory (GiB) |\n|---|---:|---:|---:|---:|---:|')
    for r in rows:
        print(f"| {r['way']} | {r['trained']:,} | {r['weights']:,} | {r['seconds_per_step']} | {r['windows_per_s']} | {r['peak_gib']} |")
    if len(rows) == 2: print(f"\nLoRA / full: {rows[1]['seconds_per_step'] / rows[0]['seconds_per_step']:.2f}x steps/s")
    if a.out: json.dump(rows, open(a.out, 'w'), indent=1)
