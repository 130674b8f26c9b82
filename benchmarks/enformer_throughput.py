"""Benchmark: Enformer gene embedding throughput, the original project's way against rosa's, side by side in one run.

- The model: the published architecture with random weights (`rosa.enformer.full_size_enformer`: the weights cannot
  be fetched here, and random weights cost the same FLOPs and time). On a CPU the side-by-side comparison runs a
  reduced width (`--dim`, default 384 on CPU) over full 196,608-bp windows, and one full-size window is timed on its
  own (`--full_window`): the README's "without a GPU" estimate.
- The genes: `--genes` genes on a random genome (a FASTA written to a temporary folder), each with `--tss` candidate
  TSSs within a few kb, as human protein-coding genes have.
- The original way: one window per candidate TSS, fp32, batch 2, no data-loader workers, the model's whole output
  (896 bins x 5,313 tracks and 896 x 3,072 embeddings) brought back to the host.
- rosa's way: `rosa.enformer.embed_tss`: one window per gene holding all its TSSs, in bf16 autocast and in fp32
  (`--precisions`; default bf16 on CUDA, both on a CPU with native bf16, fp32 on others), interleaved `--repeats` times
  in this one process (the median reported), with the bf16 outputs' agreement with fp32's (Pearson r and the largest
  difference relative to the largest value, of the embeddings and of the CAGE), `--batch`
  windows a pass, `--workers` DataLoader workers reading the FASTA into pinned memory, only the candidate bins' CAGE
  and embeddings computed past the transformer, streamed into a resumable store. Both strands are not averaged in
  either (the same work per window; rosa's `rc_average` doubles it).
- Printed: windows/s and genes/s of each, the ratios, the FLOPs of one window from torch's FlopCounterMode (counted on
  the meta device: nothing is computed), and the fraction of the bf16 peak (`--peak_tflops`, H200 dense: 989) reached.

Run from the repository root:
    python benchmarks/enformer_throughput.py                     # CPU: reduced width, plus one full-size window
    python benchmarks/enformer_throughput.py --genes 2 --tss 2 --batch 2 --repeats 3    # CPU: bf16 vs fp32 side by side
    python benchmarks/enformer_throughput.py --device cuda --genes 256 --batch 16 --workers 4
"""
from __future__ import annotations
import argparse, json, platform, statistics, tempfile, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from enformer_pytorch import Enformer

from rosa.enformer import PUBLISHED_SHAPE, full_size_enformer, embed_tss, fast_pools, _tf_gamma, cage_track_indices
from rosa.reference import Genome
from rosa.tss import one_hot
from rosa.store import ChunkStore, cpu_bf16

WINDOW = 196_608

def build(dim:int, device:str, seed:int=0) -> Enformer:
    "The published architecture at width `dim` (1536: the published model), random weights, in eval mode."
    if dim == PUBLISHED_SHAPE['dim']: return full_size_enformer(seed, device=device)
    torch.manual_seed(seed)
    m = Enformer.from_hparams(**{**PUBLISHED_SHAPE, 'dim': dim})
    return fast_pools(m).eval().to(device)      # TF's gamma table exists for the published width only

def window_flops(dim:int) -> float:
    "FLOPs of one 196,608-bp window through trunk and human head, counted on the meta device."
    from torch.utils.flop_counter import FlopCounterMode
    with torch.device('meta'):
        m = Enformer.from_hparams(**{**PUBLISHED_SHAPE, 'dim': dim}); _tf_gamma(m, dim == 1536).eval()
        x = torch.zeros(1, WINDOW, 4)
    with FlopCounterMode(display=False) as fc, torch.no_grad(): m(x, head='human')
    return float(fc.get_total_flops())

def random_genome(path:Path, n_genes:int, tss:int, seed:int=0) -> pd.DataFrame:
    "A random genome with `n_genes` genes 250 kb apart on one chromosome, each with `tss` candidates within 8 kb; its candidate table."
    rng = np.random.default_rng(seed); L = (n_genes + 2) * 250_000
    seq = np.array(list('ACGT'))[rng.integers(0, 4, L)]
    with open(path, 'w') as f:
        f.write('>chr1\n')
        for i in range(0, L, 100_000): f.write(''.join(seq[i:i + 100_000]) + '\n')
    rows = []
    for g in range(n_genes):
        c = (g + 1) * 250_000
        for t in sorted(rng.choice(8_000, tss, replace=False)):
            rows.append(dict(gene_key=f'ENSG{g:011d}', chrom='chr1', tss=int(c + t), strand='+', canonical=t == 0))
    return pd.DataFrame(rows)

