"""Benchmark: ESM-2 protein embedding throughput, one protein at a time against rosa's token-budget batches, side by side in one run.

- The model: an ESM-2 architecture with random weights (fair-esm's `esm.model.esm2.ESM2`, the ESM-1b alphabet as the
  published models use; random weights cost the same FLOPs and time as trained ones). On CUDA by default the published
  650M shape (esm2_t33_650M: 33 layers x 1280, 20 heads), on a CPU the esm2_t6_8M shape (6 layers x 320, 20 heads).
- The proteins: `--n` random proteins (the 20 amino acids, uniform), lengths from a lognormal of median 415 residues
  and sigma 0.6 (about 7% over 1,022 residues), at least 30: roughly the human proteome's shape without its longest
  tail (titin).
- One protein at a time: a forward pass per protein in float32 under `inference_mode`, the mean over its residues;
  a protein over 1,022 residues gets a pass per window of rosa's tiling (the same windows, the same residues from
  each), so both ways compute the same embeddings and only the batching and precision differ.
- rosa's way: `rosa.esm.embed_proteins` with a token budget (`--tokens` per pass: rows x longest window, longest
  first; several budgets side by side; default rosa's own, 16,384 on CUDA and 0 = every window alone on a CPU),
  in bf16 autocast and in float32 (`--precisions`; default bf16 on CUDA, both on a CPU with native bf16, float32 on
  others), all proteins in one chunk.
- Each way runs `--repeats` times, alternately (a slow spell of a shared machine slows both); the median is reported.
  Printed: proteins/s, tokens/s (real tokens, `<cls>`/`<eos>` included, padding not), the ratio to one at a time,
  the batches' padding, the largest difference from one at a time's embeddings and their correlation, on CUDA the
  peak GPU memory, and where both precisions ran, bf16's speed-up over float32 (s per window) and the agreement of
  their embeddings (r overall and per protein, the largest difference relative to the largest value).

Run from the repository root:
    python benchmarks/esm_throughput.py --device cpu --n 48 --tokens 1024 4096 16384 --repeats 2   # CPU: the esm2_t6_8M shape
    python benchmarks/esm_throughput.py --device cpu --n 48 --tokens 0 4096 --repeats 3 --precisions fp32 bf16   # CPU: bf16 vs fp32
    python benchmarks/esm_throughput.py --device cuda --n 2000 --tokens 4096 16384 32768 --repeats 3   # CUDA: the 650M shape
"""
from __future__ import annotations
import argparse, json, platform, statistics, time
from pathlib import Path

import numpy as np
import torch
import esm
from esm.model.esm2 import ESM2

from rosa.esm import embed_proteins, _tiles, _batches
from rosa.store import cpu_bf16

AA = 'LAGVSERTIDPKQNFYMHWC'

def build(layers:int, dim:int, heads:int, device:str, seed:int=0):
    "An ESM-2 of this shape with random weights, in eval mode, and its alphabet."
    torch.manual_seed(seed)
    alphabet = esm.data.Alphabet.from_architecture('ESM-1b')
    return ESM2(num_layers=layers, embed_dim=dim, attention_heads=heads, alphabet=alphabet).eval().to(device), alphabet

def proteins(n:int, seed:int=0, median:float=415, sigma:float=0.6) -> list:
    "Random proteins with lognormal lengths (median `median`, at least 30 residues)."
    rng = np.random.default_rng(seed)
    lens = np.maximum(30, np.round(median * np.exp(sigma * rng.standard_normal(n)))).astype(int)
    aa = np.array(list(AA))
    return ['M' + ''.join(aa[rng.integers(0, 20, L - 1)]) for L in lens]

def sync(device):
    if str(device).startswith('cuda'): torch.cuda.synchronize()

def one_at_a_time(model, alphabet, seqs, max_len, overlap, device) -> np.ndarray:
    "A forward pass per protein (per window of a long one), float32; each residue from rosa's window for it."
    convert, L = alphabet.get_batch_converter(), model.num_layers
    out = np.zeros((len(seqs), model.embed_dim), np.float32)
    with torch.inference_mode():
        for k, s in enumerate(seqs):
            total = torch.zeros(model.embed_dim, dtype=torch.float64, device=device)
            for a, e, oa, oe in _tiles(len(s), max_len, overlap):
                r = model(convert([('', s[a:e])])[2].to(device), repr_layers=[L])['representations'][L][0, 1:-1]
                total += r[oa - a:oe - a].double().sum(0)
            out[k] = (total / len(s)).float().cpu().numpy()
    return out

