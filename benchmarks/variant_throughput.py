"""Benchmark: variant scoring throughput, the original project's way against rosa's, side by side in one run; and ISM's cost per gene.

- A finished run (`--run`, default `rosa_demo`: make it with `rosa demo`): its Enformer, its fitted ridge per cell type on
  the Enformer embedding, and SNVs with a known answer from its world (`rosa.synthetic.variant_panel`: every planted
  site of `--genes` held-out genes and neutral SNVs near their TSSs).
- The original way: for each (variant, gene) pair, the reference and the alternate window centred on the gene's chosen
  TSS, one at a time, fp32, the model's whole output (every bin of every track and every embedding) brought to the
  host; the embedding at the TSS bin pushed through the ridge; no reverse-complement averaging.
- rosa's way: `Run.variants`: only the windows that read the variant run, with the allele in place, `--batch` at a
  time, only the candidate TSS bins computed past the trunk, both strands averaged (twice the original's work per
  window), the reference read from the run's own store, every fitted model on an Enformer embedding scored.
- ISM: `Run.attribute` of `--ism_genes` genes (`--width` bp around each TSS; only the run's windows are mutated).
- `--published`: the same comparison for the sequence model alone with the published Enformer architecture (random
  weights: the real ones cannot be fetched here; the same FLOPs) on 196,608-bp windows of a random genome, `--dim`
  wide (1536: the published model). On a GPU rosa's way runs in bf16.

Run from the repository root:
    rosa demo && python benchmarks/variant_throughput.py --run rosa_demo
    python benchmarks/variant_throughput.py --published --dim 384 --variants 2          # CPU: a reduced width
    python benchmarks/variant_throughput.py --published --dim 1536 --variants 256 --batch 8 --device cuda
"""
from __future__ import annotations
import argparse, platform, tempfile, time, warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

def sync(device):
    if str(device).startswith('cuda'): torch.cuda.synchronize()

