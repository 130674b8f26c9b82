"""Benchmark: rosa's chunked preprocessing and cell streaming at atlas scale, against the original whole-AnnData-in-memory way.

What it measures, for each size (a fraction of Tabula Sapiens' 483,152 cells x 19,431 genes):

- `generate`: writes a synthetic count matrix of that shape into an h5ad, chunk by chunk (never whole in memory).
  Counts are negative binomial (gamma-Poisson, theta 2-10 per gene) around per-cell-type gene profiles (300 types
  nested in 24 tissues, 15 donors, lognormal heavy-tailed profiles with type-specific markers), per-cell library
  sizes lognormal (median ~6,500 UMIs), ~2,000 detected genes per cell. X is CSR int32; var has Ensembl-like ids,
  var['chrom'] (chr1..chr22, chrX) and var['tss']; obs has cell_type, tissue, donor_id. Seeded and deterministic;
  a file already generated with the same parameters is reused (parameters in a sidecar .json and in uns).
- `rosa`: `rosa.data.preprocess(h5ad, zarr, gene_split=dict(test_chroms=['chr2'], seed=0), cell_split=dict(seed=0))`,
  reading the counts backed in blocks of cells and writing a zarr AnnData store; its own per-stage seconds
  (uns['rosa']['stages']) are printed too.
- `stream`: `rosa.data.cell_loader(zarr, batch_size=256, num_workers=W, shuffle=True, seed=0)`: cells/s over
  200 batches after 10 warm-up batches, for W = 0 and 2.
- `original`: the original project's way: `ad.read_h5ad`, layers['counts'] = X.copy(), `sc.pp.normalize_total`,
  `sc.pp.log1p`, layers['log1p'] = X.copy(), write h5ad. Run only where its estimated memory (4 copies of
  data + indices: X, layers counts and log1p, and the int32 X while normalize_total makes X float) fits under
  --original-max-gib; skipped with the reason otherwise.

Each stage runs in its own fresh subprocess (`python benchmarks/data_scale.py --stage NAME ...`); the parent records
its wall time (process start to exit, imports included), its peak RSS (ru_maxrss of that child from os.wait4: the
largest single process of its tree) and the peak summed PSS of the child's process tree (sampled from /proc every
0.2 s; counts DataLoader workers together). Results are printed as a markdown table, with rosa's peak RSS as a
fraction of the original's, and written to --out (.json and .md).

Note: `generate` leaves the h5ad in the page cache, so the read stages that follow see a warm cache where RAM allows.

Run (from the repository root):
    python benchmarks/data_scale.py                                   # 1/8, 1/4, 1/2, 1 of Tabula Sapiens, all stages
    python benchmarks/data_scale.py --fractions 0.01,0.02             # quick check
    python benchmarks/data_scale.py --fractions 1/8 --stages generate --keep
    python benchmarks/data_scale.py --fractions 0.25 --stages rosa,stream,original --keep   # reuses a kept h5ad
Scratch files go to --workdir (default /tmp/data_scale); each size's files are deleted after its stages unless --keep.
"""
from __future__ import annotations
import argparse, collections, json, os, shutil, subprocess, sys, threading, time, traceback
from fractions import Fraction
from pathlib import Path

import numpy as np

TS_CELLS, TS_GENES = 483_152, 19_431
GEN_VERSION = 1   # bump when the generator's output changes: invalidates cached files

# protein-coding genes per chromosome (GENCODE, approximately) and chromosome lengths (hg38, bp)
CHROM_GENES = dict(chr1=2058, chr2=1309, chr3=1078, chr4=752, chr5=876, chr6=1048, chr7=992, chr8=685, chr9=781,
                   chr10=730, chr11=1316, chr12=1036, chr13=321, chr14=615, chr15=597, chr16=862, chr17=1188,
                   chr18=270, chr19=1473, chr20=544, chr21=234, chr22=443, chrX=842)
CHROM_LEN = dict(chr1=248_956_422, chr2=242_193_529, chr3=198_295_559, chr4=190_214_555, chr5=181_538_259,
                 chr6=170_805_979, chr7=159_345_973, chr8=145_138_636, chr9=138_394_717, chr10=133_797_422,
                 chr11=135_086_622, chr12=133_275_309, chr13=114_364_328, chr14=107_043_718, chr15=101_991_189,
                 chr16=90_338_345, chr17=83_257_441, chr18=80_373_285, chr19=58_617_616, chr20=64_444_167,
                 chr21=46_709_983, chr22=50_818_468, chrX=156_040_895)
TISSUES = ['Bladder', 'Blood', 'Bone_Marrow', 'Ear', 'Eye', 'Fat', 'Heart', 'Kidney', 'Large_Intestine', 'Liver',
           'Lung', 'Lymph_Node', 'Mammary', 'Muscle', 'Ovary', 'Pancreas', 'Prostate', 'Salivary_Gland', 'Skin',
           'Small_Intestine', 'Spleen', 'Thymus', 'Tongue', 'Trachea']
GIB = 2**30