def timed(fn, device):
    sync(device); t = time.perf_counter(); out = fn(); sync(device)
    return time.perf_counter() - t, out

def machine(device:str) -> str:
    if device.startswith('cuda'): return f'{torch.cuda.get_device_name()}'
    return f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads'

def main(a):
    device = a.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    cuda = device.startswith('cuda')
    if a.threads: torch.set_num_threads(a.threads)
    layers, dim, heads = a.layers or (33 if cuda else 6), a.dim or (1280 if cuda else 320), a.heads or 20
    model, alphabet = build(layers, dim, heads, device)
    seqs = proteins(a.n, a.seed)
    lens = np.array([len(s) for s in seqs])
    windows = [e - s for p in seqs for s, e, _, _ in _tiles(len(p), a.max_len, a.overlap)]
    real = sum(w + 2 for w in windows)                          # tokens of the windows, <cls>/<eos> included
    budgets = a.tokens or [16_384 if cuda else 0]               # rosa's defaults (0: every window alone)
    precs = a.precisions or (['bf16'] if cuda else ['fp32', 'bf16'] if cpu_bf16() else ['fp32'])
    ways = {'one': lambda: one_at_a_time(model, alphabet, seqs, a.max_len, a.overlap, device)}
    for tok in budgets:
        for prec in precs:
            ways[(tok, prec)] = lambda tok=tok, prec=prec: embed_proteins(model, alphabet, seqs, tokens=tok, max_len=a.max_len, overlap=a.overlap,
                                                                          chunk=len(seqs), precision=prec, device=device, progress=False)
    warm = seqs[:2]                                             # warm-up of each precision: kernels, allocator, threads
    for prec in precs: embed_proteins(model, alphabet, warm, precision=prec, device=device, progress=False)
    one_at_a_time(model, alphabet, warm, a.max_len, a.overlap, device)
    times, emb, peak = {w: [] for w in ways}, {}, {}
    for k in range(a.repeats):                                  # alternating, in turn forwards and backwards: a slow spell of the machine slows every way alike
        for w, fn in (list(ways.items()) if k % 2 == 0 else list(ways.items())[::-1]):
            if cuda: torch.cuda.reset_peak_memory_stats()
            t, emb[w] = timed(fn, device); times[w].append(t)
            if cuda: peak[w] = torch.cuda.max_memory_allocated() / 2**30
    rows = []
    for w in ways:
        t = statistics.median(times[w])
        batch_tokens = real if w == 'one' else sum(len(b) * (windows[b[0]] + 2) for b in _batches(windows, w[0]))
        rows.append(dict(way='one protein at a time' if w == 'one' else 'rosa', tokens=None if w == 'one' else w[0],
                         precision='fp32' if w == 'one' else w[1], seconds=t, runs=times[w],
                         proteins_per_s=a.n / t, tokens_per_s=real / t, ratio=statistics.median(times['one']) / t,
                         padding=1 - real / batch_tokens, max_abs_diff=float(np.abs(emb[w] - emb['one']).max()),
                         max_rel_diff=float(np.abs(emb[w] - emb['one']).max() / np.abs(emb['one']).max()),
                         r=float(np.corrcoef(emb[w].ravel(), emb['one'].ravel())[0, 1]), peak_gib=peak.get(w)))
    res = dict(device=device, machine=machine(device), torch=torch.__version__, layers=layers, dim=dim, heads=heads,
               params=sum(p.numel() for p in model.parameters()), n=a.n, max_len=a.max_len, overlap=a.overlap,
               repeats=a.repeats, median_len=float(np.median(lens)), mean_len=float(lens.mean()),
               max_len_protein=int(lens.max()), n_tiled=int((lens > a.max_len).sum()), windows=len(windows),
               real_tokens=real, rows=rows)
    res['bf16_vs_fp32'] = {tok: dict(r=float(np.corrcoef(emb[(tok, 'bf16')].ravel(), emb[(tok, 'fp32')].ravel())[0, 1]),
                                     max_rel_diff=float(np.abs(emb[(tok, 'bf16')] - emb[(tok, 'fp32')]).max() / np.abs(emb[(tok, 'fp32')]).max()),
                                     min_protein_r=float(min(np.corrcoef(x, y)[0, 1] for x, y in zip(emb[(tok, 'bf16')], emb[(tok, 'fp32')]))))
                           for tok in budgets if {'fp32', 'bf16'} <= set(precs)}
    if a.out: Path(a.out).write_text(json.dumps(res, indent=1))
    print(report(res))