def sync(device):
    if str(device).startswith('cuda'): torch.cuda.synchronize()

def original(model, genome, cand, device, batch=2) -> float:
    "Seconds for the original way: a window per candidate TSS, fp32, batch 2, every output to the host."
    xs = [(c, int(t)) for c, t in zip(cand.chrom, cand.tss)]
    sync(device); t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(xs), batch):
            x = torch.from_numpy(np.stack([one_hot(genome.window(c, t - t % 128, WINDOW)) for c, t in xs[i:i + batch]])).to(device)
            out, emb = model(x, head='human', return_embeddings=True)
            out.cpu().numpy(); emb.cpu().numpy()
    sync(device); return time.perf_counter() - t0

def rosas(model, fasta, cand, device, store, **kw) -> float:
    sync(device); t0 = time.perf_counter()
    embed_tss(cand, fasta, model, store, rc_average=False, progress=False, device=device, **kw)
    sync(device); return time.perf_counter() - t0

def main(a):
    device = a.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    dim = a.dim or (1536 if device.startswith('cuda') else 384)
    tmp = Path(tempfile.mkdtemp(prefix='enformer-bench-'))
    cand = random_genome(tmp/'genome.fa', a.genes, a.tss); genome = Genome(tmp/'genome.fa')
    model = build(dim, device)
    flops = window_flops(dim)
    warm = cand[cand.gene_key == cand.gene_key.iloc[0]]
    precs = a.precisions or (['bf16'] if device.startswith('cuda') else ['fp32', 'bf16'] if cpu_bf16() else ['fp32'])
    for p in precs: rosas(model, tmp/'genome.fa', warm, device, tmp/f'warm_{p}.zarr', batch_size=1, precision=p)   # warm-up
    original(model, genome, warm.iloc[:1], device, 1)
    res = dict(device=device, gpu=torch.cuda.get_device_name() if device.startswith('cuda') else None, cpu=platform.processor() or platform.machine(),
               threads=torch.get_num_threads(), dim=dim, genes=a.genes, tss_per_gene=a.tss, window_tflop=flops / 1e12)
    t_orig = original(model, genome, cand, device, batch=2)
    runs = {p: [] for p in precs}
    for r in range(a.repeats):     # alternating: a slow spell of a shared machine slows both alike
        for p in (precs if r % 2 == 0 else precs[::-1]):
            runs[p].append(rosas(model, tmp/'genome.fa', cand, device, tmp/f'rosa_{p}_{r}.zarr', batch_size=a.batch,
                                 num_workers=a.workers, precision=p))
    n_win_orig, n_win_rosa = len(cand), a.genes
    best = min(precs, key=lambda p: statistics.median(runs[p])); t_rosa = statistics.median(runs[best])
    res.update(original=dict(seconds=t_orig, windows_per_s=n_win_orig / t_orig, genes_per_s=a.genes / t_orig),
               rosa=dict(seconds=t_rosa, windows_per_s=n_win_rosa / t_rosa, genes_per_s=a.genes / t_rosa, precision=best),
               precisions={p: dict(seconds=statistics.median(runs[p]), runs=runs[p], s_per_window=statistics.median(runs[p]) / n_win_rosa)
                           for p in precs})
    if {'fp32', 'bf16'} <= set(precs):
        out = {p: ChunkStore.open(tmp/f'rosa_{p}_0.zarr') for p in ('fp32', 'bf16')}
        for k in ('emb', 'cage'):
            x, y = (np.asarray(out[p][k][...], np.float64) for p in ('fp32', 'bf16')); ok = np.isfinite(x) & np.isfinite(y)
            res['precisions'][f'bf16_vs_fp32_{k}'] = dict(r=float(np.corrcoef(x[ok], y[ok])[0, 1]),
                                                          max_rel_diff=float(np.abs(x[ok] - y[ok]).max() / np.abs(x[ok]).max()))
    res['ratio_windows'] = res['rosa']['windows_per_s'] / res['original']['windows_per_s']
    res['ratio_genes'] = res['rosa']['genes_per_s'] / res['original']['genes_per_s']
    res['rosa_tflops'] = res['rosa']['windows_per_s'] * flops / 1e12
    res['fraction_of_peak'] = res['rosa_tflops'] / a.peak_tflops
    if a.full_window and dim != 1536:      # one window of the published size, on its own
        del model; big = build(1536, device)
        one = cand.iloc[:1]
        for p in precs: rosas(big, tmp/'genome.fa', one, device, tmp/f'w0_{p}.zarr', batch_size=1, precision=p)   # warm-up: bf16 kernels are built for new shapes
        full = {p: [] for p in precs}
        for r in range(a.repeats):
            for p in (precs if r % 2 == 0 else precs[::-1]):
                full[p].append(rosas(big, tmp/'genome.fa', one, device, tmp/f'w1_{p}_{r}.zarr', batch_size=1, precision=p))
        res['full_window'] = dict(tflop=window_flops(1536) / 1e12, runs=full, seconds={p: statistics.median(t) for p, t in full.items()})
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(report(res, a))

