"""Benchmark: `rosa run`'s models and evaluation at Tabula Sapiens' shape, with a supplied 3,072-d gene embedding table.

What it measures (a fraction of Tabula Sapiens' 483,152 cells x 19,431 genes; 1 = the full shape):

- The counts are `benchmarks/data_scale.py`'s generator (negative-binomial counts around 300 cell types, ~2,000
  detected genes per cell), reused when already generated with the same parameters.
- A GTF (one protein-coding gene, one canonical transcript each, on chr1..chrX) and a FASTA of N for those genes,
  so `rosa run`'s preflight and annotation read real files; the gene positions are compressed (1 kb apart) because
  no sequence is read: the only embedding is a table.
- The embedding table: one 3,072-d float32 vector per gene (the width of Enformer's embedding), keyed by Ensembl id in
  an .npz, registered with `rosa run`'s `tables` (`--embedding NAME=PATH`). Its vectors are seeded Gaussians: this
  benchmark measures time and memory, not accuracy.
- One `rosa run` per model, in one run folder (the data step and the table are computed once and reused by the
  others), each its own process: `ridge_celltype`, `kernel_celltype` (Nystrom, 3,000 landmarks), `ridge_cell`, and
  the transformer for `--steps` optimiser steps. The evaluated quadrant is held-out genes x held-out cells
  (`gene_splits=('test',)`, `cell_splits=('test',)`): the per-cell models predict only those cells x genes, straight
  into their chunked stores.
- For each process: wall time, peak RSS (ru_maxrss from wait4) and the seconds of each stage as `rosa run` logs them.

Run from the repository root:
    python benchmarks/models_scale.py --fraction 1 --workdir /tmp/models_scale
    python benchmarks/models_scale.py --fraction 0.02 --steps 20        # a quick check
"""
from __future__ import annotations
import argparse, json, os, re, subprocess, sys, time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from data_scale import generate, TS_CELLS, TS_GENES, GIB   # the same generated matrix as the data-scale benchmark

MODELS = ('ridge_celltype', 'kernel_celltype', 'ridge_cell', 'transformer')