# ----------------------------------------------------------------------------------------------------------------
# the generator

def make_model(n_genes:int, n_types:int=300, n_tissues:int=24, n_donors:int=15, seed:int=0,
               median_umis:float=6500., n_dense:int=512) -> dict:
    "Gene annotation, cell-type profiles, library-size and dispersion parameters, and the samplers' tables."
    rng = np.random.default_rng([seed, 1])
    G, T = n_genes, n_types
    # genes: ids, chromosome (sized by gene counts), sorted TSS positions
    w = np.array(list(CHROM_GENES.values()), float)
    per = np.floor(w / w.sum() * G).astype(int); per[np.argsort(-(w / w.sum() * G - per))[:G - per.sum()]] += 1
    chrom = np.repeat(list(CHROM_GENES), per)
    tss = np.concatenate([np.sort(rng.integers(10_000, CHROM_LEN[c] - 10_000, k)) for c, k in zip(CHROM_GENES, per)])
    # cell types nested in tissues; donors sampled per tissue
    type_tissue = np.sort(np.concatenate([np.arange(n_tissues), rng.integers(0, n_tissues, T - n_tissues)]))
    tissue_w = rng.dirichlet(np.full(n_tissues, 2.))
    type_w = np.empty(T)
    for k in range(n_tissues):
        ix = np.flatnonzero(type_tissue == k); type_w[ix] = tissue_w[k] * rng.dirichlet(np.full(len(ix), .5))
    type_w /= type_w.sum()
    donor_tab = np.stack([rng.permutation(n_donors) for _ in range(n_tissues)])   # tissue -> its donors in order
    n_tissue_donors = rng.integers(3, min(9, n_donors) + 1, n_tissues)
    # profiles: heavy-tailed gene means, tissue and type effects, genes off per tissue / type, type markers
    base = rng.normal(0, 1.8, G)
    hi = rng.choice(G, 100, replace=False); base[hi] += rng.uniform(2.5, 5, len(hi))   # ribosomal / mitochondrial-like
    te = rng.normal(0, .6, (n_tissues, G)).astype(np.float32); te -= 4 * (rng.random((n_tissues, G)) < .25)
    lg = rng.normal(0, .5, (T, G)).astype(np.float32); lg -= 4 * (rng.random((T, G)) < .15)
    lg += base.astype(np.float32); lg += te[type_tissue]; del te
    for t in range(T):
        mk = rng.choice(G, 30, replace=False); lg[t, mk] += rng.uniform(2, 5, 30)          # type-specific genes
    lg -= lg.max(1, keepdims=True); P = np.exp(lg, dtype=np.float64); del lg
    P /= P.sum(1, keepdims=True)
    theta = np.exp(rng.uniform(np.log(2), np.log(10), G))
    type_size = np.exp(rng.normal(0, .3, T)); type_size /= np.median(type_size)
    # dense part: each type's n_dense most expressed genes, drawn as NB directly for every cell of the type
    D = min(n_dense, G)
    dense = np.sort(np.argpartition(-P, D - 1, axis=1)[:, :D], axis=1).astype(np.int32) if D < G else np.tile(np.arange(G, dtype=np.int32), (T, 1))
    Ps = P.copy(); np.put_along_axis(Ps, dense, 0., axis=1)
    sparse_mass = Ps.sum(1)
    prob, alias = alias_tables(Ps / np.where(sparse_mass > 0, sparse_mass, 1)[:, None]); del Ps
    packed = alias.astype(np.int64) << 32 | np.minimum(prob.astype(np.float64) * 2**32, 2**32 - 1).astype(np.int64)   # one look-up per draw
    return dict(G=G, T=T, chrom=chrom, tss=tss, type_tissue=type_tissue, type_w=type_w, donor_tab=donor_tab,
                n_tissue_donors=n_tissue_donors, n_tissues=n_tissues, n_donors=n_donors, P=P.astype(np.float32),
                theta=theta.astype(np.float32), type_size=type_size, median_umis=median_umis, dense=dense,
                P_dense=np.take_along_axis(P, dense, 1).astype(np.float32), sparse_mass=sparse_mass,
                alias=packed.ravel())

def alias_tables(P:np.ndarray):
    "Walker alias tables, one per row of P (rows sum to 1 or 0): sample a column as j ~ U{0..G-1}, keep j if U < prob[j] else alias[j]."
    T, G = P.shape
    prob = np.ones((T, G), np.float32); alias = np.tile(np.arange(G, dtype=np.int32), (T, 1))
    for t in range(T):
        if P[t].sum() == 0: continue
        q = P[t] * G
        small = list(np.flatnonzero(q < 1)); large = list(np.flatnonzero(q >= 1))
        pr, al = prob[t], alias[t]
        while small and large:
            s, l = small.pop(), large[-1]
            pr[s] = q[s]; al[s] = l
            q[l] -= 1 - q[s]
            if q[l] < 1: large.pop(); small.append(l)
        for i in small + large: pr[i] = 1.
    return prob, alias