def report(r, a) -> str:
    dev = r['gpu'] or f"CPU ({r['threads']} threads)"
    lines = [f"Enformer embedding on {dev}: dim {r['dim']} (published: 1536), 196,608-bp windows, {r['genes']} genes x {r['tss_per_gene']} TSSs, "
             f"{r['window_tflop']:.3f} TFLOP per window (FlopCounterMode)", '',
             '| way | seconds | windows/s | genes/s |', '|---|---:|---:|---:|',
             f"| original (a window per TSS, fp32, batch 2, no workers, all outputs) | {r['original']['seconds']:.1f} | {r['original']['windows_per_s']:.3f} | {r['original']['genes_per_s']:.3f} |",
             *[f"| rosa (a window per gene, batch {a.batch}, {a.workers} workers, {p}, candidate bins only; median of {len(q['runs'])}) | "
               f"{q['seconds']:.1f} | {a.genes / q['seconds']:.3f} | {a.genes / q['seconds']:.3f} |" for p, q in r['precisions'].items() if p in ('fp32', 'bf16')],
             '', f"rosa ({r['rosa']['precision']}) / original: {r['ratio_windows']:.2f}x windows/s, {r['ratio_genes']:.2f}x genes/s; "
             f"rosa reaches {r['rosa_tflops']:.2f} TFLOP/s = {100 * r['fraction_of_peak']:.2f}% of {a.peak_tflops:g} TFLOP/s"]
    q = r['precisions']
    if 'bf16_vs_fp32_emb' in q:
        lines.append(f"bf16 / fp32: {q['fp32']['seconds'] / q['bf16']['seconds']:.2f}x faster ({q['fp32']['s_per_window']:.2f} vs "
                     f"{q['bf16']['s_per_window']:.2f} s per window); bf16's embeddings r = {q['bf16_vs_fp32_emb']['r']:.5f} with fp32's "
                     f"(largest difference {q['bf16_vs_fp32_emb']['max_rel_diff']:.3f} of the largest value), CAGE r = {q['bf16_vs_fp32_cage']['r']:.5f}")
    if 'full_window' in r:
        fw = r['full_window']
        for p, t in fw['seconds'].items():
            lines.append(f"one published-size window ({fw['tflop']:.2f} TFLOP), rosa's way, {p}, one strand: {t:.1f} s "
                         f"-> 19,431 genes x 2 strands ~ {2 * 19_431 * t / 3600:.0f} h on this machine")
    return '\n'.join(lines)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--device', default=None)
    p.add_argument('--dim', type=int, default=None, help='trunk width (default: 1536 on CUDA, 384 on CPU)')
    p.add_argument('--genes', type=int, default=4)
    p.add_argument('--tss', type=int, default=3, help='candidate TSSs per gene')
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--workers', type=int, default=0)
    p.add_argument('--precisions', nargs='+', default=None, choices=['fp32', 'bf16'], help="rosa's precisions, each timed (default: bf16 on CUDA, fp32 and bf16 on a CPU with native bf16, else fp32)")
    p.add_argument('--repeats', type=int, default=1, help="alternating runs of rosa's way per precision (the median is reported)")
    p.add_argument('--peak_tflops', type=float, default=989., help='bf16 dense peak of the device (H200: 989)')
    p.add_argument('--full_window', type=int, default=1, help='also time one published-size window (CPU)')
    p.add_argument('--out', default='/tmp/enformer_throughput.json')
    main(p.parse_args())
