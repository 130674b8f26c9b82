"""Benchmark: training throughput of the expression transformer with each rosa encoder ('standard', 'perceiver',
'performer') against the same model with a plain `torch.nn.TransformerEncoder` of the same width and depth as encoder.

At the original project's size (d_model 320 = 10 heads x 32, 4 encoder blocks, d_ff 1280), for each context length,
times training steps (forward, backward, AdamW) side by side in one run, one step of each encoder in turn, warm-up
steps excluded, bf16 autocast on CUDA; ms/step is the median over the timed steps.
Prints a markdown table of context tokens per second per encoder and the ratio to the reference (above 1 is faster).
On CUDA it adds each step's peak GPU memory, which counts the weights and optimiser states of all four models (resident
side by side) as well.

Run: python benchmarks/train_throughput.py [--device cpu|cuda] [--steps N] [--batch N] [--context 1024 4096] [--out results.json]
"""
import argparse, contextlib, dataclasses, json, platform, statistics, time
import torch
from torch import nn
from rosa.transformer import ExpressionTransformer, TransformerConfig, ENCODERS

class TorchEncoder(nn.Module):
    "The reference: torch's own pre-norm GELU encoder, built from the same config."
    def __init__(self, cfg:TransformerConfig):
        super().__init__()
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout, activation='gelu',
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
    def forward(self, x): return self.layers(x)

def build(encoder, cfg):
    "An `ExpressionTransformer` with a rosa encoder, or with `TorchEncoder` for `encoder='torch'`: embedding, decoder and head are the same."
    model = ExpressionTransformer(dataclasses.replace(cfg, encoder='standard' if encoder == 'torch' else encoder))
    if encoder == 'torch': model.encoder = TorchEncoder(model.cfg)
    return model

def sync(device):
    if device == 'cuda': torch.cuda.synchronize()

def trainer(model, batch, n_ctx, n_tgt, d_emb, device):
    "One training step of `model` on fixed random cells (the cost does not depend on the values), as a function."
    g = torch.Generator(device).manual_seed(0)
    ce, cv = torch.randn(batch, n_ctx, d_emb, generator=g, device=device), torch.rand(batch, n_ctx, generator=g, device=device)
    cb = torch.randint(0, model.cfg.n_bins, (batch, n_ctx), generator=g, device=device)
    qe, y = torch.randn(batch, n_tgt, d_emb, generator=g, device=device), torch.rand(batch, n_tgt, generator=g, device=device)
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    amp = torch.autocast('cuda', dtype=torch.bfloat16) if device == 'cuda' else contextlib.nullcontext()
    def step():
        with amp: loss = ((model(ce, cv, cb, qe).float() - y) ** 2).mean()
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    return step

def timed(step, device):
    sync(device); t = time.perf_counter(); step(); sync(device)
    return time.perf_counter() - t

def machine(device):
    if device == 'cuda': return f'{torch.cuda.get_device_name()}, bf16 autocast'
    return f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, float32'

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', choices=('cpu', 'cuda'), default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--steps', type=int, help='timed steps per encoder and context (default 5 on cpu, 20 on cuda)')
    p.add_argument('--warmup', type=int, help='untimed steps first (default 1 on cpu, 5 on cuda)')
    p.add_argument('--batch', type=int, help='cells a step (default 2 on cpu, 16 on cuda)')
    p.add_argument('--context', type=int, nargs='+', default=[1024, 4096], help='context genes per cell')
    p.add_argument('--targets', type=int, default=256, help='query genes per cell')
    p.add_argument('--d_emb', type=int, default=256, help='gene embedding width')
    p.add_argument('--latents', type=int, default=32, help="latent tokens of the 'perceiver' encoder")
    p.add_argument('--features', type=int, default=64, help="random features per head of the 'performer' encoder")
    p.add_argument('--threads', type=int, help='CPU threads (default: torch default)')
    p.add_argument('--out', help='write the results as JSON here')
    a = p.parse_args()
    cuda = a.device == 'cuda'
    steps, warmup, batch = a.steps or (20 if cuda else 5), a.warmup if a.warmup is not None else (5 if cuda else 1), a.batch or (16 if cuda else 2)
    if a.threads: torch.set_num_threads(a.threads)
    if cuda: torch.backends.cuda.matmul.allow_tf32 = True
    cfg = TransformerConfig(d_emb=a.d_emb, d_model=320, n_heads=10, n_layers=4, d_ff=4 * 320,
                            n_latents=a.latents, n_features=a.features)
    encoders = ['torch', *ENCODERS]
    print(f'expression transformer: d_model 320 (10 heads x 32), 4 encoder blocks, d_ff 1280, {cfg.n_dec_layers} decoder block; '
          f'{batch} cells a step, {a.targets} query genes, {a.latents} latents, {a.features} features; '
          f'{steps} timed steps after {warmup} warm-up; {machine(a.device)}; torch {torch.__version__}\n')
    print('| context genes | encoder | params | ms/step (median) | context tokens/s | vs torch reference |' + (' peak GiB |' if cuda else ''))
    print('|---:|---|---:|---:|---:|---:|' + ('---:|' if cuda else ''), flush=True)
    rows = []
    for n in a.context:
        models, steps_of, times, peak = {}, {}, {}, {}
        for enc in encoders:
            torch.manual_seed(0)
            models[enc] = build(enc, cfg).to(a.device).train()
            steps_of[enc], times[enc] = trainer(models[enc], batch, n, a.targets, a.d_emb, a.device), []
        # round robin, one step of each encoder in turn: a slow spell of the machine slows every encoder alike
        for r in range(warmup + steps):
            for enc in list(steps_of):
                if cuda: torch.cuda.reset_peak_memory_stats()
                try: t = timed(steps_of[enc], a.device)
                except torch.cuda.OutOfMemoryError: del steps_of[enc]; times[enc] = []; torch.cuda.empty_cache(); continue
                if r >= warmup: times[enc].append(t)
                if cuda: peak[enc] = max(peak.get(enc, 0), torch.cuda.max_memory_allocated() / 2**30)
        ref = None
        for enc in encoders:
            t = statistics.median(times[enc]) if times[enc] else None   # the median: a stall moves one step, not the row
            row = dict(context=n, encoder=enc, batch=batch, targets=a.targets, steps=steps, warmup=warmup,
                       params=sum(p.numel() for p in models[enc].parameters()), ms_per_step=t and 1e3 * t,
                       step_ms=[1e3 * x for x in times[enc]], tokens_per_s=t and batch * n / t, peak_gib=peak.get(enc))
            if enc == 'torch': ref = row['tokens_per_s']
            row['vs_reference'] = row['tokens_per_s'] and ref and row['tokens_per_s'] / ref
            rows.append(row)
            name = 'torch.nn.TransformerEncoder (reference)' if enc == 'torch' else enc
            cells = ([f"{row['ms_per_step']:,.1f}", f"{row['tokens_per_s']:,.0f}", f"{row['vs_reference']:.2f}x" if ref else '-']
                     if t else ['OOM', '-', '-'])
            print(f"| {n:,} | {name} | {row['params']:,} | " + ' | '.join(cells) + ' |' + (f" {row['peak_gib']:.2f} |" if cuda and t else (' - |' if cuda else '')), flush=True)
        del models, steps_of
    if a.out:
        with open(a.out, 'w') as f:
            json.dump(dict(device=a.device, machine=machine(a.device), torch=torch.__version__, rows=rows), f, indent=1)