def logseries(rng, q:np.ndarray) -> np.ndarray:
    "Logarithmic-series draws with parameters q (0 < q < 1), vectorised (Kemp's LK algorithm, as numpy's)."
    out = np.ones(len(q), np.int64)
    V = rng.random(len(q)); i = np.flatnonzero(V < q)   # V >= q: 1
    if len(i):
        V, qi = V[i], q[i].astype(np.float64)
        r = -np.expm1(np.log1p(-qi) * rng.random(len(i)))
        big = V <= r * r
        k = np.where(big, np.floor(1 + np.log(np.maximum(V, 1e-300)) / np.log(np.maximum(r, 1e-300))), np.where(V >= r, 1, 2))
        out[i] = np.maximum(k, 1).astype(np.int64)
    return out

def gen_chunk(M:dict, n:int, rng):
    "n cells: (CSR int32 counts, type codes, donor codes). Gamma-Poisson counts, sampled sparsely."
    import scipy.sparse as sp
    G = M['G']
    t = rng.choice(M['T'], n, p=M['type_w']).astype(np.int32)
    tissue = M['type_tissue'][t]
    donor = M['donor_tab'][tissue, (rng.random(n) * M['n_tissue_donors'][tissue]).astype(int)]
    L = M['median_umis'] * M['type_size'][t] * np.exp(rng.normal(0, .6, n))
    L = np.clip(L, 300, 200_000).astype(np.float32)
    th = M['theta']
    # dense genes of each cell's type: NB(m, theta) as Poisson(Gamma(theta, m / theta))
    idx = M['dense'][t]; m = L[:, None] * M['P_dense'][t]; thd = th[idx]
    y = rng.poisson(rng.gamma(thd, m / thd)).astype(np.int64); del m, thd
    r, c = np.nonzero(y)
    kd = (r.astype(np.int64) * G + idx[r, c]) << 32 | y[r, c]; del y, idx, r, c
    # the other genes, as a compound Poisson: NB(m, theta) = sum of Poisson(theta log(1 + m/theta)) log-series(m/(m+theta)) clusters.
    # proposals at rate m (N ~ Poisson(L * sparse mass) UMIs over the type's sparse profile, alias sampling),
    # each kept with probability theta log(1 + m/theta) / m <= 1: thinning leaves the clusters.
    # Cells are visited grouped by type (table look-ups stay in one type's row); keys keep their own index.
    o = np.argsort(t, kind='stable').astype(np.int32)
    N = rng.poisson(L[o] * M['sparse_mass'][t[o]])
    cell = np.repeat(o, N); base = t[cell].astype(np.int64) * G
    j = base + rng.integers(0, G, len(cell), dtype=np.int32)
    pa = M['alias'][j]   # high 32 bits: alias, low: keep-threshold
    g = np.where(rng.integers(0, 2**32, len(cell), dtype=np.uint32) < (pa & 0xFFFFFFFF).astype(np.uint32), j - base, pa >> 32).astype(np.int32)
    del j, pa
    m = L[cell] * M['P'].ravel()[base + g]; thg = th[g]; del base
    keep = rng.random(len(cell), dtype=np.float32) * m < thg * np.log1p(m / thg)
    cell, g, m, thg = cell[keep], g[keep], m[keep], thg[keep]; del keep
    S = logseries(rng, m / (m + thg)); del m, thg
    ks = (cell.astype(np.int64) * G + g) << 32 | S; del cell, g, S
    # sum clusters per (cell, gene), sorted by cell then gene
    k = np.sort(np.concatenate([kd, ks])); del kd, ks
    key, v = k >> 32, k & 0xFFFFFFFF; del k
    start = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    key, v = key[start], np.add.reduceat(v, start).astype(np.int32)
    row = key // G
    indptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=n))])
    X = sp.csr_matrix((v, (key - row * G).astype(np.int32), indptr), shape=(n, G))
    return X, t, donor

def gen_params(n_cells, n_genes, seed, chunk) -> dict:
    return dict(gen_version=GEN_VERSION, n_cells=int(n_cells), n_genes=int(n_genes), seed=int(seed), chunk=int(chunk))

def cached(path:Path, params:dict) -> dict|None:
    "The sidecar of an h5ad generated with these parameters, or None."
    side = path.with_suffix('.json')
    if not (path.exists() and side.exists()): return None
    try: meta = json.loads(side.read_text())
    except ValueError: return None
    return meta if meta.get('params') == params else None