def original(model, genome, jobs, fit, device) -> tuple[float, np.ndarray]:
    "Seconds for the original way and its effects (pairs, types): ref and alt windows one at a time, fp32, every output to the host."
    from rosa.tss import one_hot
    from rosa.variants import alt_window
    W, n_out = model_window(model), model.config.target_length; effects = []
    sync(device); t0 = time.perf_counter()
    with torch.no_grad():
        for chrom, tss, pos, ref, alt in jobs:
            centre = tss - tss % 128 + 64                      # the TSS's bin in the middle of the output
            e = []
            for seq in (genome.window(chrom, centre, W), alt_window(genome, chrom, centre, W, pos, ref, alt)):
                x = torch.from_numpy(one_hot(seq))[None].to(device)
                out, emb = model(x, head='human', return_embeddings=True)
                out, emb = out.cpu().numpy(), emb.cpu().numpy(); e.append(emb[0, n_out // 2])
            effects.append(fit.profiles(e[1][None])[:, 0] - fit.profiles(e[0][None])[:, 0])
    sync(device); return time.perf_counter() - t0, np.array(effects)

def model_window(model) -> int:
    from rosa.enformer import model_window as mw
    return mw(model)

def run_mode(a):
    import rosa
    from rosa.synthetic import variant_panel, load_world
    from rosa.reference import Genome
    from rosa.variants import variant_table
    run = rosa.load(a.run); world = load_world(Path(a.run)/'world')
    test = list(run.genes.index[run.genes.split == 'test'][:a.genes])
    panel = variant_panel(world, genes=test, n_neutral=4, seed=0)
    genome = Genome(run.config['fasta']); model = run.enformer(a.device).eval(); dev = next(model.parameters()).device
    fit = run.fitted('ridge_celltype', 'enformer')
    # the original way scores each SNV against its own gene at the gene's chosen TSS, when that window holds it
    g = run.genes.reindex(panel.gene); W = model_window(model)
    near = (np.abs(panel.pos.to_numpy() - g.tss.to_numpy()) < W // 2 - 128)
    jobs = [(c, int(t), int(p), r, x) for c, t, p, r, x in zip(panel.chrom[near], g.tss[near], panel.pos[near], panel.ref[near], panel.alt[near])]
    t_orig, _ = original(model, genome, jobs, fit, dev)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        sync(dev); t0 = time.perf_counter(); e = run.variants(panel, batch_size=a.batch, device=a.device, progress=False); sync(dev)
    t_rosa = time.perf_counter() - t0
    n_models = len(e.uns['models'])
    print(f"# variant_throughput results\n\n`python benchmarks/variant_throughput.py --run {a.run} --genes {a.genes}` on {torch.get_num_threads()} threads "
          f"({platform.processor() or platform.machine()}; device {dev}).\n\nThe demo's Enformer ({W:,}-bp windows), {len(panel):,} SNVs "
          f"({len(jobs):,} within half a window of their gene's chosen TSS, the original way's reach).\n")
    print("| way | seconds | (variant, gene) pairs | pairs/s |\n|---|---:|---:|---:|")
    print(f"| original (ref and alt window one at a time, fp32, all outputs, one model, one strand) | {t_orig:.1f} | {len(jobs):,} | {len(jobs) / t_orig:.1f} |")
    print(f"| rosa (changed windows only, batch {a.batch}, candidate bins only, both strands, {n_models} fitted models) | {t_rosa:.1f} | {e.n_obs:,} | {e.n_obs / t_rosa:.1f} |")
    print(f"\nrosa / original: {(e.n_obs / t_rosa) / (len(jobs) / t_orig):.1f}x pairs/s.")
    if a.ism_genes:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            t0 = time.perf_counter(); r = run.attribute(test[:a.ism_genes], width=a.width, batch_size=a.batch, device=a.device, progress=False)
        t_ism = time.perf_counter() - t0
        per = r.n_obs / a.ism_genes
        print(f"\nISM + gradient x input (`Run.attribute`, ridge per cell type on the Enformer embedding): {a.ism_genes} genes, "
              f"{per:,.0f} bases each (x 3 alleles), {t_ism / a.ism_genes:.1f} s per gene.")

def published_mode(a):
    from rosa.enformer import tss_outputs, cage_track_indices
    from rosa.reference import Genome
    from rosa.tss import one_hot
    from rosa.variants import alt_window
    sys_path = Path(__file__).parent
    import sys; sys.path.insert(0, str(sys_path))
    from enformer_throughput import build, window_flops, random_genome
    dev = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    model = build(a.dim, dev); W = model_window(model); n_out = model.config.target_length
    tmp = Path(tempfile.mkdtemp()); cand = random_genome(tmp/'g.fa', a.variants, 1, seed=0); genome = Genome(tmp/'g.fa')
    rng = np.random.default_rng(0)
    jobs = []
    for c, t in zip(cand.chrom, cand.tss):
        p = int(t) - int(rng.integers(40, 200)); r = genome.fetch(c, p, p + 1); jobs.append((c, int(t), p, r, 'A' if r != 'A' else 'C'))
    # the original way: ref and alt, one at a time, fp32, every output
    sync(dev); t0 = time.perf_counter()
    with torch.no_grad():
        for c, t, p, r, x in jobs:
            centre = t - t % 128 + 64
            for seq in (genome.window(c, centre, W), alt_window(genome, c, centre, W, p, r, x)):
                out, emb = model(torch.from_numpy(one_hot(seq))[None].to(dev), head='human', return_embeddings=True)
                out.cpu().numpy(); emb.cpu().numpy()
    sync(dev); t_orig = time.perf_counter() - t0
    # rosa's way: alt windows only (the reference is the run's), batched, bf16 on CUDA, candidate bins only
    cage = cage_track_indices(model); bf16 = dev.type == 'cuda'
    sync(dev); t0 = time.perf_counter()
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(jobs), a.batch):
            js = jobs[i:i + a.batch]
            x = torch.from_numpy(np.stack([one_hot(alt_window(genome, c, t - t % 128 + 64, W, p, r, y)) for c, t, p, r, y in js])).to(dev)
            win = torch.arange(len(js), device=dev); b = torch.full((len(js),), n_out // 2, device=dev)
            cg, e = tss_outputs(model, x, win, b, cage, 2, a.rc)
            cg.float().cpu().numpy(); e.float().cpu().numpy()
    sync(dev); t_rosa = time.perf_counter() - t0
    fl = window_flops(a.dim)
    print(f"# variant_throughput results (published architecture)\n\n`python benchmarks/variant_throughput.py --published --dim {a.dim} --variants {a.variants} --batch {a.batch}` "
          f"on {dev} ({torch.get_num_threads()} threads; {platform.processor() or platform.machine()}). dim {a.dim} (published: 1536), {W:,}-bp windows, "
          f"{fl / 1e12:.2f} TFLOP per window.\n")
    print("| way | seconds | variants/s |\n|---|---:|---:|")
    print(f"| original (ref and alt window one at a time, fp32, all heads and bins) | {t_orig:.1f} | {len(jobs) / t_orig:.3f} |")
    print(f"| rosa (alt window only, batch {a.batch}, {'bf16' if bf16 else 'fp32'}, TSS bins only, {'both strands' if a.rc else 'one strand'}) | {t_rosa:.1f} | {len(jobs) / t_rosa:.3f} |")
    print(f"\nrosa / original: {t_orig / t_rosa:.2f}x variants/s.")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--run', default='rosa_demo'); p.add_argument('--genes', type=int, default=20, help='held-out genes whose sites are scored')
    p.add_argument('--batch', type=int, default=32); p.add_argument('--device', default=None)
    p.add_argument('--ism_genes', type=int, default=4); p.add_argument('--width', type=int, default=1000)
    p.add_argument('--published', action='store_true'); p.add_argument('--dim', type=int, default=384); p.add_argument('--variants', type=int, default=2)
    p.add_argument('--rc', type=int, default=1, help='rosa averages both strands (1) or reads one (0)')
    a = p.parse_args()
    published_mode(a) if a.published else run_mode(a)