def report(r) -> str:
    cuda = r['device'].startswith('cuda')
    out = [f"ESM-2 {r['layers']} layers x {r['dim']} ({r['heads']} heads, {r['params'] / 1e6:.1f}M parameters, random weights) on {r['machine']}; "
           f"torch {r['torch']}; {r['n']} proteins, median {r['median_len']:.0f} residues, mean {r['mean_len']:.0f}, longest {r['max_len_protein']:,}, "
           f"{r['n_tiled']} over {r['max_len']:,} (tiled, overlap {r['overlap']}): {r['windows']} windows, {r['real_tokens']:,} tokens; "
           f"median of {r['repeats']} alternating run(s)", '',
           '| way | precision | seconds | proteins/s | tokens/s | vs one at a time | padding | max abs diff | r |' + (' peak GiB |' if cuda else ''),
           '|---|---|---:|---:|---:|---:|---:|---:|---:|' + ('---:|' if cuda else '')]
    for w in r['rows']:
        name = (w['way'] if w['tokens'] is None else f"rosa `embed_proteins`, {w['tokens']:,}-token batches" if w['tokens'] > 1
                else f"rosa `embed_proteins`, tokens={w['tokens']} (every window alone)")
        out.append(f"| {name} | {w['precision']} | {w['seconds']:.2f} | {w['proteins_per_s']:.2f} | {w['tokens_per_s']:,.0f} | "
                   f"{w['ratio']:.2f}x | {100 * w['padding']:.1f}% | {w['max_abs_diff']:.1g} | {w['r']:.6f} |" + (f" {w['peak_gib']:.1f} |" if cuda else ''))
    by = {(w['tokens'], w['precision']): w['seconds'] for w in r['rows'] if w['tokens'] is not None}
    for tok, q in r.get('bf16_vs_fp32', {}).items():
        f, b = by[(int(tok), 'fp32')], by[(int(tok), 'bf16')]
        out.append(f"\nbf16 / fp32, tokens={int(tok):,}: {f / b:.2f}x faster ({f / r['windows']:.3f} vs {b / r['windows']:.3f} s per window; "
                   f"medians of alternating runs in one process); bf16's embeddings r = {q['r']:.6f} with fp32's (per protein at least "
                   f"{q['min_protein_r']:.5f}), largest difference {q['max_rel_diff']:.2g} of the largest value")
    return '\n'.join(out)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--device', default=None, help='cpu or cuda (default: cuda when available)')
    p.add_argument('--n', type=int, default=64, help='proteins')
    p.add_argument('--layers', type=int, default=None, help='transformer layers (default: 33 on CUDA, 6 on CPU)')
    p.add_argument('--dim', type=int, default=None, help='embedding width (default: 1280 on CUDA, 320 on CPU)')
    p.add_argument('--heads', type=int, default=None, help='attention heads (default 20)')
    p.add_argument('--tokens', type=int, nargs='+', default=None, help="rosa's token budgets per forward pass, each timed (default: rosa's, 16,384 on CUDA, 0 = every window alone on CPU)")
    p.add_argument('--max_len', type=int, default=1022)
    p.add_argument('--overlap', type=int, default=256)
    p.add_argument('--precisions', nargs='+', default=None, choices=['fp32', 'bf16'], help="rosa's precisions, each timed (default: bf16 on CUDA, fp32 and bf16 on a CPU with native bf16, else fp32)")
    p.add_argument('--repeats', type=int, default=1, help='alternating runs of each way (the median is reported)')
    p.add_argument('--threads', type=int, default=None, help='CPU threads (default: torch default)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default='/tmp/esm_throughput.json', help='write the results as JSON here')
    main(p.parse_args())