def generate(path:Path, n_cells:int, n_genes:int=TS_GENES, seed:int=0, chunk:int=4096, log=print) -> dict:
    "Write the synthetic counts to `path` chunk by chunk; returns stats (also in a sidecar .json). Reuses a cached file."
    import h5py, pandas as pd, anndata as ad
    params = gen_params(n_cells, n_genes, seed, chunk)
    meta = cached(path, params)
    if meta is not None:
        log(f'generate: {path} exists with the same parameters: reused'); return dict(meta['stats'], cached=True)
    t0 = time.perf_counter()
    M = make_model(n_genes, seed=seed)
    log(f'generate: model built in {time.perf_counter() - t0:.1f}s ({M["T"]} types, {M["n_tissues"]} tissues, {M["n_donors"]} donors, '
        f'{M["dense"].shape[1]} dense genes per type carrying {1 - M["sparse_mass"].mean():.0%} of the UMIs)')
    tmp = path.with_name(path.name + '.part'); path.with_suffix('.json').unlink(missing_ok=True)
    types, donors = np.empty(n_cells, np.int16), np.empty(n_cells, np.int16)
    nnz, tot_sum, det_sum, totals, t_write = 0, 0, 0, [], 0.
    with h5py.File(tmp, 'w') as f:
        f.attrs['encoding-type'] = 'anndata'; f.attrs['encoding-version'] = '0.1.0'
        for i, s in enumerate(range(0, n_cells, chunk)):
            e = min(s + chunk, n_cells)
            X, t, d = gen_chunk(M, e - s, np.random.default_rng([seed, 2, i]))
            types[s:e], donors[s:e] = t, d
            tot = np.asarray(X.sum(1)).ravel(); totals.append(tot.astype(np.int32))
            nnz += X.nnz; det_sum += X.nnz; tot_sum += int(tot.sum())
            tw = time.perf_counter()
            if s == 0:
                ad.io.write_elem(f, 'X', X, dataset_kwargs=dict(chunks=(2**20,)))
                ip = f['X/indptr'][...]; del f['X/indptr']   # 64-bit indptr, as large h5ads have (appends past 2^31 values)
                f['X'].create_dataset('indptr', data=ip.astype(np.int64), maxshape=(None,), chunks=(2**16,))
                Xd = ad.io.sparse_dataset(f['X'])
            else:
                Xd.append(X)
            t_write += time.perf_counter() - tw
            if i % 20 == 0 or e == n_cells:
                el = time.perf_counter() - t0
                log(f'generate: {e:,}/{n_cells:,} cells, {nnz:,} non-zeros, {el:.0f}s elapsed, ~{el / e * (n_cells - e):.0f}s left')
        ct = np.array([f'{TISSUES[M["type_tissue"][k]] if M["n_tissues"] <= len(TISSUES) else M["type_tissue"][k]}:type{k:03d}'
                       for k in range(M['T'])])
        obs = pd.DataFrame(dict(cell_type=pd.Categorical.from_codes(types, categories=ct),
                                tissue=pd.Categorical.from_codes(M['type_tissue'][types],
                                                                 categories=(TISSUES + [f'tissue{k}' for k in range(len(TISSUES), M['n_tissues'])])[:M['n_tissues']]),
                                donor_id=pd.Categorical.from_codes(donors, categories=[f'TSP{k + 1}' for k in range(M['n_donors'])])),
                           index=pd.Index([f'cell{k:07d}' for k in range(n_cells)]))
        var = pd.DataFrame(dict(chrom=M['chrom'].astype(object), tss=M['tss'].astype(np.int64)),
                           index=pd.Index([f'ENSG{k + 1:011d}' for k in range(n_genes)]))
        ad.io.write_elem(f, 'obs', obs); ad.io.write_elem(f, 'var', var)
        for k in ('layers', 'obsm', 'varm', 'obsp', 'varp'): ad.io.write_elem(f, k, {})
        ad.io.write_elem(f, 'uns', dict(data_scale=dict(params, note='synthetic Tabula-Sapiens-shaped counts (benchmarks/data_scale.py)')))
    os.replace(tmp, path)
    totals = np.concatenate(totals)
    stats = dict(n_cells=n_cells, n_genes=n_genes, nnz=int(nnz), mean_detected=det_sum / n_cells,
                 median_total=float(np.median(totals)), mean_total=tot_sum / n_cells,
                 q10_total=float(np.quantile(totals, .1)), q90_total=float(np.quantile(totals, .9)),
                 file_gib=path.stat().st_size / GIB, seconds=time.perf_counter() - t0, write_seconds=t_write)
    path.with_suffix('.json').write_text(json.dumps(dict(params=params, stats=stats), indent=1))
    log(f'generate: {n_cells:,} cells x {n_genes:,} genes, {nnz:,} non-zeros, mean detected genes/cell {stats["mean_detected"]:.0f}, '
        f'UMIs/cell median {stats["median_total"]:.0f} (10%-90%: {stats["q10_total"]:.0f}-{stats["q90_total"]:.0f}), '
        f'{stats["file_gib"]:.2f} GiB, {stats["seconds"]:.0f}s ({t_write:.0f}s writing)')
    return dict(stats, cached=False)

# ----------------------------------------------------------------------------------------------------------------
# stages (each runs in its own process: python data_scale.py --stage NAME ...)

def _import_rss() -> float:
    "This process's peak RSS so far (GiB): after a stage's imports, the part of its peak that is only the libraries."
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB

def stage_generate(a) -> dict:
    import h5py, pandas as pd, anndata as ad, scipy.sparse
    base = _import_rss()
    return dict(generate(Path(a.h5ad), a.n_cells, a.n_genes, a.seed, a.gen_chunk), import_rss_gib=base)

def stage_rosa(a) -> dict:
    try: from rosa.data import preprocess
    except ImportError as e:
        print(f'rosa.data.preprocess not available yet ({e})'); return dict(status='unavailable', error=str(e))
    import zarr, anndata as ad
    base = _import_rss()
    out = Path(a.zarr)
    if out.exists(): shutil.rmtree(out)
    t = time.perf_counter()
    preprocess(a.h5ad, out, gene_split=dict(test_chroms=['chr2'], seed=0), cell_split=dict(seed=0), chrom=None)
    sec = time.perf_counter() - t
    g = zarr.open_group(str(out), mode='r')
    res = dict(status='ok', seconds=sec, store_gib=_du(out) / GIB, import_rss_gib=base)
    try: res['shape'] = [int(x) for x in (g['X'].attrs['shape'] if 'shape' in g['X'].attrs else g['X'].shape)]
    except Exception as e: res['shape'] = f'? ({e!r})'
    try:
        r = ad.io.read_elem(g['uns']).get('rosa', {})
        res['stages'] = {k: float(v) for k, v in dict(r.get('stages', {})).items()}
    except Exception as e:
        res['stages'] = {}; print(f"could not read uns['rosa']['stages']: {e!r}")
    print(f"rosa.preprocess: {sec:.1f}s, store {res['store_gib']:.2f} GiB, X shape {res['shape']}, stages (s): "
          + ', '.join(f'{k} {v:.1f}' for k, v in sorted(res['stages'].items(), key=lambda kv: kv[0] == 'total')))
    return res

def stage_stream(a) -> dict:
    try: from rosa.data import cell_loader
    except ImportError as e:
        print(f'rosa.data.cell_loader not available yet ({e})'); return dict(status='unavailable', error=str(e))
    base = _import_rss(); t0 = time.perf_counter()
    a.workers = int(a.workers)
    dl = cell_loader(a.zarr, batch_size=a.batch_size, num_workers=a.workers, shuffle=True, seed=0)
    t_make = time.perf_counter() - t0
    def n_of(b):
        for v in (b.values() if isinstance(b, dict) else b):
            if hasattr(v, 'shape') and len(v.shape): return int(v.shape[0])
        raise ValueError(f'cannot tell the batch size of {type(b)}')
    it, epochs, first, t_first = iter(dl), 1, None, None
    def nxt():
        nonlocal it, epochs
        try: return next(it)
        except StopIteration:
            it = iter(dl); epochs += 1; return next(it)
    b = nxt(); t_first = time.perf_counter() - t0; first = b
    for _ in range(a.warmup - 1): nxt()
    cells, t = 0, time.perf_counter()
    for _ in range(a.batches): cells += n_of(nxt())
    sec = time.perf_counter() - t
    desc = {k: (f'{tuple(v.shape)} {str(v.dtype).replace("torch.", "")}' + (' sparse' if getattr(v, 'is_sparse', False) else '')
                if hasattr(v, 'shape') else type(v).__name__) for k, v in (first.items() if isinstance(first, dict) else enumerate(first))}
    res = dict(status='ok', workers=a.workers, batches=a.batches, cells=cells, seconds=sec, cells_per_s=cells / sec,
               first_batch_s=t_first, loader_s=t_make, epochs=epochs, batch=desc, import_rss_gib=base)
    print(f'stream W={a.workers}: {cells:,} cells in {sec:.2f}s = {cells / sec:,.0f} cells/s (first batch after {t_first:.1f}s, '
          f'{epochs} epoch(s)); batch: {desc}')
    return res

def stage_original(a) -> dict:
    import anndata as ad, scanpy as sc
    base = _import_rss(); ts = {}
    t = time.perf_counter(); adata = ad.read_h5ad(a.h5ad); ts['read'] = time.perf_counter() - t
    t = time.perf_counter(); adata.layers['counts'] = adata.X.copy(); ts['copy counts'] = time.perf_counter() - t
    t = time.perf_counter(); sc.pp.normalize_total(adata, target_sum=1e4); ts['normalize_total'] = time.perf_counter() - t
    t = time.perf_counter(); sc.pp.log1p(adata); ts['log1p'] = time.perf_counter() - t
    t = time.perf_counter(); adata.layers['log1p'] = adata.X.copy(); ts['copy log1p'] = time.perf_counter() - t
    t = time.perf_counter(); adata.write_h5ad(a.out_h5ad); ts['write'] = time.perf_counter() - t
    print(f'original: X {adata.X.dtype} {adata.shape}, stages (s): ' + ', '.join(f'{k} {v:.1f}' for k, v in ts.items()))
    return dict(status='ok', stages=ts, seconds=sum(ts.values()), import_rss_gib=base, file_gib=Path(a.out_h5ad).stat().st_size / GIB)