def write_reference(h5ad:Path, gtf:Path, fasta:Path):
    "A GTF and a FASTA for the generated genes (var['chrom'], order by var['tss'])."
    import anndata as ad, pandas as pd
    var = ad.read_h5ad(h5ad, backed='r').var.copy()
    var['rank'] = var.groupby('chrom', observed=True)['tss'].rank(method='first').astype(int)
    var['pos'] = var['rank'] * 1000
    with open(gtf, 'w') as f:
        for gid, r in var.iterrows():
            s, e = int(r.pos), int(r.pos) + 500
            base = f'gene_id "{gid}.1"; gene_type "protein_coding"; gene_name "G{gid[4:]}";'
            tx = base + f' transcript_id "ENST{gid[4:]}.1"; transcript_type "protein_coding";'
            f.write(f'{r.chrom}\tbench\tgene\t{s}\t{e}\t.\t+\t.\t{base}\n')
            f.write(f'{r.chrom}\tbench\ttranscript\t{s}\t{e}\t.\t+\t.\t{tx} tag "Ensembl_canonical";\n')
            f.write(f'{r.chrom}\tbench\texon\t{s}\t{e}\t.\t+\t.\t{tx} exon_number 1; tag "Ensembl_canonical";\n')
    with open(fasta, 'w') as f:
        for c, n in var.groupby('chrom', observed=True).size().items():
            L = (int(n) + 2) * 1000
            f.write(f'>{c}\n' + '\n'.join('N' * 60 for _ in range(L // 60)) + '\n')
    return var.index

def write_table(ids, path:Path, d:int=3072, seed:int=0):
    "A d-dimensional float32 vector per gene id, as an .npz (`genes`, `embedding`)."
    E = np.random.default_rng(seed).standard_normal((len(ids), d), dtype=np.float32)
    np.savez(path, genes=np.asarray(ids, dtype=str), embedding=E)

TIMED = re.compile(r'^(.*?)\s+\((\d+\.\d)s\)$')    # a line rosa run logs with its seconds
STEP = re.compile(r'^\[(\d)/6\]')

def _stages(lines, model) -> dict:
    "Seconds of the data step, the model's fit, the evaluation and the whole run, from `rosa run`'s log."
    out, step = {}, None
    for line in lines:
        if STEP.match(line): step = int(STEP.match(line).group(1)); continue
        m = TIMED.match(line)
        if not m: continue
        label, sec = m.group(1).strip(), float(m.group(2))
        if step == 2 and 'genes (train' in label: out['data'] = sec
        elif step == 4 and label.startswith(model): out['model'] = sec
        elif step == 5 and label == 'done': out['evaluation'] = sec
        elif step == 6: out['report'] = sec
    return out

def run_model(model:str, a, files:dict) -> dict:
    "One `rosa run` with one model, in its own process: wall time, peak RSS and the logged stage seconds."
    models = {model: dict(steps=a.steps, patience=10**6) if model == 'transformer' else {}}
    cfg = dict(files, out=str(a.workdir/'run'), embeddings=[], tables={'table3072': str(a.workdir/'table3072.npz')},
               models=models, gene_splits=['test'], cell_splits=['test'], metrics=['pearson', 'spearman'])
    code = f"import json; from rosa.pipeline import run; run(**json.loads({json.dumps(json.dumps(cfg))}))"
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in p.stdout:
        line = line.rstrip('\n').split('\r')[-1]          # a progress bar's last state
        print(f'  | {line}', flush=True); lines.append(line)
    _, status, ru = os.wait4(p.pid, 0)
    return dict(model=model, ok=os.waitstatus_to_exitcode(status) == 0, seconds=time.perf_counter() - t0,
                peak_rss_gib=ru.ru_maxrss * 1024 / GIB, stages=_stages(lines, model), tail=lines[-5:])

def main(a):
    a.workdir = Path(a.workdir); a.workdir.mkdir(parents=True, exist_ok=True)
    n_cells = int(round(a.fraction * TS_CELLS))
    h5ad = a.workdir/f'counts_{n_cells}.h5ad'
    print(f'== counts: {n_cells:,} cells x {TS_GENES:,} genes'); gen = generate(h5ad, n_cells, TS_GENES, seed=0)
    gtf, fasta = a.workdir/'genes.gtf', a.workdir/'genome.fa'
    ids = write_reference(h5ad, gtf, fasta); write_table(ids, a.workdir/'table3072.npz')
    files = dict(counts=str(h5ad), gtf=str(gtf), fasta=str(fasta), chunk_cells=a.chunk_cells)
    rows = []
    for m in a.models.split(','):
        print(f'== rosa run: {m}'); rows.append(run_model(m, a, files)); print(json.dumps({k: v for k, v in rows[-1].items() if k != 'tail'}))
    res = dict(n_cells=n_cells, n_genes=TS_GENES, nnz=gen['nnz'], steps=a.steps, rows=rows)
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(report(res))

def report(res) -> str:
    lines = [f"rosa run at {res['n_cells']:,} cells x {res['n_genes']:,} genes ({res['nnz']:,} counts), a 3,072-d table, "
             "held-out genes x held-out cells evaluated; one process per model (the first also runs the data step)", '',
             '| model | ok | wall | peak RSS | data step | the model | evaluation |', '|---|---|---:|---:|---:|---:|---:|']
    nan = float('nan')
    for r in res['rows']:
        s = r['stages']
        lines.append(f"| {r['model']} | {'yes' if r['ok'] else 'FAILED'} | {r['seconds']:.0f} s | {r['peak_rss_gib']:.2f} GiB | "
                     f"{s.get('data', nan):.0f} s | {s.get('model', nan):.0f} s | {s.get('evaluation', nan):.0f} s |")
    return '\n'.join(lines)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument('--fraction', type=float, default=1., help="of Tabula Sapiens' 483,152 cells")
    p.add_argument('--workdir', default='/tmp/models_scale')
    p.add_argument('--models', default=','.join(MODELS))
    p.add_argument('--steps', type=int, default=200, help='transformer optimiser steps')
    p.add_argument('--chunk_cells', type=int, default=20_000)
    p.add_argument('--out', default='/tmp/models_scale/results.json')
    main(p.parse_args())