STAGES = dict(generate=stage_generate, rosa=stage_rosa, stream=stage_stream, original=stage_original)

def _du(p:Path) -> int:
    p = Path(p)
    if p.is_file(): return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob('*') if f.is_file()) if p.exists() else 0

def _rm(p:Path):
    p = Path(p)
    if p.is_dir(): shutil.rmtree(p, ignore_errors=True)
    else: p.unlink(missing_ok=True)

# ----------------------------------------------------------------------------------------------------------------
# the parent: one subprocess per stage, its wall time and memory

def _tree_pss(root:int) -> int:
    "Summed PSS (bytes) of `root` and its descendants (RSS where smaps_rollup is unreadable)."
    kids = collections.defaultdict(list)
    for d in os.listdir('/proc'):
        if not d.isdigit(): continue
        try:
            with open(f'/proc/{d}/stat') as f: s = f.read()
            kids[int(s[s.rindex(')') + 2:].split()[1])].append(int(d))
        except (OSError, ValueError): pass
    tot, todo = 0, [root]
    while todo:
        p = todo.pop(); todo += kids.get(p, [])
        try:
            with open(f'/proc/{p}/smaps_rollup') as f:
                tot += next(int(l.split()[1]) for l in f if l.startswith('Pss:')) * 1024
        except (OSError, StopIteration, ValueError):
            try:
                with open(f'/proc/{p}/statm') as f: tot += int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
            except (OSError, ValueError): pass
    return tot

def run_stage(name:str, argv:list, label:str) -> dict:
    "Run one stage in a fresh `python data_scale.py --stage` process: its result, wall s, peak RSS and tree PSS (GiB)."
    res_file = Path(argv[argv.index('--result') + 1])
    res_file.unlink(missing_ok=True)
    cmd = [sys.executable, '-u', str(Path(__file__).resolve()), '--stage', name, *argv]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    tail, peak, done = collections.deque(maxlen=60), [0], threading.Event()
    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_pss(p.pid)); done.wait(.2)
    th = threading.Thread(target=sample, daemon=True); th.start()
    for line in p.stdout:
        print(f'  [{label}] {line}', end='', flush=True); tail.append(line)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    done.set(); th.join()
    p.returncode = rc = os.waitstatus_to_exitcode(status)
    out = dict(rc=rc, wall_s=wall, peak_rss_gib=ru.ru_maxrss * 1024 / GIB, tree_pss_gib=peak[0] / GIB)
    if res_file.exists(): out.update(result=json.loads(res_file.read_text()))
    if rc != 0: out['error'] = ''.join(tail)
    return out

def parse_fraction(s:str) -> float:
    return float(Fraction(s.strip()))

ORIGINAL_COPIES = 4   # X, layers['counts'], layers['log1p'] and, while normalize_total makes X float, the int32 X it reads

def original_estimate_gib(nnz:int, n_cells:int) -> float:
    "Memory of the original way: ORIGINAL_COPIES copies of data + indices (+ indptr). At 1/8 it measured 3.7 GiB above imports for 2.7 GiB of 3 copies."
    return ORIGINAL_COPIES * (nnz * 8 + (n_cells + 1) * 8) / GIB

def main(a):
    work = Path(a.workdir); work.mkdir(parents=True, exist_ok=True)
    stages = [s.strip() for s in a.stages.split(',') if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad: sys.exit(f'unknown stages {bad}; choose from {list(STAGES)}')
    workers = [int(w) for w in a.workers.split(',')]
    rows, sizes = [], []
    for frac_s in a.fractions.split(','):
        frac = parse_fraction(frac_s); n = max(1, int(round(a.n_cells * frac)))
        stem = f'ts_{n}x{a.n_genes}_s{a.seed}'
        h5, zr, orig = work / f'{stem}.h5ad', work / f'{stem}.rosa.zarr', work / f'{stem}.original.h5ad'
        size = dict(fraction=frac_s.strip(), n_cells=n, n_genes=a.n_genes, nnz=None, h5ad=str(h5))
        sizes.append(size)
        print(f'\n=== size {frac_s.strip()}: {n:,} cells x {a.n_genes:,} genes ({h5}) ===', flush=True)
        common = ['--h5ad', str(h5), '--zarr', str(zr), '--out-h5ad', str(orig), '--n-cells', str(n), '--n-genes', str(a.n_genes),
                  '--seed', str(a.seed), '--gen-chunk', str(a.gen_chunk)]
        def row(stage, r, **kw):
            res = r.get('result', {}) if r else {}
            d = dict(fraction=size['fraction'], n_cells=n, nnz=size['nnz'], stage=stage, wall_s=r.get('wall_s') if r else None,
                     peak_rss_gib=r.get('peak_rss_gib') if r else None, tree_pss_gib=r.get('tree_pss_gib') if r else None,
                     cells_per_s=res.get('cells_per_s'), status=(res.get('status', 'ok') if r and r['rc'] == 0 else ('failed' if r else 'skipped')),
                     result=res, **kw)
            if r and r['rc'] != 0: d['error'] = r['error']
            rows.append(d); return d
        def res_arg(stage): return ['--result', str(work / f'{stem}.{stage}.result.json')]
        # generate (or reuse)
        meta = cached(h5, gen_params(n, a.n_genes, a.seed, a.gen_chunk))
        if 'generate' in stages or meta is None:
            if meta is not None and 'measured' in meta:
                ms = dict(meta['measured']); imp = ms.pop('import_rss_gib', None)
                d = row('generate', dict(rc=0, **ms, result=dict(meta['stats'], status='ok', import_rss_gib=imp)), note='cached: measured when generated')
            else:
                free = shutil.disk_usage(work).free / GIB; need = n * 2100 * 8 / GIB * 1.05
                if free < need * 1.2: print(f'warning: {free:.0f} GiB free in {work}, the h5ad needs ~{need:.1f} GiB')
                r = run_stage('generate', common + res_arg('generate'), f'{frac_s.strip()} generate')
                d = row('generate', r)
                if r['rc'] == 0:
                    side = h5.with_suffix('.json'); m = json.loads(side.read_text())
                    m['measured'] = dict(wall_s=r['wall_s'], peak_rss_gib=r['peak_rss_gib'], tree_pss_gib=r['tree_pss_gib'],
                                         import_rss_gib=r.get('result', {}).get('import_rss_gib'))
                    side.write_text(json.dumps(m, indent=1))
            if d['status'] != 'ok':
                print(f'generate failed: skipping the other stages of this size\n{d.get("error", "")}'); continue
            meta = cached(h5, gen_params(n, a.n_genes, a.seed, a.gen_chunk))
            if 'generate' not in stages: rows.pop()   # generated only because later stages need it: not a requested row
        st = meta['stats']; size.update(nnz=st['nnz'], mean_detected=st['mean_detected'], median_total=st['median_total'],
                                        file_gib=st['file_gib'], generate_s=st['seconds'])
        for d in rows:
            if d['fraction'] == size['fraction'] and d['n_cells'] == n: d['nnz'] = st['nnz']
        print(f'counts: {st["nnz"]:,} non-zeros, mean detected genes/cell {st["mean_detected"]:.0f}, median UMIs/cell {st["median_total"]:.0f}, '
              f'{st["file_gib"]:.2f} GiB', flush=True)
        if 'rosa' in stages:
            r = run_stage('rosa', common + res_arg('rosa'), f'{frac_s.strip()} rosa'); d = row('rosa', r)
            if d['status'] == 'failed': print(f'rosa failed:\n{d["error"]}')
        if 'stream' in stages:
            if not (zr / 'zarr.json').exists() and not (zr / '.zgroup').exists():
                print(f'stream: no rosa store at {zr} (run the rosa stage first): skipped')
                row('stream', None, note='no rosa store')
            else:
                for w in workers:
                    r = run_stage('stream', common + res_arg(f'stream{w}') + ['--workers', str(w), '--batches', str(a.batches),
                                  '--warmup', str(a.warmup), '--batch-size', str(a.batch_size)], f'{frac_s.strip()} stream W={w}')
                    d = row(f'stream W={w}', r)
                    if d['status'] == 'failed': print(f'stream W={w} failed:\n{d["error"]}')
        if 'original' in stages:
            est = original_estimate_gib(st['nnz'], n)
            if est > a.original_max_gib:
                why = f'estimated {est:.1f} GiB ({ORIGINAL_COPIES} copies of data + indices) > --original-max-gib {a.original_max_gib:g}'
                print(f'original: skipped: {why}'); row('original', None, note=f'skipped: {why}', estimate_gib=est)
            else:
                r = run_stage('original', common + res_arg('original'), f'{frac_s.strip()} original')
                d = row('original', r, estimate_gib=est)
                if d['status'] == 'failed': print(f'original failed:\n{d["error"]}')
                _rm(orig)
        if not a.keep:
            for p in (h5, h5.with_suffix('.json'), zr, orig): _rm(p)
        for p in work.glob(f'{stem}.*.result.json'): _rm(p)
        report(a, rows, sizes, final=False)
    report(a, rows, sizes, final=True)

def _f(x, fmt):
    return '' if x is None else format(x, fmt)

def report(a, rows, sizes, final:bool):
    lines = ['| size | cells | nnz | stage | wall s | peak RSS GiB | tree PSS GiB | cells/s | notes |',
             '|---|---:|---:|---|---:|---:|---:|---:|---|']
    for d in rows:
        res = d.get('result') or {}
        note = d.get('note', '')
        if d['status'] != 'ok' and not note.startswith('skipped'): note = (note + '; ' if note else '') + d['status']
        if res.get('import_rss_gib') is not None:
            note += f"{'; ' if note else ''}imports {res['import_rss_gib']:.2f} GiB"
        if d['stage'].startswith('stream') and res.get('epochs', 1) > 1:
            note += f"{'; ' if note else ''}{res['epochs']} epochs (store smaller than the batches timed), {res['cells'] / res['batches']:.0f} cells/batch on average"
        if d['stage'] == 'generate' and res.get('mean_detected') is not None:
            note += f"{'; ' if note else ''}{res['mean_detected']:.0f} genes/cell, median {res['median_total']:.0f} UMIs, {res['file_gib']:.2f} GiB"
        if d['stage'] == 'rosa' and res.get('store_gib') is not None:
            st = sorted(res.get('stages', {}).items(), key=lambda kv: kv[0] == 'total')   # uns keeps no order: total last
            note += f"{'; ' if note else ''}store {res['store_gib']:.2f} GiB" + ''.join(f', {k} {v:.1f}s' for k, v in st)
        if d['stage'] == 'original' and d.get('estimate_gib') is not None and d['status'] == 'ok':
            note += f"{'; ' if note else ''}estimated {d['estimate_gib']:.1f} GiB, " + ', '.join(f'{k} {v:.1f}s' for k, v in res.get('stages', {}).items())
        lines.append(f"| {d['fraction']} | {d['n_cells']:,} | {_f(d['nnz'], ',')} | {d['stage']} | {_f(d['wall_s'], '.1f')} | "
                     f"{_f(d['peak_rss_gib'], '.2f')} | {_f(d['tree_pss_gib'], '.2f')} | {_f(d['cells_per_s'], ',.0f')} | {note} |")
    ratios = []
    for s in sizes:
        by = {d['stage']: d for d in rows if d['fraction'] == s['fraction'] and d['n_cells'] == s['n_cells'] and d['status'] == 'ok'}
        if 'rosa' in by and 'original' in by:
            r = dict(fraction=s['fraction'], n_cells=s['n_cells'], rosa_gib=by['rosa']['peak_rss_gib'], original_gib=by['original']['peak_rss_gib'],
                     rosa_s=by['rosa']['wall_s'], original_s=by['original']['wall_s'])
            r['rss_ratio'] = r['rosa_gib'] / r['original_gib']; r['time_ratio'] = r['rosa_s'] / r['original_s']; ratios.append(r)
    if ratios:
        lines += ['', '| size | cells | rosa peak RSS GiB | original peak RSS GiB | rosa / original RSS | rosa / original wall |', '|---|---:|---:|---:|---:|---:|']
        lines += [f"| {r['fraction']} | {r['n_cells']:,} | {r['rosa_gib']:.2f} | {r['original_gib']:.2f} | {r['rss_ratio']:.2f} | {r['time_ratio']:.2f} |" for r in ratios]
    md = '\n'.join(lines)
    if final: print('\n' + md)
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix('.md').write_text(md + '\n')
    out.with_suffix('.json').write_text(json.dumps(dict(args=vars(a), sizes=sizes, rows=rows, ratios=ratios), indent=1, default=str))
    if final: print(f'\nwritten {out.with_suffix(".md")} and {out.with_suffix(".json")}')

def cli(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog='\n'.join(__doc__.split('\n')[1:]))
    p.add_argument('--fractions', default='0.125,0.25,0.5,1', help='fractions of --n-cells, comma-separated (1/8 works too)')
    p.add_argument('--n-cells', type=int, default=TS_CELLS, help='cells at fraction 1 (Tabula Sapiens: 483,152)')
    p.add_argument('--n-genes', type=int, default=TS_GENES, help='genes (Tabula Sapiens: 19,431)')
    p.add_argument('--stages', default='generate,rosa,stream,original', help=f'comma-separated, of {list(STAGES)}')
    p.add_argument('--workdir', default='/tmp/data_scale', help='scratch folder for the generated h5ad, the zarr store and the original h5ad')
    p.add_argument('--out', default='/tmp/data_scale/results.json', help='results: this .json and the .md beside it')
    p.add_argument('--keep', action='store_true', help="keep each size's files (else deleted after its stages)")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--gen-chunk', type=int, default=4096, help='cells generated and appended at a time')
    p.add_argument('--workers', default='0,2', help='stream: DataLoader num_workers values, comma-separated')
    p.add_argument('--batches', type=int, default=200, help='stream: batches timed (after --warmup)')
    p.add_argument('--warmup', type=int, default=10, help='stream: batches read before timing (the first includes worker start-up)')
    p.add_argument('--batch-size', type=int, default=256)
    p.add_argument('--original-max-gib', type=float, default=20., help='skip the original way where its estimated memory exceeds this')
    # internal: one stage in this process
    p.add_argument('--stage', choices=list(STAGES), help=argparse.SUPPRESS)
    p.add_argument('--h5ad', help=argparse.SUPPRESS); p.add_argument('--zarr', help=argparse.SUPPRESS)
    p.add_argument('--out-h5ad', help=argparse.SUPPRESS); p.add_argument('--result', help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.stage:
        try: res = STAGES[a.stage](a)
        except Exception:
            traceback.print_exc(); sys.exit(1)
        if a.result: Path(a.result).write_text(json.dumps(res, default=str))
        return
    main(a)

if __name__ == '__main__':
    cli()
